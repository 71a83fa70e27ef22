# SPDX-License-Identifier: GPL-2.0
#
# permtcp top-level Makefile.
#
#   make            build permtcp.ko against KDIR (default: the cached test kernel)
#   make setup      install what a fresh Debian 12 machine lacks and build the test kernel
#   make demo       four QEMU VMs running permtcpd: the owner's VM is killed, the client's
#                   session survives; prints the stall's parts, writes
#                   target/demo/failover.svg
#   make demo-single  one QEMU guest, nodes as namespaces: declarations and snooping
#   make check      every test: lint, cargo test, fuzzing, KUnit, the QEMU selftests (short
#                   form) and a short multi-VM case
#   make selftests  the whole QEMU selftest suite (every part of every script)
#   make check-cluster  the multi-VM tier: each cluster node its own QEMU VM, real crashes
#   make check-debug    the QEMU selftests on a lockdep / debug-checks kernel
#   make check-sanitizers  the QEMU selftests on a KASAN + KMEMLEAK kernel, then on KCSAN
#   make bench      benchmark figures (host and QEMU)
#   make bench-failover  the client's stall across kill -9 of the owner's VM, heartbeats of
#                   100 ms and 1 s, five crashes each (multi-VM, about 10 minutes)
#   make bench-handoff  the planned handoff through permtcpd: the client's pause per
#                   connection and the handoff's times for 1, 100 and 1000 connections
#   make install    permctl, its completions and man pages, permtcpd and its systemd unit,
#                   the Pacemaker agents, and permtcp.ko if built (DESTDIR and PREFIX
#                   honoured; see README.md, "Building")
#   make install-dkms  the module's sources and dkms.conf into /usr/src/permtcp-VERSION
#                   (then: dkms install permtcp/VERSION; Documentation/install.rst)
#
# Building against another kernel: make KDIR=/path/to/a/rust-enabled/kernel/build/tree
# (the tree must have been built with CONFIG_RUST=y by the same rustc; see README.md).
# The kernel build itself reads ./Kbuild.

KDIR ?= $(shell bash scripts/kdir.sh 2>/dev/null)

