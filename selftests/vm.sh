# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# What selftests/run_vm.sh and the multi-VM tier (selftests/cluster/run.sh) share: the
# inputs, the busybox initramfs and the choice between KVM and TCG.  Sourced (bash) after
# scripts/common.sh; never run.

# Sets KDIR, bzimage, module, permctl, permtcpd and testapp; dies when one of them is
# missing.
# Environment: KDIR (kernel build tree, default: the cached test kernel), MODULE.
vm_inputs() {
	KDIR=${KDIR:-$(kernel_build_dir)}
	bzimage=$KDIR/arch/x86/boot/bzImage
	module=${MODULE:-$PERMTCP_ROOT/permtcp.ko}
	permctl=$PERMTCP_ROOT/target/release/permctl
	permtcpd=$PERMTCP_ROOT/target/release/permtcpd
	testapp=$PERMTCP_ROOT/target/release/ptcp-testapp
	local f
	for f in "$bzimage" "$module" "$permctl" "$permtcpd" "$testapp"; do
		[ -f "$f" ] || die "missing $f (run make)"
	done
}

# Builds DIR/initramfs.cpio: busybox, iproute2, permctl, permtcpd, ptcp-testapp, the module, the
# selftests directory and selftests/init as /init (which reads its mode from the kernel
# command line); with "python", also Python and the kernel's YNL client (copy_python); with
# "servers", the unmodified Debian programs of takeover_unmodified_*.sh and the demo
# (copy_servers); with "ocf", ocf-tester and the OCF agents (copy_ocf); with "keepalived",
# Debian's keepalived (copy_keepalived). DIR/root is the tree it was made from.
build_initramfs() { # dir [python] [servers] [ocf] [keepalived]
	local work=$1 root=$1/root extra=" ${*:2} "
	rm -rf "$root"
	mkdir -p "$root"/{bin,sbin,usr/bin,lib/modules,etc,proc,sys,dev,run,tmp,root}
	# Copies the libraries a dynamically linked program or extension module needs.
	copy_libs() {
		ldd "$1" | awk '/=> \// {print $3} /^[ \t]*\/lib/ {print $1}' | while read -r lib; do
			[ -e "$root$lib" ] || install -D -m755 "$lib" "$root$lib"
		done
	}
	# Copies a dynamically linked program and the libraries it needs.
	copy_prog() {
		install -D -m755 "$1" "$root/$2"
		copy_libs "$1"
	}
	install -m755 "$(command -v busybox)" "$root/bin/busybox"
	ln -s busybox "$root/bin/sh"
	copy_prog "$(command -v ip)" bin/ip
	if command -v ss >/dev/null; then copy_prog "$(command -v ss)" bin/ss; fi
	copy_prog "$permctl" bin/permctl
	copy_prog "$permtcpd" bin/permtcpd
	copy_prog "$testapp" bin/ptcp-testapp
	# nft, for the benchmark's conntrack comparison (optional).
	if command -v nft >/dev/null; then copy_prog "$(command -v nft)" bin/nft; fi
	[[ $extra != *" python "* ]] || copy_python
	[[ $extra != *" servers "* ]] || copy_servers
	[[ $extra != *" ocf "* ]] || copy_ocf
	[[ $extra != *" keepalived "* ]] || copy_keepalived
	install -m644 "$module" "$root/lib/modules/permtcp.ko"
	cp -r "$PERMTCP_ROOT/selftests" "$root/selftests"
	install -m755 "$PERMTCP_ROOT/selftests/init" "$root/init"
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
	# Not compressed: under TCG the guest spent 1.85 billion instructions inflating the
	# selftests' 44 MB of gzip (101 MB of files), 2-3 s of every boot (scripts/tcgprof);
	# QEMU loads the plain archive into guest memory at once.
	(cd "$root" && find . | cpio -o -H newc --quiet) >"$work/initramfs.cpio"
}

