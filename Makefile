# SPDX-License-Identifier: GPL-2.0
#
# permtcp top-level Makefile.
#
#   make            build permtcp.ko against KDIR (default: the cached test kernel)
#   make setup      install what a fresh Debian 12 machine lacks and build the test kernel
#   make demo       boot the test kernel in QEMU and show the module at work
#   make check      every test: lint, cargo test, fuzzing, KUnit and the QEMU selftests
#   make bench      benchmark figures (host and QEMU)
#
# Building against another kernel: make KDIR=/path/to/a/rust-enabled/kernel/build/tree
# (the tree must have been built with CONFIG_RUST=y by the same rustc; see README.md).
# The kernel build itself reads ./Kbuild.

KDIR ?= $(shell bash scripts/kdir.sh 2>/dev/null)

.PHONY: all module permctl setup demo check check-debug lint bench selftests clean

all: module

module:
	@test -n "$(KDIR)" || { echo "no kernel build tree: run 'make setup' or pass KDIR=" >&2; exit 1; }
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules

permctl:
	cargo build --release --locked -p permctl -p ptcp-testapp

setup:
	bash scripts/setup.sh

demo: setup
	$(MAKE) module permctl
	bash selftests/run_vm.sh --demo

check: setup
	bash scripts/check.sh

lint:
	bash scripts/check.sh --lint-only

# The QEMU selftests on a second kernel with lockdep, sleep-in-atomic and list debugging.
check-debug: setup permctl
	bash scripts/check-debug.sh

# Figures, not tests: host parse+track cost, then throughput and per-frame cost in QEMU.
bench: setup
	$(MAKE) module permctl
	cargo bench --locked -p permtcp-logic
	bash selftests/run_vm.sh --bench

selftests: module permctl
	bash selftests/run_vm.sh

clean:
	@test -z "$(KDIR)" || $(MAKE) -C $(KDIR) M=$(CURDIR) clean
	cargo clean