# Installation directories: DESTDIR is prepended to every one (staging, packaging).
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
# systemd reads units from /usr/local/lib/systemd/system too; /usr/lib/... for PREFIX=/usr.
UNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR ?= $(PREFIX)/share/doc/permtcp
# Pacemaker looks for OCF agents under /usr/lib/ocf whatever the PREFIX.
OCFDIR ?= /usr/lib/ocf/resource.d/permtcp
# DKMS takes module sources from /usr/src/NAME-VERSION.
DKMS_VERSION := $(shell sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' dkms.conf)
DKMSDIR ?= /usr/src/permtcp-$(DKMS_VERSION)
# Completions and man pages, generated from permctl's clap definitions.
GENDIR := target/permctl-generated

.PHONY: all module permctl setup demo demo-single bench-failover bench-handoff check check-cluster check-debug check-sanitizers lint bench selftests clean \
	install install-permctl install-permtcpd install-module install-ocf install-dkms

all: module

module:
	@test -n "$(KDIR)" || { echo "no kernel build tree: run 'make setup' or pass KDIR=" >&2; exit 1; }
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules

permctl:
	cargo build --release --locked -p permctl -p permtcpd -p ptcp-testapp

setup:
	bash scripts/setup.sh

# The multi-VM form: client, owner and two peers as four QEMU VMs on one bridge, permtcpd on
# the three nodes, a real kill -9 of the owner's VM.
demo: setup
	$(MAKE) module permctl
	bash selftests/cluster/run.sh --demo

demo-single: setup
	$(MAKE) module permctl
	bash selftests/run_vm.sh --demo

check: setup
	bash scripts/check.sh

# Client, owner and two peers as four QEMU VMs on one bridge: kill -9, SIGSTOP, capture.
check-cluster: setup
	$(MAKE) module permctl
	bash selftests/cluster/run.sh

lint:
	bash scripts/check.sh --lint-only

# The QEMU selftests on a second kernel with lockdep, sleep-in-atomic and list debugging.
check-debug: setup permctl
	bash scripts/check-debug.sh

# The QEMU selftests on a KASAN + KMEMLEAK + lockdep kernel, then the concurrent ones on a
# KCSAN kernel (both built with clang and cached; about 10 minutes each the first time).
check-sanitizers: setup permctl
	bash scripts/check-sanitizers.sh

# Figures, not tests: host parse+track cost, then throughput and per-frame cost in QEMU.
bench: setup
	$(MAKE) module permctl
	bash scripts/bench.sh

bench-failover: setup
	$(MAKE) module permctl
	bash selftests/cluster/run.sh --bench

# The planned handoff's figures in the multi-VM tier: the pause per connection and
# permtcpd's times for 1, 100 and 1000 connections (PERMTCP_HANDOFF_CONNS).
bench-handoff: setup
	$(MAKE) module permctl
	PERMTCP_BENCH=handoff bash selftests/cluster/run.sh --bench

selftests: module permctl
	bash selftests/run_vm.sh

clean:
	@test -z "$(KDIR)" || $(MAKE) -C $(KDIR) M=$(CURDIR) clean
	cargo clean

install: install-permctl install-permtcpd install-ocf install-module

install-permctl:
	cargo build --release --locked -p permctl
	rm -rf $(GENDIR)
	target/release/permctl generate --out $(GENDIR) >/dev/null
	install -D -m 0755 target/release/permctl $(DESTDIR)$(SBINDIR)/permctl
	install -D -m 0644 $(GENDIR)/permctl.bash $(DESTDIR)$(BASHCOMPDIR)/permctl
	install -D -m 0644 $(GENDIR)/_permctl $(DESTDIR)$(ZSHCOMPDIR)/_permctl
	install -D -m 0644 $(GENDIR)/permctl.fish $(DESTDIR)$(FISHCOMPDIR)/permctl.fish
	install -d $(DESTDIR)$(MANDIR)/man8
	install -m 0644 $(GENDIR)/*.8 $(DESTDIR)$(MANDIR)/man8/

# The daemon, its unit (ExecStart and Documentation pointing where they were installed), an
# example configuration and its documentation.
install-permtcpd:
	cargo build --release --locked -p permtcpd
	install -D -m 0755 target/release/permtcpd $(DESTDIR)$(SBINDIR)/permtcpd
	install -d $(DESTDIR)$(UNITDIR)
	sed -e 's|/usr/sbin/permtcpd|$(SBINDIR)/permtcpd|' \
		-e 's|/usr/share/doc/permtcp|$(DOCDIR)|' \
		tools/permtcpd/permtcpd.service >$(DESTDIR)$(UNITDIR)/permtcpd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/permtcpd.service
	install -D -m 0644 tools/permtcpd/permtcpd.toml.example $(DESTDIR)$(DOCDIR)/permtcpd.toml.example
	install -D -m 0644 Documentation/cluster.rst $(DESTDIR)$(DOCDIR)/cluster.rst

# The Pacemaker resource agents ocf:permtcp:peer and ocf:permtcp:owner.
install-ocf:
	install -D -m 0755 tools/ocf/peer $(DESTDIR)$(OCFDIR)/peer
	install -D -m 0755 tools/ocf/owner $(DESTDIR)$(OCFDIR)/owner

# What DKMS needs to build the module (Kbuild, the crate, the C glue and its headers) and
# dkms.conf; not the host crates, tests or benches.
install-dkms:
	install -D -m 0644 dkms.conf $(DESTDIR)$(DKMSDIR)/dkms.conf
	install -m 0644 Kbuild permtcp.rs permtcp_glue.c $(DESTDIR)$(DKMSDIR)/
	install -d $(DESTDIR)$(DKMSDIR)/permtcp/logic
	install -m 0644 permtcp/*.rs $(DESTDIR)$(DKMSDIR)/permtcp/
	install -m 0644 permtcp/logic/*.rs $(DESTDIR)$(DKMSDIR)/permtcp/logic/
	cp -r include $(DESTDIR)$(DKMSDIR)/

# The module is installed only when it has been built ('make' first), so that the userspace
# parts install without a kernel build tree; depmod runs for the live system, not into DESTDIR.
install-module:
	@if [ ! -f permtcp.ko ]; then \
		echo "permtcp.ko is not built: not installing the module (run 'make' first)"; \
	else \
		test -n "$(KDIR)" || { echo "no kernel build tree: pass KDIR=" >&2; exit 1; }; \
		$(MAKE) -C $(KDIR) M=$(CURDIR) INSTALL_MOD_DIR=updates \
			INSTALL_MOD_PATH=$(DESTDIR) modules_install || exit 1; \
		if [ -z "$(DESTDIR)" ]; then \
			depmod -a "$$(cat $(KDIR)/include/config/kernel.release)"; \
		fi; \
	fi