# Into build_initramfs's $root: Debian's Python 3 (not whatever python3 comes first in PATH:
# PyYAML is Debian's python3-yaml) with a pruned standard library, PyYAML, and the kernel's
# YNL netlink client with the nlctrl and permtcp specs, for ynl.sh.  Sources only, no
# byte-compiled files (3 MB more, compressed): the guest's root is writable, so Python
# compiles each module once per boot.  Dies when any of it is missing on the host.
copy_python() {
	local py stdlib ksrc so
	py=$(readlink -f /usr/bin/python3)
	stdlib=/usr/lib/$(basename "$py")
	ksrc=$PERMTCP_CACHE/src/linux
	[ -x "$py" ] && [ -f "$stdlib/os.py" ] || die "missing Debian's python3 (run make setup)"
	[ -f /usr/lib/python3/dist-packages/yaml/__init__.py ] ||
		die "missing python3-yaml (run make setup)"
	[ -f "$ksrc/tools/net/ynl/pyynl/cli.py" ] || die "missing the kernel's YNL in $ksrc"
	copy_prog "$py" "usr/bin/$(basename "$py")"
	ln -s "$(basename "$py")" "$root/usr/bin/python3"
	mkdir -p "$root$stdlib"
	# Left out: test suites, tools, the static library, and packages and extension
	# modules neither YNL nor the tests import (nor their libraries: libssl, ncurses, ...).
	tar -C "$stdlib" -c -X <(printf './%s\n' 'config-*' test idlelib tkinter turtledemo \
		ensurepip lib2to3 pydoc_data distutils venv sqlite3 curses dbm unittest asyncio \
		multiprocessing xmlrpc wsgiref email http html xml ctypes concurrent zoneinfo \
		tomllib logging pydoc.py 'lib-dynload/_test*' 'lib-dynload/*xx*' \
		'lib-dynload/_ctypes*' 'lib-dynload/_curses*' 'lib-dynload/_dbm*' 'lib-dynload/nis*' \
		'lib-dynload/_sqlite3*' 'lib-dynload/_ssl*' 'lib-dynload/_hashlib*' \
		'lib-dynload/readline*' 'lib-dynload/_asyncio*' 'lib-dynload/_multiprocessing*' \
		'lib-dynload/ossaudiodev*' 'lib-dynload/audioop*' 'lib-dynload/_crypt*' \
		'lib-dynload/_zoneinfo*' 'lib-dynload/_codecs_[chjkt]*' '*/__pycache__' \
		__pycache__) . | tar -C "$root$stdlib" -x
	mkdir -p "$root/usr/lib/python3/dist-packages"
	tar -C /usr/lib/python3/dist-packages -c --exclude=__pycache__ yaml |
		tar -C "$root/usr/lib/python3/dist-packages" -x
	for so in "$root$stdlib"/lib-dynload/*.so "$root"/usr/lib/python3/dist-packages/yaml/*.so; do
		copy_libs "$so"
	done
	mkdir -p "$root/usr/lib/ynl/pyynl/lib"
	install -m644 "$ksrc"/tools/net/ynl/pyynl/{__init__,cli}.py "$root/usr/lib/ynl/pyynl/"
	install -m644 "$ksrc"/tools/net/ynl/pyynl/lib/*.py "$root/usr/lib/ynl/pyynl/lib/"
	# The controller's spec: ynl_kernel_check.py reads the family's ops and policies with it.
	install -D -m644 "$ksrc/Documentation/netlink/specs/nlctrl.yaml" \
		"$root/usr/lib/ynl/specs/nlctrl.yaml"
	install -D -m644 "$PERMTCP_ROOT/Documentation/netlink/specs/permtcp.yaml" \
		"$root/usr/share/permtcp/permtcp.yaml"
}

# Into build_initramfs's $root: stock Debian server and client programs, unmodified, with
# their libraries (lighttpd and curl: HTTP/1.1 keep-alive; memcached, with busybox nc as
# its client: a line-based request/response protocol), for the takeover of unmodified
# applications. Dies when one is missing on the host (make setup installs them).
copy_servers() {
	local p
	for p in /usr/sbin/lighttpd /usr/bin/curl /usr/bin/memcached; do
		[ -x "$p" ] || die "missing $p (run make setup)"
		copy_prog "$p" "${p#/}"
	done
}

# Into build_initramfs's $root: Debian's ocf-tester (resource-agents) with the OCF shell
# library it and the agents source, the RA API's DTD and xmllint for its meta-data check, and
# permtcp's agents as /usr/lib/ocf/resource.d/permtcp/{peer,owner} (where make install puts
# them), for ocf.sh. All of them are POSIX sh scripts: busybox sh runs them here (Debian's
# dash elsewhere; make lint checks them with shellcheck -s sh). Dies when any of it is
# missing on the host.
copy_ocf() {
	local p
	for p in /usr/sbin/ocf-tester /usr/lib/ocf/lib/heartbeat/ocf-shellfuncs \
		/usr/share/resource-agents/ra-api-1.dtd /usr/bin/xmllint; do
		[ -e "$p" ] || die "missing $p (run make setup)"
	done
	install -D -m755 /usr/sbin/ocf-tester "$root/usr/sbin/ocf-tester"
	mkdir -p "$root/usr/lib/ocf/lib" "$root/usr/lib/ocf/resource.d/permtcp"
	tar -C /usr/lib/ocf/lib -c --exclude=__pycache__ heartbeat | tar -C "$root/usr/lib/ocf/lib" -x
	install -m755 "$PERMTCP_ROOT"/tools/ocf/{peer,owner} "$root/usr/lib/ocf/resource.d/permtcp/"
	install -D -m644 /usr/share/resource-agents/ra-api-1.dtd "$root/usr/share/resource-agents/ra-api-1.dtd"
	copy_prog /usr/bin/xmllint usr/bin/xmllint
}

# Into build_initramfs's $root: Debian's keepalived, unmodified, with its libraries (net-snmp
# brings Perl's: 5 MB more, uncompressed), for keepalived.sh. Dies when it is missing on the
# host (make setup installs it).
copy_keepalived() {
	[ -x /usr/sbin/keepalived ] || die "missing /usr/sbin/keepalived (run make setup)"
	copy_prog /usr/sbin/keepalived usr/sbin/keepalived
}

# Prints the -cpu for accelerator $1: the host's under KVM; under TCG QEMU's "max" without
# the fast string operations (FSRM, ERMS), or PERMTCP_VM_CPU.  With FSRM the guest kernel
# copies with `rep movsb` (memcpy, skb copies, struct moves) and with ERMS clears pages with
# `rep stosb`, which TCG emulates one byte per iteration, where real CPUs move a cache line
# at a time: copies cost several times their weight against other work, as on no real
# machine.  Without them the kernel's unrolled 8-byte loops run instead
# (its code for CPUs without FSRM).  Measured side by side (the bench's snoop part, same
# build): bulk throughput 45.6 -> 74.9 MB/s, the snooping hook 10.4 -> 8.2 us per frame,
# conntrack unchanged (3.0 and 3.5 us).
vm_cpu() { # accel
	if [ "$1" = kvm ]; then
		echo host
	else
		echo "${PERMTCP_VM_CPU:-max,-fsrm,-erms}"
	fi
}

# Prints kernel parameters for a guest run under accelerator $1: none under KVM; under TCG
# `norandmaps`.  QEMU keeps the code it translated per guest virtual address: with address
# space randomization each new process maps its position-independent program and libc at
# other addresses, and every instruction it runs is translated again, process after process.
# Measured in one boot (the first of five runs aside): `permctl --version` 54-70 ms with
# randomization, 6-8 ms without; `/bin/true` (busybox, not position-independent) 4-5 ms
# either way; a static non-PIE `permctl` 11-16 ms with it.  Real CPUs run the same code at
# any address at the same speed: this is the emulator's share of every command's start.
vm_tcg_append() { # accel
	[ "$1" = kvm ] || printf ' norandmaps'
}

# Prints kvm or tcg.  KVM hangs on some of these machines: it is used only where a short
# probe boot (of DIR/initramfs.cpio, mode probe) succeeds; the answer is kept for this host
# boot.  PERMTCP_KVM=0|1 forces the choice.
vm_accel() { # dir
	case "${PERMTCP_KVM:-auto}" in
	0) echo tcg; return ;;
	1) echo kvm; return ;;
	esac
	[ -w /dev/kvm ] || { echo tcg; return; }
	local stamp
	stamp=$PERMTCP_CACHE/kvm-probe-$(cat /proc/sys/kernel/random/boot_id)
	if [ ! -f "$stamp" ]; then
		if timeout --foreground 30 qemu-system-x86_64 -accel kvm -cpu host -m 1024 -smp 2 \
			-nographic -no-reboot -nic none -kernel "$bzimage" -initrd "$1/initramfs.cpio" \
			-append "console=ttyS0 quiet loglevel=3 panic=-1 permtcp.mode=probe" \
			</dev/null >"$1/probe.log" 2>&1 && grep -q 'PERMTCP-DONE rc=0' "$1/probe.log"; then
			echo kvm >"$stamp"
		else
			echo tcg >"$stamp"
		fi
	fi
	cat "$stamp"
}
