#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The multi-VM tier: every cluster node is its own QEMU VM, so an owner's crash is a real
# kill -9 of a whole machine.  client (10.0.0.100), owner (node 1, 10.0.0.1 / fd00::1, the
# service address), peer1 (node 2) and peer2 (node 3) share one flooding bridge (ageing 0)
# inside a network namespace this script creates; nothing is routed anywhere else.  Each VM
# runs selftests/cluster/node.sh, which the script drives through a second serial port (a
# pair of FIFOs).  The three cluster nodes run permtcpd, with a key file this script
# generates (mode 0600) and a configuration per node: nobody types a declaration or a
# takeover; the daemons detect the failure, wait for the failed node's lease, and take over.
#
#   selftests/cluster/run.sh [--short] [--list] [--hb-ms N] [--missed N] [CASE ...]
#   selftests/cluster/run.sh --demo     (make demo)
#   selftests/cluster/run.sh --bench    (make bench-failover; PERMTCP_BENCH=handoff: make
#                                        bench-handoff)
#
# Cases (default: all; --short: kill9-echo4, and handoff4 with 5 connections):
#   kill9-echo4, kill9-echo6  kill -9 of the owner's QEMU during a request/response session
#   kill9-bulk4, kill9-bulk6  kill -9 of the owner's QEMU during a 16 MB download
#   lossy-echo4               kill9-echo4 with netem loss 10% and delay 20 ms on the way
#                             to the client
#   zombie4, zombie6          SIGSTOP of the owner's QEMU until the peers took over, then
#                             SIGCONT: its lease ran out, it sends no segment of its
#                             bindings and no ARP / neighbour message claiming the service
#                             address (capture on the bridge), the peers count it
#   partition4, partition6    the owner's tap cut from the bridge while it runs: it loses
#                             quorum and fences itself; healed, it sends nothing
#   recovery4, recovery6      owner recovery: the owner killed, its VM booted again; the
#                             peers' lists installed before it takes its address back; the
#                             old session ends through peer1, a new one goes to the owner
#   handoff4, handoff6        planned handoff through permtcpd (permtcpd --handoff on the
#                             owner): N sessions (HANDOFF_N, default 20) with traffic
#                             running move to peer1, then back to the owner (permtcpd
#                             --handoff on peer1); every answer right, no reset on the wire,
#                             a new connection goes to the owner
#   handoff-lost4             peer1's answers to the owner's handoff dropped on the way:
#                             at the timeout the owner aborts every session with a reset,
#                             never resumes one; no session gets a wrong answer (those
#                             peer1 took go on with it; with peer1 not mirroring, every
#                             session is reset)
#   keepalived4               keepalived (advert_int 0.1) alone resets the client's
#                             connection at the owner's kill -9; with permtcpd in keepalived
#                             mode the session survives, bytes right, no reset
#   daemons4                  a node starting late learns every declaration and is not
#                             declared down meanwhile; forged, replayed and wrong-key cluster
#                             datagrams and the old plain directive (port 7414), injected
#                             from the client VM, change nothing and are counted
# Each kill case prints its figures: when, after the kill, the owner was last heard, the
# peers' verdict went out, peer1 announced the address and sent its first segment, and the
# client's stall.  Heartbeats every --hb-ms (default 100; PERMTCP_HB_MS), --missed of them
# (default 3; PERMTCP_MISSED) make the dead time.  Prints KTAP, progress lines ("# [ elapsed
# s] step") and a last line "cluster: P passed, F failed, T todo (...)"; exits non-zero when a
# check failed.  Environment: KDIR, MODULE, PERMTCP_KVM as for selftests/run_vm.sh.  The
# fault helpers: vm_kill, vm_stop, vm_cont, vm_partition, vm_heal, vm_netem.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/common.sh
. "$here/../../scripts/common.sh"
# shellcheck source=../vm.sh
. "$here/../vm.sh"

ALL_CASES=(kill9-echo4 kill9-echo6 kill9-bulk4 kill9-bulk6 lossy-echo4 zombie4 zombie6 partition4 partition6
	daemons4 recovery4 recovery6 handoff4 handoff6 handoff-lost4 keepalived4)
declare -A PLAN=([kill9-echo4]=6 [kill9-echo6]=6 [kill9-bulk4]=8 [kill9-bulk6]=8 [lossy-echo4]=6
	[zombie4]=12 [zombie6]=12 [partition4]=14 [partition6]=14 [daemons4]=12
	[recovery4]=16 [recovery6]=16 [handoff4]=12 [handoff6]=12 [handoff-lost4]=7 [keepalived4]=8)
HB_MS=${PERMTCP_HB_MS:-100}
MISSED=${PERMTCP_MISSED:-3}
MODE=tier
cases=()
while [ $# -gt 0 ]; do
	case "$1" in
	--short) cases=(kill9-echo4 handoff4) HANDOFF_N=${HANDOFF_N:-5} ;;
	--list) printf '%s\n' "${ALL_CASES[@]}"; exit 0 ;;
	--hb-ms) HB_MS=$2; shift ;;
	--missed) MISSED=$2; shift ;;
	--demo) MODE=demo ;;
	--bench) MODE=bench ;;
	-*) die "unknown option $1" ;;
	*) [ -n "${PLAN[$1]:-}" ] || die "unknown case $1 (--list)"; cases+=("$1") ;;
	esac
	shift
done
[ ${#cases[@]} -gt 0 ] || cases=("${ALL_CASES[@]}")

for t in tcpdump tc nft; do command -v "$t" >/dev/null || die "missing $t (run make setup)"; done
[ "$(id -u)" = 0 ] || die "the multi-VM tier needs root (network namespace, taps)"
vm_inputs
work=$PERMTCP_ROOT/target/cluster/$(basename "$KDIR")
mkdir -p "$work"
rm -f "$work"/*.ctl* "$work"/*.console "$work"/*.cap* "$work"/*.out "$work"/*.pcap* "$work"/*.log
T0=$(date +%s.%N)
now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d", (b - a) * 1000 }'; }
progress() { printf '# [%6.1fs] %s\n' "$(awk -v a="$T0" -v b="$(now)" 'BEGIN { print b - a }')" "$*"; }

# ---- KTAP ----
KN=0 KPASS=0 KFAIL=0 KTODO=0
result() { # ok|fail description [todo-reason]
	local st=ok
	KN=$((KN + 1))
	[ "$1" = ok ] || st="not ok"
	if [ -n "${3:-}" ]; then
		echo "$st $KN $2 # TODO $3"
		KTODO=$((KTODO + 1))
	else
		echo "$st $KN $2"
		if [ "$1" = ok ]; then KPASS=$((KPASS + 1)); else KFAIL=$((KFAIL + 1)); fi
	fi
}
# check_here DESCRIPTION COMMAND...: as check, with COMMAND run in this shell (it may set
# variables); its output goes to the log only when it fails.
check_here() {
	local d=$1
	shift
	if "$@" >"$work/check.out" 2>&1; then
		result ok "$d"
	else
		echo "# failed: $*"
		sed 's/^/#   /' "$work/check.out"
		result fail "$d"
	fi
}
check() { # description command...
	local d=$1 out
	shift
	if out=$("$@" 2>&1); then
		result ok "$d"
	else
		echo "# failed: $*"
		[ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/#   /'
		result fail "$d"
	fi
}

# ---- the nodes ----
NODES=(client owner peer1 peer2)
declare -A ROLE=([client]=client [owner]=owner [peer1]=peer [peer2]=peer)
declare -A ID=([client]=100 [owner]=1 [peer1]=2 [peer2]=3)
declare -A VM_PID=() CTL_FD=() CAT_PID=() BOOT_T=()
mac() { printf '02:00:00:00:00:%02x' "${ID[$1]}"; }
NS=permtcp-cluster-$$
CAP_PID=

cleanup() {
	local n
	[ -z "$CAP_PID" ] || kill "$CAP_PID" 2>/dev/null
	for n in "${!VM_PID[@]}"; do kill -9 "${VM_PID[$n]}" 2>/dev/null; done
	for n in "${!CAT_PID[@]}"; do kill "${CAT_PID[$n]}" 2>/dev/null; done
	wait 2>/dev/null
	ip netns del "$NS" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# NODE's tap on the bridge, a hub's port (it learns no MAC).
tap_port() {
	ip -n "$NS" link set "tap-$1" master br0 &&
		ip -n "$NS" link set "tap-$1" type bridge_slave learning off &&
		ip -n "$NS" link set "tap-$1" up
}

# The segment: a bridge that learns no MAC (ageing 0, and no learning on its ports: a MAC
# learnt stays until the bridge's garbage collection, and frames to it meanwhile go to its
# port only) and ignores multicast membership, so that every port sees every frame; one tap
# per VM.  The namespace has no IPv6 (its bridge
# and taps send nothing of their own) and no address: it only carries the VMs' frames.
net_up() {
	local n
	ip netns add "$NS" || return 1
	ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	ip -n "$NS" link set lo up
	ip -n "$NS" link add br0 type bridge ageing_time 0 mcast_snooping 0
	ip -n "$NS" link set br0 up
	for n in "${NODES[@]}"; do
		# A long queue: a VM the loaded host does not run for a while must not lose the
		# frames meanwhile (a peer that misses the owner's data cannot take over).
		ip -n "$NS" tuntap add "tap-$n" mode tap &&
			ip -n "$NS" link set "tap-$n" txqueuelen 10000 &&
			tap_port "$n" || return 1
	done
}

# The test kernel has neither ACPI nor a PIT reference, so it cannot calibrate the TSC and
# keeps time in jiffies: a VM then counts no time while its QEMU is stopped (or not run by
# a loaded host), and a SIGSTOP'd owner's lease would still be valid when it resumes.  Under
# TCG the guest's TSC is the host's: given its frequency, the guest's clock keeps counting
# real time whatever happens to its QEMU, as a real machine's does.
TSC_ARGS=
if grep -q -w constant_tsc /proc/cpuinfo; then
	TSC_ARGS=$(awk -F: '/^cpu MHz/ { printf " tsc_early_khz=%d tsc=reliable", $2 * 1000; exit }' /proc/cpuinfo)
fi

vm_running() { [ -n "${VM_PID[$1]:-}" ] && kill -0 "${VM_PID[$1]}" 2>/dev/null; }

# Starts node $1's VM; vm_ready waits for its agent.
vm_boot() { # node [managed: the service addresses come from permtcpd]
	local n=$1 fd cmdline cpu
	cpu=$(vm_cpu "$accel")
	if [ -n "${CTL_FD[$n]:-}" ]; then
		fd=${CTL_FD[$n]}
		exec {fd}>&-
	fi
	rm -f "$work/$n.ctl.in" "$work/$n.ctl.out"
	mkfifo "$work/$n.ctl.in" "$work/$n.ctl.out"
	: >"$work/$n.ctl.log"
	cmdline="console=ttyS0 quiet loglevel=3 panic=-1 oops=panic permtcp.mode=cluster"
	cmdline+=" permtcp.role=${ROLE[$n]} permtcp.ip4=10.0.0.${ID[$n]}/24"
	cmdline+=" permtcp.ip6=fd00::${ID[$n]}/64"
	[ "$n" = client ] || cmdline+=" permtcp.node=${ID[$n]} permtcp.cip4=10.1.0.${ID[$n]}/24"
	[ "${2:-}" != managed ] || cmdline+=" permtcp.managed=1"
	cmdline+=$TSC_ARGS$(vm_tcg_append "$accel")
	BOOT_T[$n]=$(now)
	ip netns exec "$NS" qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -m 384 -smp 1 \
		-display none -nodefaults -no-reboot \
		-kernel "$bzimage" -initrd "$work/initramfs.cpio" -append "$cmdline" \
		-chardev file,id=con,path="$work/$n.console" -serial chardev:con \
		-chardev pipe,id=ctl,path="$work/$n.ctl" -serial chardev:ctl \
		-netdev tap,id=n0,ifname="tap-$n",script=no,downscript=no \
		-device virtio-net-pci,netdev=n0,mac="$(mac "$n")",romfile= \
		${OWNER_PROF:+$([ "$n" = owner ] && echo "-plugin $OWNER_PLUGIN,out=$OWNER_PROF/prof.txt,user=2,snap=1")} \
		</dev/null >"$work/$n.qemu.log" 2>&1 &
	VM_PID[$n]=$!
	cat "$work/$n.ctl.out" >>"$work/$n.ctl.log" &
	CAT_PID[$n]=$!
	exec {fd}<>"$work/$n.ctl.in"
	CTL_FD[$n]=$fd
}

vm_ready() { # node...: waits up to 180 s for each agent's @@READY
	local n deadline=$((SECONDS + 180))
	for n in "$@"; do
		until grep -q '^@@READY' "$work/$n.ctl.log"; do
			if ! vm_running "$n" || [ $SECONDS -ge $deadline ]; then
				echo "# $n: no agent (console: $work/$n.console)"
				tail -n 20 "$work/$n.console" "$work/$n.qemu.log" 2>/dev/null | sed 's/^/#   /'
				return 1
			fi
			sleep 0.1
		done
		progress "$n up in $(ms "${BOOT_T[$n]}" "$(now)") ms"
	done
}

# vm_run [-t SECONDS] NODE COMMAND: runs COMMAND (one line of sh) in NODE's VM, prints its
# output and returns its status (254: no answer in time, default 60 s; 255: the VM is gone).
CMD_SEQ=0
vm_run() {
	local t=60 n id off log
	if [ "$1" = -t ]; then t=$2; shift 2; fi
	n=$1
	shift
	log=$work/$n.ctl.log
	CMD_SEQ=$((CMD_SEQ + 1))
	id=$BASHPID.$CMD_SEQ
	off=$(stat -c %s "$log")
	vm_running "$n" || { echo "# $n: VM not running"; return 255; }
	printf '%s %s\n' "$id" "$*" >&"${CTL_FD[$n]}"
	local deadline=$((SECONDS + t))
	until tail -c +$((off + 1)) "$log" | grep -q "^@@END $id [0-9]* @@"; do
		vm_running "$n" || { echo "# $n: VM gone during: $*"; return 255; }
		[ $SECONDS -lt $deadline ] || { echo "# $n: no answer in ${t}s to: $*"; return 254; }
		# Not faster: the host's two cores also run the four VMs.
		sleep 0.1
	done
	tail -c +$((off + 1)) "$log" | awk -v id="$id" '
		$1 == "@@END" && $2 == id { rc = $3; done = 1; exit }
		{ line[n++] = $0 }
		END {
			if (n > 0 && line[n - 1] == "") n--
			for (i = 0; i < n; i++) print line[i]
			exit rc
		}'
}

# Runs the same command on several nodes at once; each one's output goes to WORK/NODE.out.
vm_run_all() { # "node..." command
	local n pids=() rc=0
	for n in $1; do
		vm_run "$n" "$2" >"$work/$n.out" 2>&1 &
		pids+=($!)
	done
	for n in "${pids[@]}"; do wait "$n" || rc=1; done
	return $rc
}

# ---- faults ----
# kill -9 of NODE's QEMU; T_GONE is when it was gone (the harness's failure detection: it
# waits for the process).
vm_kill() {
	kill -9 "${VM_PID[$1]}"
	wait "${VM_PID[$1]}" 2>/dev/null
	T_GONE=$(now)
	unset "VM_PID[$1]"
}
vm_stop() { kill -STOP "${VM_PID[$1]}"; }
# vm_nice N node...: every thread of the nodes' QEMU (vCPU and I/O threads) at nice N.
vm_nice() {
	local n=$1 v
	shift
	for v in "$@"; do
		renice -n "$n" -p $(ls "/proc/${VM_PID[$v]}/task") >/dev/null
	done
}
# vm_pin CPUS node...: every thread of the nodes' QEMU on the host CPUs CPUS (a taskset
# list); vm_pin all node... lets them run anywhere again.
vm_pin() {
	local c=$1 v
	shift
	[ "$c" = all ] && c=0-$(($(nproc) - 1))
	for v in "$@"; do
		taskset -a -p -c "$c" "${VM_PID[$v]}" >/dev/null
	done
}
vm_cont() { kill -CONT "${VM_PID[$1]}"; }
# Partition: NODE's tap leaves the bridge and goes down; vm_heal undoes it.
vm_partition() { ip -n "$NS" link set "tap-$1" nomaster down; }
vm_heal() { tap_port "$1"; }
# Loss and delay on NODE's tap (both directions of its only link): vm_netem NODE "loss 5%
# delay 20ms"; vm_netem NODE off.
vm_netem() {
	if [ "$2" = off ]; then
		ip netns exec "$NS" tc qdisc del dev "tap-$1" root 2>/dev/null
	else
		# shellcheck disable=SC2086 # netem's arguments are words
		ip netns exec "$NS" tc qdisc replace dev "tap-$1" root netem $2
	fi
}

# ---- permtcpd: the key and each node's configuration ----
CLUSTER_NODES=(owner peer1 peer2)
# The shared key, 32 random bytes, mode 0600; made once per run.
make_key() {
	(umask 077 && echo "1 $(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" >"$work/keys")
}
# Node $1's configuration (node id): its cluster address 10.1.0.N on eth0, the two others as
# peers, heartbeats every HB_MS, MISSED missed; its declaration: 10.0.0.N, fd00::N, its MAC,
# ports 80-90.  The cluster addresses are not service addresses: once a peer took 10.0.0.1
# over, what the cluster sends to node 1 must still reach node 1 (a zombie learns the verdict).
pd_conf() { # id [keepalived]
	local p
	cat <<-CONF
		# SPDX-License-Identifier: GPL-2.0
		cluster_id = 7
		node_id = $1
		incarnation_file = "/var/lib/permtcpd/incarnation"
		key_file = "/etc/permtcpd/keys"
		send_key_id = 1
		bind = ["10.1.0.$1:7415"]
		interface = "eth0"
		status_socket = "/run/permtcpd/status.sock"
		heartbeat_interval_ms = $HB_MS
		missed_heartbeats = $MISSED
	CONF
	for p in 1 2 3; do
		[ "$p" = "$1" ] || printf '[[peer]]\nnode_id = %s\naddrs = ["10.1.0.%s:7415"]\n' "$p" "$p"
	done
	printf '[declaration]\naddrs = ["10.0.0.%s", "fd00::%s"%s]\nmacs = ["02:00:00:00:00:%02x"]\nports = ["80-90"]\n' \
		"$1" "$1" "$([ "${2:-}" = keepalived ] && [ "$1" = 1 ] && echo ", \"$KA_VIP\"")" "$1"
	# keepalived mode: keepalived holds the owner's address KA_VIP and tells permtcpd.
	[ "${2:-}" != keepalived ] ||
		printf '[keepalived]\nfifo = "/tmp/t/ka.fifo"\ninstances = { VI_1 = 1 }\n'
}
# pd_conf with manage_addresses (owner recovery): a top-level key, so before the tables.
pd_conf_managed() { # id
	pd_conf "$1" | awk '/^\[/ && !done { print "manage_addresses = true"; done = 1 } { print }'
}
# Copies host file $2 to $3 in node $1's VM, mode $4.
vm_put() { # node file dest mode
	vm_run "$1" "mkdir -p $(dirname "$3") && echo $(base64 -w0 <"$2") | base64 -d >$3 && chmod $4 $3"
}
# The key and its configuration into a freshly booted cluster node.
pd_install() { # node [keepalived|managed]
	if [ "${2:-}" = managed ]; then
		pd_conf_managed "${ID[$1]}" >"$work/$1.toml"
	else
		pd_conf "${ID[$1]}" "${2:-}" >"$work/$1.toml"
	fi
	vm_put "$1" "$work/keys" /etc/permtcpd/keys 600 &&
		vm_put "$1" "$work/$1.toml" /etc/permtcpd/permtcpd.toml 644 &&
		vm_run "$1" "permtcpd --config /etc/permtcpd/permtcpd.toml --check"
}

# ---- capture: every frame on the bridge, into a pcap file (256 bytes of each) ----
cap_start() { # file
	# Ahead of the VMs' QEMU threads: a starved capture fell seconds behind the link and lost
	# its tail at cap_stop.
	nice -n -15 ip netns exec "$NS" tcpdump -i br0 -n -U -s 256 -Z root -w "$1" 2>"$1.err" &
	CAP_PID=$!
	CAP_FILE=$1
	local i=0
	until grep -q 'listening on' "$1.err" 2>/dev/null || [ $i -ge 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
}
cap_stop() {
	[ -z "$CAP_PID" ] || { sleep 0.5; kill "$CAP_PID" 2>/dev/null; wait "$CAP_PID" 2>/dev/null; }
	CAP_PID=
}
# The capture's frames matching a tcpdump filter, as text with epoch timestamps.
cap_text() { # filter...
	tcpdump -r "$CAP_FILE" -e -n -tt "$@" 2>/dev/null
}
cap_after() { awk -v t="$1" '$1 > t'; }
# TCP flags in a capture filter, IPv4 and IPv6 (tcp[] reads IPv4 only; over IPv6, the TCP
# header follows the 40-byte header: the segments here carry no extension header).
CAP_RST='(tcp[tcpflags] & tcp-rst != 0 or (ip6[6] == 6 and ip6[53] & 4 != 0))'
CAP_SYN='(tcp[tcpflags] & tcp-syn != 0 or (ip6[6] == 6 and ip6[53] & 2 != 0))'
# Frames from the owner's MAC.
owner_frames() { cap_text "ether src $(mac owner)"; }
# ARP and neighbour discovery from the owner claiming a service address (10.0.0.1, fd00::1):
# replies and requests from it, advertisements for it, solicitations from it.
owner_claims() {
	cap_text "ether src $(mac owner) and (arp or icmp6)" | grep -E \
		-e 'tell 10\.0\.0\.1,' -e 'Reply 10\.0\.0\.1 is-at' \
		-e 'tgt is fd00::1(,| |$)' -e 'fd00::1 > [0-9a-f:]*: ICMP6, neighbor solicitation'
}
# TCP segments the owner sent from its service bindings (10.0.0.1 or fd00::1, ports 80-90).
owner_service_tcp() {
	cap_text "ether src $(mac owner) and tcp and (src host 10.0.0.1 or src host fd00::1) and src portrange 80-90"
}
# What a capture excerpt holds, one line per kind of frame with its count.
cap_kinds() {
	sed -e 's/^[0-9.]* [0-9a-f:]* > [0-9a-f:]*, //' \
		-e 's/ethertype ARP[^:]*: \(Request\|Reply\) \([^,]*\).*/ARP \1 \2/' \
		-e 's/ethertype IPv[46][^:]*: [0-9a-f:.]* > \([0-9a-f:.]*\): Flags \[\([^]]*\)\].*/TCP [\2] to \1/' \
		-e 's/ethertype IPv[46][^:]*: \([0-9a-f:.]*\) > \([0-9a-f:.]*\): UDP.*/UDP \1 > \2/' \
		-e 's/ethertype IPv6[^:]*: [0-9a-f:]* > [0-9a-f:]*: ICMP6, \([a-z -]*\).*/ICMP6 \1/' \
		-e 's/ethertype IPv4[^:]*: [0-9.]* > \([0-9.]*\): ICMP \([a-z ]*\),.*/ICMP \2 to \1/' |
		sort | uniq -c | sed 's/^ */    /'
}
# permtcpd's NodeDown messages on the wire, after $1: "TIME FROM-IP NODE vote|verdict" (the
# header's type 3 at byte 5, the body's node and kind after the 40-byte header).
cap_nodedowns() { # after
	tcpdump -r "$CAP_FILE" -n -tt -x 'udp dst port 7415' 2>/dev/null | awk -v after="$1" '
		function num(h, i, v) {
			for (i = 1; i <= length(h); i++) v = v * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1
			return v
		}
		function flush() {
			if (t != "" && t > after && substr(hex, 57, 8) == "50544344" && substr(hex, 67, 2) == "03")
				printf "%s %s %d %s\n", t, src, num(substr(hex, 137, 8)),
					substr(hex, 145, 2) == "01" ? "verdict" : "vote"
		}
		/^[0-9]/ { flush(); t = $1; src = $3; sub(/\.[0-9]+$/, "", src); hex = ""; next }
		/^[ \t]+0x/ { for (i = 2; i <= NF; i++) hex = hex $i }
		END { flush() }'
}

# ---- a case ----
# The cluster afresh: every node stopped first (programs, daemons, module), then the module
# and permtcpd started on the cluster nodes but those named (they start later, cluster_late);
# waits until each started daemon sees the others alive, with quorum and its lease.
cluster_up() { # [late node...]
	local n late=" $* " up=() count
	vm_run_all "${NODES[*]}" "sh /selftests/cluster/node.sh stop" || {
		for n in "${NODES[@]}"; do sed "s/^/# $n stop: /" "$work/$n.out"; done
		return 1
	}
	for n in "${CLUSTER_NODES[@]}"; do [[ $late == *" $n "* ]] || up+=("$n"); done
	vm_run_all "${up[*]}" "sh /selftests/cluster/node.sh start" || {
		for n in "${up[@]}"; do sed "s/^/# $n start: /" "$work/$n.out"; done
		return 1
	}
	count=${#up[@]}
	vm_run_all "${up[*]}" "sh /selftests/cluster/node.sh wait-ready $count 300" || {
		for n in "${up[@]}"; do sed "s/^/# $n: /" "$work/$n.out"; done
		return 1
	}
}
# cluster_up, tried again (twice at most) when the daemons did not all settle: on a loaded
# host a VM not run for a dead time is rightly declared down at once, and exits.  Each retry
# is reported.
cluster_up_settled() { # [late node...]
	local try
	for try in 1 2 3; do
		cluster_up "$@" && return 0
		[ $try = 3 ] || echo "# the cluster did not settle (a VM starved for a dead time?): starting it again"
	done
	return 1
}

case_start() { # name [late node...]
	local n missing=()
	CASE=$1
	shift
	CASE_T=$(now)
	progress "case $CASE"
	for n in "${NODES[@]}"; do vm_running "$n" || missing+=("$n"); done
	if [ ${#missing[@]} -gt 0 ]; then
		progress "booting ${missing[*]}"
		for n in "${missing[@]}"; do vm_boot "$n"; done
		vm_ready "${missing[@]}" || return 1
		for n in "${missing[@]}"; do
			[ "$n" = client ] || pd_install "$n" >/dev/null || return 1
		done
	fi
	cluster_up_settled "$@" || return 1
	cap_start "$work/$CASE.pcap"
	progress "permtcpd up on the cluster nodes (heartbeats ${HB_MS} ms, ${MISSED} missed), capture on the bridge running"
}

# Frames tap-$1 dropped on their way to its VM (it did not read them in time).
tap_dropped() {
	ip -n "$NS" -s -j link show "tap-$1" | grep -o '"tx":{[^}]*' | grep -o '"dropped":[0-9]*' | cut -d: -f2
}
tap_drops() {
	local n d out=
	for n in "${NODES[@]}"; do
		d=$(tap_dropped "$n")
		out+=" $n ${d:-?},"
	done
	echo "# frames dropped on the way to each VM since the start:${out%,}"
}
# Frames the peers' taps dropped since the start, both peers.
peer_drops() { echo $(($(tap_dropped peer1) + $(tap_dropped peer2))); }

case_end() {
	cap_stop
	tap_drops
	# A case that failed keeps its capture under a name no rerun overwrites.
	if [ "$KFAIL" -gt "${CASE_KFAIL:-0}" ] && [ -n "${CAP_FILE:-}" ] && [ -f "$CAP_FILE" ]; then
		local kept
		kept="${CAP_FILE%.pcap}.failed-$(date +%Y%m%d-%H%M%S).pcap"
		cp "$CAP_FILE" "$kept" && echo "# the failed case's capture: $kept"
	fi
	CASE_KFAIL=$KFAIL
	progress "case $CASE done in $(ms "$CASE_T" "$(now)") ms"
}

# Both peers mirror N ready connections (within 5 s), and no daemon has reached a verdict
# yet (a VM the loaded host did not run for a dead time is declared down: said so).
mirrored() { # count
	local n
	if ! vm_run_all "peer1 peer2" "! grep 'verdict' /tmp/t/permtcpd.log"; then
		echo "a verdict before the fault (the host starved a VM for a dead time):"
		cat "$work/peer1.out" "$work/peer2.out"
		return 1
	fi
	for n in peer1 peer2; do
		mirrored_on "$n" "$1" || return 1
	done
}
# Node $1 mirrors N ready connections (within 5 s, or $3 tenths of a second); when it does
# not, its last entries and its snooping counters (limits hit, SYNs, unsynced entries).
mirrored_on() { # node count [tenths]
	vm_run -t 120 "$1" "i=0; until [ \$(permctl --json conns | grep -o '\"ready\":true' | wc -l) -ge $2 ]; do [ \$i -lt ${3:-50} ] || { permctl conns | tail -n 5; permctl --json stats; exit 1; }; sleep 0.1; i=\$((i + 1)); done" |
		sed "s/^/$1: /"
	[ "${PIPESTATUS[0]}" = 0 ]
}

# Node $1's mirror has every connection node $2 serves on port 80 ($3 of them) established
# and ready, within 5 s; by the client's port (a count of ready entries would count other
# connections too). Names those missing, with $1's mirror, when one is.
mirrors_served() { # mirroring-node serving-node count
	local want have missing i
	want=$(vm_run "$2" "ss -Htn state established '( sport = :80 )'" | awk '{ print $4 }' | sed 's/.*://' | sort)
	[ "$(wc -w <<<"$want")" = "$3" ] || { echo "$2 serves $(wc -w <<<"$want") on port 80, not $3"; return 1; }
	for i in $(seq 50); do
		have=$(vm_run "$1" "permctl --json conns" |
			grep -o '"client":"[^"]*","state":"ESTAB","opened_by":"[a-z]*","ready":true' |
			sed 's/^"client":"[^"]*:\([0-9]*\)".*/\1/' | sort)
		missing=$(comm -23 <(echo "$want") <(echo "$have") | tr '\n' ' ')
		[ -n "${missing// /}" ] || return 0
		sleep 0.1
	done
	echo "not in $1's mirror, established and ready: the client ports $missing"
	vm_run "$1" "permctl conns" | sed "s/^/$1: /"
	return 1
}

# Nobody types a takeover: both peers' daemons reach the verdict, wait for the owner's lease
# and take it over.  peer1 (node 2, first by the policy) must take N connections, peer2 none,
# and reset or fail none.  Their logs' lines go to the output.
daemons_took_over() { # count
	local n rc=0 t=$((HB_MS * MISSED * 3 / 100 + 150))
	vm_run_all "peer1 peer2" "sh /selftests/cluster/node.sh wait-log 'took over node 1:' $t" || rc=1
	T_TAKEN=$(now)
	for n in peer1 peer2; do
		vm_run "$n" "grep -E 'suspected|verdict|waiting|taking over|assumed|TAKEOVER|took over|directive' /tmp/t/permtcpd.log" |
			sed "s/^/# $n: /" >&3
	done
	[ $rc = 0 ] || return 1
	vm_run peer1 "grep -q 'took over node 1: $1 connections' /tmp/t/permtcpd.log" &&
		vm_run peer2 "grep -q 'took over node 1: 0 connections.* 0 reset), .* 0 failed' /tmp/t/permtcpd.log"
}

logs_clean() { # node...
	local n rc=0
	for n in "$@"; do
		vm_run "$n" "sh /selftests/cluster/node.sh log-clean" | sed "s/^/$n: /" || rc=1
	done
	return $rc
}

# The owner's frames after its death: none.
silent_after() { # time
	local after
	after=$(owner_frames | cap_after "$1")
	[ -z "$after" ] || { printf '%s\n' "$after" | head -n 10; return 1; }
}

# kill -9 of the owner mid-session.  Sets T_KILL and T_DEAD (its QEMU reaped).
kill_owner() {
	T_KILL=$(now)
	vm_kill owner
	T_DEAD=$T_GONE
	progress "owner killed (kill -9 of its QEMU); gone after $(ms "$T_KILL" "$T_DEAD") ms"
}

# The fail-over's figures, in ms after the kill, from the capture (host clock) and peer1's
# log; sets FIG_* and prints them.  $1: the service address (10.0.0.1 or fd00::1), $2: the
# client's stall and what it is.
figures() { # service stall-ms what
	local log verdict_line line
	# The owner's last frame before its QEMU was gone (it may boot again later).
	FIG_LAST=$(owner_frames | awk -v t="${T_DEAD:-9e99}" '$1 <= t' | tail -n1 | cut -d' ' -f1)
	FIG_VERDICT=$(cap_nodedowns "$T_KILL" | awk '$4 == "verdict" { print $1; exit }')
	if [ "$1" = fd00::1 ]; then
		FIG_ANNOUNCE=$(cap_text "icmp6 and ether src $(mac peer1)" | cap_after "$T_KILL" |
			awk '/neighbor advertisement, tgt is fd00::1/ { print $1; exit }')
	else
		FIG_ANNOUNCE=$(cap_text "arp and ether src $(mac peer1)" | cap_after "$T_KILL" |
			awk '/tell 10\.0\.0\.1,|Reply 10\.0\.0\.1 is-at/ { print $1; exit }')
	fi
	FIG_FIRST=$(cap_text "tcp and ether src $(mac peer1) and src host $1" | cap_after "$T_KILL" |
		awk '{ print $1; exit }')
	log=$(vm_run peer1 "cat /tmp/t/permtcpd.log")
	verdict_line=$(grep -m1 -E "verdict: node 1|verdict: node 1 " <<<"$log")
	line=$(grep -m1 'took over node 1:' <<<"$log")
	FIG_SILENCE=$(sed -n 's/.*last heard \([0-9]*\) ms ago.*/\1/p' <<<"$verdict_line")
	FIG_WAIT=$(sed -n 's/.*lease wait \([0-9]*\) ms.*/\1/p' <<<"$line")
	FIG_KERNEL=$(sed -n 's/.*kernel \([0-9]*\) ms.*/\1/p' <<<"$line")
	FIG_DONE=$(sed -n 's/.*done \([0-9]*\) ms after the verdict.*/\1/p' <<<"$line")

	rel() { [ -n "$1" ] && ms "$T_KILL" "$1" || echo "?"; }
	echo "# $CASE figures (ms after kill -9): owner last heard $(rel "$FIG_LAST"), verdict on the wire" \
		"$(rel "$FIG_VERDICT"), address announced by peer1 $(rel "$FIG_ANNOUNCE"), peer1's first segment" \
		"$(rel "$FIG_FIRST")"
	echo "# $CASE peer1: verdict after ${FIG_SILENCE:-?} ms of silence, lease wait ${FIG_WAIT:-?} ms," \
		"takeover (assume + TAKEOVER) ${FIG_KERNEL:-?} ms, done ${FIG_DONE:-?} ms after the verdict"
	echo "# $CASE client stall: $3 $2 ms"
	FIGS+=("$CASE: verdict $(rel "$FIG_VERDICT") ms after the kill, lease wait ${FIG_WAIT:-?} ms, takeover ${FIG_KERNEL:-?} ms, client stall $2 ms ($3)")
}

case_echo() { # family [netem-on-the-client's-tap]
	local vip=10.0.0.1 svc=10.0.0.1 out worst name=kill9-echo$1
	[ "$1" = 6 ] && vip="[fd00::1]" svc=fd00::1
	[ -z "${2:-}" ] || name=lossy-echo$1
	case_start "$name" || { result fail "$CASE: cluster up"; return; }
	result ok "$CASE: permtcpd up on the three nodes, every declaration in every kernel"
	if [ -n "${2:-}" ]; then
		vm_netem client "$2"
		progress "netem on the client's tap: $2"
	fi
	vm_run owner "ptcp-testapp echo-serve [::]:80 >/tmp/t/app.log 2>&1 &"
	vm_run_all "peer1 peer2" "ptcp-testapp echo-serve [::]:80 --resume >/tmp/t/app.log 2>&1 &"
	sleep 0.5
	vm_run client "ptcp-testapp echo-client $vip:80 40 /tmp/t/p >/tmp/t/client.out 2>&1 & echo \$! >/tmp/t/client.pid"
	vm_run client "sh /selftests/cluster/node.sh wait-file /tmp/t/p.wait 150"
	check "$CASE: 20 rounds done, both peers mirror the connection (ready)" mirrored 1
	kill_owner
	# Round 20 goes out while the owner is dead.
	vm_run client "touch /tmp/t/p"
	check_here "$CASE: no takeover typed: the peers' daemons take over, peer1 the connection, peer2 none" \
		daemons_took_over 1
	progress "taken over"
	out=$(vm_run -t 90 client "sh /selftests/cluster/node.sh wait-gone \$(cat /tmp/t/client.pid) 600; cat /tmp/t/client.out")
	printf '%s\n' "$out" | sed 's/^/# client: /'
	vm_run peer1 "cat /tmp/t/app.log" | sed 's/^/# peer1 app: /'
	check "$CASE: the client finished all 40 rounds, every answer right, no reset" \
		grep -q '^ok rounds=40 ' <<<"$out"
	worst=$(sed -n 's/.*worst_round_ms=\([0-9]*\).*/\1/p' <<<"$out")
	cap_stop
	figures "$svc" "${worst:-?}" "worst round (round 20, sent after the kill)"
	check "$CASE: the owner sends nothing after its QEMU is gone (capture on the bridge)" \
		silent_after "$T_DEAD"
	check "$CASE: kernel logs of client, peer1 and peer2 clean" logs_clean client peer1 peer2
	[ -z "${2:-}" ] || vm_netem client off
	case_end
}

case_bulk() { # family
	local vip=10.0.0.1 svc=10.0.0.1 out gap want
	local bytes=16000000
	[ "$1" = 6 ] && vip="[fd00::1]" svc=fd00::1
	case_start "kill9-bulk$1" || { result fail "$CASE: cluster up"; return; }
	result ok "$CASE: permtcpd up on the three nodes, every declaration in every kernel"
	vm_run owner "ptcp-testapp down-serve [::]:80 $bytes >/tmp/t/app.log 2>&1 &"
	vm_run_all "peer1 peer2" "ptcp-testapp down-serve [::]:80 $bytes --resume >/tmp/t/app.log 2>&1 &"
	sleep 0.5
	vm_run client "ptcp-testapp down-client $vip:80 $bytes /tmp/t/p >/tmp/t/client.out 2>&1 & echo \$! >/tmp/t/client.pid"
	# The client stops reading after a quarter: the owner's buffers fill.
	vm_run client "sh /selftests/cluster/node.sh wait-file /tmp/t/p.wait 300"
	sleep 1
	check "$CASE: a quarter read, both peers mirror the connection (ready)" mirrored 1
	kill_owner
	# The client reads what reached it, then waits for the rest.
	vm_run client "touch /tmp/t/p"
	check_here "$CASE: no takeover typed: the peers' daemons take over, peer1 the connection, peer2 none" \
		daemons_took_over 1
	progress "taken over"
	vm_run peer1 "permctl taken" | sed 's/^/# peer1: /'
	out=$(vm_run -t 200 client "sh /selftests/cluster/node.sh wait-gone \$(cat /tmp/t/client.pid) 1800; cat /tmp/t/client.out")
	progress "download over"
	printf '%s\n' "$out" | sed 's/^/# client: /'
	vm_run peer1 "cat /tmp/t/app.log" | sed 's/^/# peer1 app: /'
	check "$CASE: the client read all $bytes bytes, each right, no reset" \
		grep -q "^ok bytes=$bytes " <<<"$out"
	want=$("$testapp" stream-sum "$bytes")
	check "$CASE: the bytes equal a crash-free run ($want)" grep -q "$want" <<<"$out"
	check "$CASE: peer1's application verified the kept sent bytes and resumed" \
		vm_run peer1 "grep -q 'verified [1-9][0-9]* kept sent bytes' /tmp/t/app.log"
	gap=$(sed -n 's/.*worst_gap_ms=\([0-9]*\).*/\1/p' <<<"$out")
	cap_stop
	figures "$svc" "${gap:-?}" "longest gap between two reads"
	check "$CASE: the owner sends nothing after its QEMU is gone (capture on the bridge)" \
		silent_after "$T_DEAD"
	check "$CASE: kernel logs of client, peer1 and peer2 clean" logs_clean client peer1 peer2
	case_end
}

# The owner's kernel: its lease ran out, and it dropped N > 0 segments of its bindings.
owner_fenced() {
	local st
	st=$(vm_run owner "permctl status; permctl --json status") || return 1
	printf '%s\n' "$st" | grep -v '^{' | sed 's/^/owner: /'
	grep -q 'run out: fenced' <<<"$st" && grep -q '"fenced":[1-9]' <<<"$st"
}

# The owner does not die: it stops (SIGSTOP of its QEMU, a hung machine; or its tap is cut
# from the bridge, a partition), the peers' daemons declare it down and, after the lease
# wait, take over, then it comes back (SIGCONT; the tap back on the bridge).  Two echo
# sessions (A, B) at round 20 and a 16 MB download (C) whose client stopped reading after a
# quarter (the owner's buffers are full: it keeps probing the closed window).  A sends round
# 20 during the fault and finishes through peer1; C resumes reading and finishes through
# peer1; B goes on after the owner is back.  The owner's lease has run out: its kernel drops
# every segment of its bindings (A's queued request answered, C's window probes), so the
# bridge sees none of them from it; its daemon learns it was declared down and exits, and the
# peers count its messages as split-brain alarms.
case_zombie() { # stop|partition 4|6
	local out outa outc kinds after seg claims how=$1 fam=$2 bytes=16000000 want
	local name=zombie$2 back=resumed svc=10.0.0.1 addr=10.0.0.1
	[ "$how" = partition ] && name=partition$2 back="back on the bridge"
	[ "$fam" = 6 ] && svc="[fd00::1]" addr=fd00::1
	case_start "$name" || { result fail "$CASE: cluster up"; return; }
	result ok "$CASE: permtcpd up on the three nodes, every declaration in every kernel"
	vm_run owner "ptcp-testapp echo-serve [::]:80 >/tmp/t/app.log 2>&1 & ptcp-testapp down-serve [::]:81 $bytes >/tmp/t/down.log 2>&1 &"
	vm_run_all "peer1 peer2" "ptcp-testapp echo-serve [::]:80 --resume >/tmp/t/app.log 2>&1 & ptcp-testapp down-serve [::]:81 $bytes --resume >/tmp/t/down.log 2>&1 &"
	sleep 0.5
	vm_run client "for c in a b; do ptcp-testapp echo-client $svc:80 40 /tmp/t/\$c >/tmp/t/\$c.out 2>&1 & echo \$! >/tmp/t/\$c.pid; done; ptcp-testapp down-client $svc:81 $bytes /tmp/t/c >/tmp/t/c.out 2>&1 & echo \$! >/tmp/t/c.pid"
	vm_run client "for c in a b c; do sh /selftests/cluster/node.sh wait-file /tmp/t/\$c.wait 300 || exit 1; done"
	sleep 1
	check "$CASE: two sessions at round 20 and a download a quarter read, both peers mirror them (ready)" mirrored 3
	T_KILL=$(now)
	if [ "$how" = stop ]; then
		vm_stop owner
		progress "owner stopped (SIGSTOP of its QEMU)"
	else
		vm_partition owner
		progress "owner partitioned (its tap off the bridge and down)"
	fi
	vm_run client "touch /tmp/t/a"
	check_here "$CASE: no takeover typed: the peers' daemons take over, peer1 the three connections, peer2 none" \
		daemons_took_over 3
	progress "taken over, $(ms "$T_KILL" "$T_TAKEN") ms after the fault"
	if [ "$how" = partition ]; then
		# Still running, alone: no quorum, no renewal, its kernel fences its bindings.
		vm_run owner "sh /selftests/cluster/node.sh status" | tr -d ' \n' | grep -o '"quorum":[a-z]*\|"lease":[a-z]*' |
			tr '\n' ' ' | sed 's/^/# owner daemon, partitioned: /;s/$/\n/'
		check "$CASE: the partitioned owner lost quorum and stopped renewing its lease" \
			vm_run owner "permtcpd --status --config /etc/permtcpd/permtcpd.toml | tr -d ' \n' | grep -q '\"lease\":false' && grep -q 'quorum lost' /tmp/t/permtcpd.log"
		check "$CASE: its kernel fences itself: the lease ran out, its window probes are dropped" \
			wait_owner_fenced
	fi
	vm_run client "touch /tmp/t/c"
	outa=$(vm_run -t 90 client "sh /selftests/cluster/node.sh wait-gone \$(cat /tmp/t/a.pid) 600; cat /tmp/t/a.out")
	printf '%s\n' "$outa" | sed 's/^/# client A: /'
	check "$CASE: client A finished all 40 rounds through peer1, every answer right" \
		grep -q '^ok rounds=40 ' <<<"$outa"
	outc=$(vm_run -t 200 client "sh /selftests/cluster/node.sh wait-gone \$(cat /tmp/t/c.pid) 1800; cat /tmp/t/c.out")
	printf '%s\n' "$outc" | sed 's/^/# client C: /'
	want=$("$testapp" stream-sum "$bytes")
	check "$CASE: client C read all $bytes bytes through peer1, equal to a crash-free run" \
		grep -q "^ok bytes=$bytes $want" <<<"$outc"
	T_CONT=$(now)
	if [ "$how" = stop ]; then vm_cont owner; else vm_heal owner; fi
	progress "owner $back, $(ms "$T_KILL" "$T_CONT") ms after the fault"
	sleep 3
	vm_run client "/bin/ip neigh show $addr" |
		sed "s/^/# client: neighbour entry for $addr (owner $(mac owner), peer1 $(mac peer1)): /"
	# The client asks again who has the address: the owner, which still holds it, must not
	# answer (its answer would turn the client's frames to it).
	vm_run client "/bin/ip neigh flush to $addr; ping -c 1 -W 2 $addr >/dev/null"
	vm_run client "/bin/ip neigh show $addr" |
		sed "s/^/# client: asked again: /"
	vm_run client "touch /tmp/t/b"
	out=$(vm_run -t 90 client "sh /selftests/cluster/node.sh wait-gone \$(cat /tmp/t/b.pid) 300; cat /tmp/t/b.out")
	sleep 1
	cap_stop
	printf '%s\n' "$out" | sed 's/^/# client B: /'
	after=$(owner_frames | cap_after "$T_CONT")
	kinds=$(printf '%s\n' "$after" | sed '/^$/d' | cap_kinds)
	echo "# the owner, $back, sent $(printf '%s\n' "$after" | sed '/^$/d' | wc -l) frames:"
	printf '%s\n' "$kinds" | sed 's/^/# /'
	seg=$(owner_service_tcp | cap_after "$T_CONT")
	echo "# TCP segments from the owner's bindings on the bridge after it was $back:" \
		"$(printf '%s' "$seg" | grep -c .)"
	check "$CASE: the owner, $back, sends zero TCP segments from its bindings (capture on the bridge)" \
		test -z "$seg"
	[ -z "$seg" ] || printf '%s\n' "$seg" | head -n 10 | sed 's/^/#   /'
	claims=$(owner_claims | cap_after "$T_CONT")
	check "$CASE: nor any ARP / neighbour message claiming $addr" test -z "$claims"
	[ -z "$claims" ] || printf '%s\n' "$claims" | head -n 10 | sed 's/^/#   /'
	check "$CASE: its kernel dropped them: lease run out, fenced > 0" owner_fenced
	check "$CASE: its daemon learnt it was declared down and stopped" \
		vm_run owner "grep -q 'reports this node declared down' /tmp/t/permtcpd.log && ! kill -0 \$(cat /tmp/t/permtcpd.pid)"
	vm_run owner "grep -E 'did not run|quorum|declared down|error' /tmp/t/permtcpd.log" | sed 's/^/# owner: /'
	check "$CASE: peer1's kernel counts the owner's frames as split-brain alarms (its daemons' counts shown)" \
		split_brain_counted
	check "$CASE: client B, after the owner is $back, finished every round right" \
		grep -q '^ok rounds=40 ' <<<"$out"
	check "$CASE: kernel logs of client, peer1 and peer2 clean" logs_clean client peer1 peer2
	vm_kill owner
	case_end
}
split_brain_counted() {
	local d1 d2 k
	d1=$(vm_run peer1 "sh /selftests/cluster/node.sh count split_brain")
	d2=$(vm_run peer2 "sh /selftests/cluster/node.sh count split_brain")
	k=$(vm_run peer1 "permctl --json status" | sed -n 's/.*"split_brain":\([0-9]*\).*/\1/p')
	# The daemons count only what the owner's daemon sent before it heard the verdict: nothing
	# when a peer's heartbeat reached it first (it exits at once), so only reported.
	echo "# split-brain alarms: peer1's daemon ${d1:-?} messages, peer2's ${d2:-?}; peer1's kernel ${k:-?} frames"
	[ "${k:-0}" -gt 0 ]
}
wait_owner_fenced() {
	local i
	for i in $(seq 50); do
		owner_fenced >/dev/null 2>&1 && { owner_fenced; return 0; }
		sleep 0.2
	done
	owner_fenced
}

# The peer's answers lost: peer1's HandoffResult datagrams (type 10, the sixth byte of the
# UDP payload) are dropped on their way from its VM (nftables on the bridge), so that the owner never
# learns what became of its held sessions (peer1 takes them). At handoff_timeout_ms the
# owner aborts every one, never resumes it, and sends each client a reset; a session whose
# client had already gone on with peer1 (its reset, at the owner's old sequence number, is
# not accepted) stays with peer1 alone. No session may ever get a wrong answer.
case_handoff_lost() {
	local n=${HANDOFF_N:-20} t0 data out
	case_start "handoff-lost4" || { result fail "$CASE: cluster up"; return; }
	result ok "$CASE: permtcpd up on the three nodes, every declaration in every kernel"
	handoff_start 10.0.0.1 "$n" 20
	check "$CASE: $n sessions running, both peers mirror them (ready)" mirrored "$n"
	answers_lost || { result fail "$CASE: nft on the bridge"; return; }
	t0=$(now)
	handoff_do 10.0.0.1:80 2 owner
	ip netns exec "$NS" nft delete table bridge lost
	echo "# owner: permtcpd --handoff 10.0.0.1:80 --to 2: $HO_JSON"
	check "$CASE: no answer: at the timeout the owner aborted all $n, a reset sent to each client" \
		handoff_aborted "$n"
	sleep 1
	handoff_end
	printf '%s\n' "$HO_CLIENT" | sed 's/^/# client: /' | head -n 8
	echo "# client: $(grep -c 'reset' <<<"$HO_CLIENT") sessions reset"
	cap_stop
	# The hold comes within a second or two of the request; the owner waits 10 s.
	data=$(owner_service_tcp | cap_after "$(awk -v t="$t0" 'BEGIN { printf "%.6f", t + 3 }')")
	echo "# the owner's resets on the wire: $(grep -c 'Flags \[R' <<<"$data")"
	data=$(grep -v 'Flags \[R' <<<"$data")
	check "$CASE: the owner sent nothing of them after the hold but the resets (never resumed)" \
		test -z "$data"
	[ -z "$data" ] || printf '%s\n' "$data" | head -n 5 | sed 's/^/#   /'
	check "$CASE: no session got a wrong answer: each went on with peer1 or was reset" \
		bash -c '! grep -q "wrong answer" <<<"$1" && grep -Eq "^(ok conns=|FAIL conns=)$2 " <<<"$1"' - "$HO_CLIENT" "$n"
	# Again with peer1 not mirroring: it refuses them all, but its answers are lost too; the
	# owner's resets then end every session at the client. Its snooping starts again after
	# the sessions began (permtcpd would restart it within 5 s anyway): it sees them only
	# mid-stream, never ready.
	handoff_sessions 10.0.0.1 "$n" 20
	vm_run peer1 "permctl snoop stop; permctl snoop start --dev eth0" >/dev/null
	answers_lost
	handoff_do 10.0.0.1:80 2 owner
	ip netns exec "$NS" nft delete table bridge lost
	echo "# owner: permtcpd --handoff 10.0.0.1:80 --to 2: $HO_JSON"
	handoff_end
	printf '%s\n' "$HO_CLIENT" | sed 's/^/# client: /' | head -n 4
	check "$CASE: peer1 not mirroring them, its refusals lost: aborted at the timeout, every session reset at the client, none got a wrong answer" \
		bash -c '[ "$(grep -c "reset by peer" <<<"$1")" = "$2" ] && ! grep -q "wrong answer" <<<"$1" && grep -q "\"aborted\":$2," <<<"$3"' - \
		"$HO_CLIENT" "$n" "$HO_JSON"
	check "$CASE: kernel logs clean" logs_clean client owner peer1 peer2
	case_end
}
# peer1's HandoffResult datagrams (type 10, the sixth byte of the UDP payload) dropped on
# their way from its VM (nftables on the bridge) until the table "lost" is deleted.
answers_lost() {
	ip netns exec "$NS" nft -f - <<-NFT
		table bridge lost {
			chain cut {
				type filter hook forward priority 0;
				iifname "tap-peer1" udp dport 7415 @th,104,8 10 drop
			}
		}
	NFT
}

# A case's last checks, on the stopped capture: a new connection of 4 rounds (its client's
# output $2) was answered by the owner (its SYN-ACK after $3), no reset on the wire after
# $4, every kernel log clean.
owner_answers_no_reset() { # description client-output syn-after rst-after
	local rsts
	check "$CASE: $1 (its SYN-ACK on the wire)" \
		bash -c 'grep -q "^ok rounds=4 " <<<"$1" && [ -n "$2" ]' - "$2" \
		"$(cap_text "tcp and ether src $(mac owner) and $CAP_SYN" | cap_after "$3")"
	rsts=$(cap_text "$CAP_RST" | cap_after "$4")
	check "$CASE: no reset on the wire" test -z "$rsts"
	[ -z "$rsts" ] || printf '%s\n' "$rsts" | head -n 5 | sed 's/^/#   /'
	check "$CASE: kernel logs clean" logs_clean client owner peer1 peer2
}

# The owner's VM, running (booted if not), with permtcpd managing its service addresses.
owner_managed() {
	if ! vm_running owner; then
		vm_boot owner managed
		vm_ready owner || return 1
	fi
	pd_install owner managed >/dev/null
}
# The owner, killed, boots again; its permtcpd starts (a new incarnation, its addresses
# managed).
owner_back() {
	vm_boot owner managed
	vm_ready owner || return 1
	pd_install owner managed >/dev/null &&
		vm_run owner "sh /selftests/cluster/node.sh stop; sh /selftests/cluster/node.sh start" >/dev/null
}

# Owner recovery (design.rst, "Owner recovery"): the owner, managing its addresses, is
# killed during a long session (a request every 50 ms, each answer checked); peer1 takes the
# session over. The owner's VM boots again and its permtcpd starts in a new incarnation: the
# peers send it the lists of its connections they serve, it installs them, then takes its
# addresses and announces them, and the peers hand the addresses back. The session goes on
# through peer1 (its kernel takes the client's frames, now sent to the owner's MAC, off the
# link) and finishes with every answer right; a new connection goes to the owner; no reset.
case_recovery() { # 4|6
	local svc=10.0.0.1 addr=10.0.0.1 out outb n
	[ "$1" = 6 ] && svc="[fd00::1]" addr=fd00::1
	CASE=recovery$1
	owner_managed || { result fail "$CASE: cluster up"; return; }
	case_start "recovery$1" || { result fail "$CASE: cluster up"; return; }
	check "$CASE: the owner took its addresses once every live peer's list was installed" \
		vm_run owner "sh /selftests/cluster/node.sh wait-log 'this node takes' 100 && /bin/ip addr show dev eth0 | grep -q ' $addr/'"
	vm_run owner "ptcp-testapp echo-serve [::]:80 >/tmp/t/app.log 2>&1 &"
	vm_run_all "peer1 peer2" "ptcp-testapp echo-serve [::]:80 --resume >/tmp/t/app.log 2>&1 &"
	sleep 0.5
	# Session A pauses after 200 rounds until /tmp/t/a.go: it lives on through the owner's
	# second death.
	vm_run client "rm -f /tmp/t/a.go /tmp/t/a.go.wait; ptcp-testapp echo-client $svc:80 400 /tmp/t/a.go --interval-ms 50 >/tmp/t/a.out 2>&1 & echo \$! >/tmp/t/a.pid"
	sleep 2
	check "$CASE: both peers mirror the session (ready)" mirrored 1
	kill_owner
	check_here "$CASE: the peers' daemons take over, peer1 the session" daemons_took_over 1
	progress "booting the owner again"
	owner_back || { result fail "$CASE: the owner boots again"; return; }
	check "$CASE: the owner, back, installed peer1's list of one connection and peer2's empty one" \
		vm_run owner "sh /selftests/cluster/node.sh wait-log 'every live peer' 300 && grep -q 'node 2 serves 1 connections' /tmp/t/permtcpd.log && grep -q 'node 3 serves 0 connections' /tmp/t/permtcpd.log"
	check "$CASE: then it took its addresses" \
		vm_run owner "sh /selftests/cluster/node.sh wait-log 'this node takes' 100 && /bin/ip addr show dev eth0 | grep -q ' $addr/'"
	check "$CASE: peer1 handed the address back after the owner's acknowledgement" \
		vm_run peer1 "sh /selftests/cluster/node.sh wait-log 'handed back' 100"
	vm_run owner "grep -E 'owner recovery' /tmp/t/permtcpd.log" | sed 's/^/# owner: /'
	vm_run peer1 "grep -E 'owner recovery|recovery' /tmp/t/permtcpd.log" | sed 's/^/# peer1: /'
	vm_run owner "ptcp-testapp echo-serve [::]:80 >/tmp/t/app.log 2>&1 &"
	sleep 1.5
	vm_run client "/bin/ip neigh show $addr" | sed "s/^/# client: neighbour entry for $addr (owner $(mac owner), peer1 $(mac peer1)): /"
	check "$CASE: the client sends to the owner's MAC again" \
		vm_run client "/bin/ip neigh show $addr | grep -q $(mac owner)"
	T_BACK=$(now)
	outb=$(vm_run -t 60 client "ptcp-testapp echo-client $svc:80 4 - 2>&1")
	n=$(vm_run owner "permctl --json stats" | sed -n 's/.*"rst_dropped":\([0-9]*\).*/\1/p')
	echo "# the owner's kernel dropped ${n:-?} of its resets of session A"
	cap_stop
	echo "# client B: $outb"
	owner_answers_no_reset "a new connection is answered by the owner" "$outb" "$T_BACK" "$T_KILL"
	recovery_again "$svc"
	case_end
	# The next case gets an owner booted afresh, whose system configures its addresses (the
	# second death killed it, unless a check before it failed).
	if vm_running owner; then vm_kill owner; fi
}

# The owner, recovered, fails again (case_recovery, session A still open and served by
# peer1): once the owner installed their lists, both peers made it a member again (REJOIN),
# so its new session C is mirrored, and at its second kill -9 the peers take it over again:
# peer1 takes C, peer2 nothing, and nobody touches A (peer1 serves it, peer2 follows it).
# A and C finish with every answer right; no reset on the wire.
recovery_again() { # service
	local out
	check "$CASE: both peers made the recovered owner a member again (REJOIN)" \
		vm_run_all "peer1 peer2" "sh /selftests/cluster/node.sh wait-log 'node 1 rejoined' 100"
	cap_start "$work/$CASE-again.pcap"
	vm_run client "ptcp-testapp echo-client $1:80 400 - --interval-ms 50 >/tmp/t/c.out 2>&1 & echo \$! >/tmp/t/c.pid"
	sleep 2
	check "$CASE: both peers mirror the owner's new session C (ready)" \
		eval "mirrored_on peer1 1 && mirrored_on peer2 1"
	kill_owner
	check_here "$CASE: the peers take the owner over again, peer1 session C, peer2 nothing" \
		took_over_again
	vm_run client "touch /tmp/t/a.go"
	out=$(vm_run -t 120 client "sh /selftests/cluster/node.sh wait-gone \$(cat /tmp/t/a.pid) 900; tail -n1 /tmp/t/a.out")
	echo "# client A: $out"
	check "$CASE: session A finished through peer1 across both deaths, all 400 answers right" \
		grep -q '^ok rounds=400 ' <<<"$out"
	out=$(vm_run -t 120 client "sh /selftests/cluster/node.sh wait-gone \$(cat /tmp/t/c.pid) 900; tail -n1 /tmp/t/c.out")
	echo "# client C: $out"
	check "$CASE: session C finished through peer1, all 400 answers right" \
		grep -q '^ok rounds=400 ' <<<"$out"
	cap_stop
	local rsts
	rsts=$(cap_text "$CAP_RST" | cap_after "$T_KILL")
	check "$CASE: no reset on the wire after the second kill" test -z "$rsts"
	[ -z "$rsts" ] || printf '%s\n' "$rsts" | head -n 5 | sed 's/^/#   /'
}

# Both peers' daemons took node 1 over a second time: peer1 one connection (C), peer2 none
# (C counted for another node, or already followed: peer2 saw peer1's segments of it first);
# neither reset nor failed one. Session A, followed on peer2 since the first takeover gave
# it to peer1, is not counted: left alone.
took_over_again() {
	local t=$((HB_MS * MISSED * 3 / 100 + 150)) n
	vm_run_all "peer1 peer2" "i=0; until [ \$(grep -c 'took over node 1:' /tmp/t/permtcpd.log) -ge 2 ]; do [ \$i -lt $t ] || exit 1; sleep 0.1; i=\$((i + 1)); done" || return 1
	for n in peer1 peer2; do
		vm_run "$n" "grep -E 'rejoined|took over' /tmp/t/permtcpd.log" | sed "s/^/# $n: /" >&3
	done
	vm_run peer1 "grep 'took over node 1:' /tmp/t/permtcpd.log | tail -n1 | grep -q 'node 1: 1 connections.* 0 reset), 0 for other nodes, 0 failed'" &&
		vm_run peer2 "grep 'took over node 1:' /tmp/t/permtcpd.log | tail -n1 | grep -q 'node 1: 0 connections.* 0 reset), [01] for other nodes, 0 failed'"
}

# ---- planned handoff through permtcpd (Documentation/handoff.rst) ----
# The stock echo server on the three cluster nodes, and the client's N sessions to $1:80, a
# round every $3 ms on each (echo-steady); returns once every session did its first round.
handoff_start() { # vip conns interval-ms
	vm_run owner "ptcp-testapp echo-serve [::]:80 >/tmp/t/app.log 2>&1 &"
	vm_run_all "peer1 peer2" "ptcp-testapp echo-serve [::]:80 >/tmp/t/app.log 2>&1 &"
	sleep 0.5
	handoff_sessions "$@"
}
# The client's sessions alone (the servers run).
handoff_sessions() { # vip conns interval-ms
	vm_run client "rm -f /tmp/t/ho /tmp/t/ho.*; ptcp-testapp echo-steady $1:80 $2 /tmp/t/ho --interval-ms $3 >/tmp/t/ho.out 2>&1 & echo \$! >/tmp/t/ho.pid"
	vm_run -t 300 client "sh /selftests/cluster/node.sh wait-file /tmp/t/ho.wait 2400"
}
# `permtcpd --handoff BINDING --to NODE` on VM $3; HO_JSON is its output (the summary).
handoff_do() { # binding to-node vm
	HO_JSON=$(vm_run -t 180 "$3" "permtcpd --handoff $1 --to $2 --config /etc/permtcpd/permtcpd.toml 2>&1")
}
# The client's sessions stop; HO_CLIENT is what it printed.
handoff_end() {
	vm_run client "touch /tmp/t/ho"
	HO_CLIENT=$(vm_run -t 300 client "sh /selftests/cluster/node.sh wait-gone \$(cat /tmp/t/ho.pid) 3000; cat /tmp/t/ho.out")
}
# A number of the line of KEY=VALUE words starting with $3 (default "ok ") of text $1: key
# $2's.
kv() { grep "^${3:-ok }" <<<"$1" | sed -n "s/.*$2=\([0-9]*\).*/\1/p" | head -n1; }
# The client's sessions enter phase $1 (echo-steady counts each phase's rounds apart).
handoff_phase() { vm_run client "touch /tmp/t/ho.$1"; }
# A number of a JSON text: the first "$2": field.
json_num() { sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" <<<"$1" | head -n1; }
# The summary says N held, N taken, none aborted.
handoff_all() { # count
	[ "$(json_num "$HO_JSON" held)" = "$1" ] && [ "$(json_num "$HO_JSON" taken)" = "$1" ] &&
		[ "$(json_num "$HO_JSON" aborted)" = 0 ]
}
# Node $1 has $2 established connections on port 80.
established_is() { # node count
	local n
	n=$(vm_run "$1" "ss -Htn state established '( sport = :80 )' | wc -l")
	echo "# $1: ${n:-?} established on port 80"
	[ "$n" = "$2" ]
}

# `permtcpd --handoff` says what is wrong, exit status 1: a node that is no peer, a binding
# nobody declares, and (on the client, where no daemon runs) no daemon.
handoff_refusals() { # vip
	local c="permtcpd --config /etc/permtcpd/permtcpd.toml --handoff" out
	out=$(vm_run owner "$c $1:80 --to 9 2>&1; echo rc=\$?")
	echo "# --to 9: $out"
	grep -q 'unknown node' <<<"$out" && grep -q 'rc=1' <<<"$out" || return 1
	out=$(vm_run owner "$c 10.0.0.99:80 --to 2 2>&1; echo rc=\$?")
	echo "# 10.0.0.99:80: $out"
	grep -q "not one of this node's bindings" <<<"$out" && grep -q 'rc=1' <<<"$out" || return 1
	out=$(vm_run client "permtcpd --handoff $1:80 --to 2 --control-socket /run/permtcpd/control.sock 2>&1; echo rc=\$?")
	echo "# no daemon: $out"
	grep -q 'is permtcpd running' <<<"$out" && grep -q 'rc=1' <<<"$out"
}

# The summary says N aborted at the timeout, N clients sent a reset.
handoff_aborted() { # count
	[ "$(json_num "$HO_JSON" aborted)" = "$1" ] && [ "$(json_num "$HO_JSON" resets_sent)" = "$1" ] &&
		grep -q '"end":"timeout"' <<<"$HO_JSON"
}

# The owner has $1 established connections on port 80, peer1 $2.
served_by() { # owner-count peer1-count
	established_is owner "$1" && established_is peer1 "$2"
}

# Planned handoff through permtcpd: the client's N sessions (a round every 20 ms on each) on
# the owner; `permtcpd --handoff VIP:80 --to 2` on the owner moves them to peer1 (hold, the
# Handoff message, peer1's take, its answer, the owner's DONE), then `permtcpd --handoff
# VIP:80 --to 1` on peer1 hands them back (peer1 holds what it serves for the owner's
# binding, the owner takes them from the mirror it seeded when it held them). Every answer
# right, no reset on the wire, a new connection goes to the owner.
case_handoff() { # 4|6
	local vip=10.0.0.1 n=${HANDOFF_N:-20} outb t0
	[ "$1" = 6 ] && vip="[fd00::1]"
	case_start "handoff$1" || { result fail "$CASE: cluster up"; return; }
	result ok "$CASE: permtcpd up on the three nodes, every declaration in every kernel"
	handoff_start "$vip" "$n" 20
	check "$CASE: $n sessions running, both peers mirror them (ready)" mirrored "$n"
	check "$CASE: permtcpd --handoff refuses clearly: unknown node, nobody's binding, no daemon" \
		handoff_refusals "$vip"
	t0=$(now)
	handoff_phase 1
	handoff_do "$vip:80" 2 owner
	echo "# owner: permtcpd --handoff $vip:80 --to 2: $HO_JSON"
	check "$CASE: permtcpd on the owner held all $n, peer1 took every one, none aborted" handoff_all "$n"
	check_here "$CASE: the owner has no established connection left on port 80, peer1 serves the $n" \
		served_by 0 "$n"
	T_NEW=$(now)
	outb=$(vm_run -t 60 client "ptcp-testapp echo-client $vip:80 4 - 2>&1")
	echo "# a new connection: $outb"
	# The owner mirrors them from its sockets' state on (seeded when it held them): ready
	# once what it had sent before is acknowledged.
	check "$CASE: the owner mirrors the $n peer1 serves, each ready to take it back" \
		mirrors_served owner peer1 "$n"
	# How the owner's mirror of them was seeded (some seeded again, or forgotten because
	# they stayed behind their sockets): the kernel's line, for a hand back that refuses one
	# as not mirrored (seen once, 2026-11-30).
	vm_run owner "dmesg | grep 'permtcp: handoff:' | tail -n 2" | sed 's/^/# owner kernel: /'
	handoff_phase 2
	handoff_do "$vip:80" 1 peer1
	echo "# peer1: permtcpd --handoff $vip:80 --to 1: $HO_JSON"
	check "$CASE: handed back: permtcpd on peer1 held all $n, the owner took every one" handoff_all "$n"
	check_here "$CASE: the owner serves the $n again, peer1 none" served_by "$n" 0
	sleep 1
	handoff_end
	printf '%s\n' "$HO_CLIENT" | sed 's/^/# client (phase 1: the handoff, 2: the hand back): /'
	check "$CASE: every session went on through both moves, every answer right" \
		grep -q "^ok conns=$n " <<<"$HO_CLIENT"
	vm_run_all "owner peer1" "grep -E 'handoff' /tmp/t/permtcpd.log | tail -n 4"
	sed 's/^/# owner: /' "$work/owner.out"
	sed 's/^/# peer1: /' "$work/peer1.out"
	cap_stop
	owner_answers_no_reset "a new connection during the handoff went to the owner" "$outb" "$T_NEW" "$t0"
	case_end
}

# Counters of node $1's daemon: replay bad_tag unknown_key malformed.
pd_counters() {
	vm_run "$1" "for f in replay bad_tag unknown_key malformed; do echo \$(sh /selftests/cluster/node.sh count \$f); done" | tr '\n' ' '
}

# A node starting late; forged, replayed and wrong-key datagrams; the old plain directive.
case_daemons() {
	local out before2 before3 hb32 hb23 other port dir d2 d3 n
	case_start daemons4 peer2 || { result fail "$CASE: cluster up without peer2"; return; }
	result ok "$CASE: owner and peer1 up, with quorum (two of three); peer2 not started"
	sleep "$(awk -v d=$((HB_MS * MISSED)) 'BEGIN { print d * 4 / 1000 }')"
	check "$CASE: peer2, never heard, is not declared down (no verdict, no takeover)" \
		vm_run_all "owner peer1" "! grep -q 'verdict\\|took over' /tmp/t/permtcpd.log && sh /selftests/cluster/node.sh status | tr -d ' \n' | grep -q '\"takeovers\":\[\]'"
	vm_run peer2 "sh /selftests/cluster/node.sh start" >/dev/null
	check "$CASE: peer2 joins late: every daemon sees three nodes, every kernel three declarations" \
		vm_run_all "owner peer1 peer2" "sh /selftests/cluster/node.sh wait-ready 3 300"
	vm_run peer2 "permctl decl list" | sed 's/^/# peer2 kernel: /'
	check "$CASE: peer2 learnt every declaration, its own local" \
		vm_run peer2 "permctl --json decl list | grep -q '\"node_id\":3,\"local\":true' && permctl --json decl list | grep -q '\"node_id\":1,' && permctl --json decl list | grep -q '\"node_id\":2,'"
	# A live session, mirrored by both peers.
	vm_run owner "ptcp-testapp echo-serve [::]:80 >/tmp/t/app.log 2>&1 &"
	vm_run_all "peer1 peer2" "ptcp-testapp echo-serve [::]:80 --resume >/tmp/t/app.log 2>&1 &"
	sleep 0.5
	vm_run client "ptcp-testapp echo-client 10.0.0.1:80 40 /tmp/t/p >/tmp/t/client.out 2>&1 & echo \$! >/tmp/t/client.pid"
	vm_run client "sh /selftests/cluster/node.sh wait-file /tmp/t/p.wait 150"
	check "$CASE: a session at round 20, mirrored by both peers" mirrored 1
	# Off the link (the bridge floods; the client's NIC listens to everything): a heartbeat of
	# node 3 to node 2, and one of node 2 to node 3.
	vm_run client "/bin/ip link set eth0 promisc on"
	hb32=$(vm_run client "ptcp-testapp udp-capture eth0 10.1.0.3 10.1.0.2:7415 1 3000")
	hb23=$(vm_run client "ptcp-testapp udp-capture eth0 10.1.0.2 10.1.0.3:7415 1 3000")
	check "$CASE: heartbeats 3 -> 2 and 2 -> 3 captured off the link by the client VM" \
		test -n "$hb32" -a -n "$hb23"
	other=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
	before2=$(pd_counters peer1)
	before3=$(pd_counters peer2)
	port=$(vm_run client "awk '\$3 == \"0100000A:0050\" && \$4 == \"01\" { split(\$2, a, \":\"); print a[2] }' /proc/net/tcp | head -n1")
	port=$(printf %d "0x$port")
	echo "# the session: 10.0.0.100:$port -> 10.0.0.1:80"
	dir=$("$testapp" directive-hex 1 10.0.0.1:80 "10.0.0.100:$port")
	inject() { # to-node to-ip from-ip datagram...
		local mac=$1 dst=$2 src=$3 d
		shift 3
		for d in "$@"; do
			vm_run client "ptcp-testapp udp-spoof eth0 $mac $src:7415 $dst:7415 $d" || return 1
		done
	}
	flip() { local l=${1#"${1%??}"}; [ "$l" = 00 ] && echo "${1%??}01" || echo "${1%??}00"; }
	# Each peer gets: a replay, a forged tag, the same key id with another secret, an unknown
	# key id; and the old plain directive for the live session "from node 1" (a forged
	# source), on the old port 7414 and on permtcpd's 7415.
	inject "$(mac peer1)" 10.1.0.2 10.1.0.3 "$hb32" "$(flip "$hb32")" \
		"$("$testapp" reseal "$hb32" 1 "$other")" "$("$testapp" reseal "$hb32" 9 "$other")"
	inject "$(mac peer2)" 10.1.0.3 10.1.0.2 "$hb23" "$(flip "$hb23")" \
		"$("$testapp" reseal "$hb23" 1 "$other")" "$("$testapp" reseal "$hb23" 9 "$other")"
	for n in 2 3; do
		for p in 7414 7415; do
			vm_run client "ptcp-testapp udp-spoof eth0 02:00:00:00:00:0$n 10.0.0.1:7414 10.1.0.$n:$p $dir"
		done
	done
	sleep 1
	d2=$(pd_counters peer1)
	d3=$(pd_counters peer2)
	echo "# peer1 replay bad_tag unknown_key malformed: before $before2, after $d2"
	echo "# peer2 replay bad_tag unknown_key malformed: before $before3, after $d3"
	counted() { # before after
		local b a
		read -ra b <<<"$1"
		read -ra a <<<"$2"
		[ "${a[0]}" = $((b[0] + 1)) ] && [ "${a[1]}" = $((b[1] + 2)) ] &&
			[ "${a[2]}" = $((b[2] + 1)) ] && [ "${a[3]}" = $((b[3] + 1)) ]
	}
	check "$CASE: peer1's daemon dropped and counted them: replay 1, bad_tag 2, unknown_key 1, malformed 1" \
		counted "$before2" "$d2"
	check "$CASE: peer2's daemon dropped and counted them: replay 1, bad_tag 2, unknown_key 1, malformed 1" \
		counted "$before3" "$d3"
	check "$CASE: nothing changed: three nodes alive everywhere, no takeover, no split brain" \
		vm_run_all "owner peer1 peer2" "sh /selftests/cluster/node.sh wait-ready 3 10 && sh /selftests/cluster/node.sh status | tr -d ' \n' | grep -q '\"takeovers\":\[\].*\"split_brain\":0\|\"split_brain\":0.*\"takeovers\":\[\]'"
	check "$CASE: the peers took nothing over and still mirror the session, ready" \
		peers_untouched
	vm_run client "touch /tmp/t/p"
	out=$(vm_run -t 90 client "sh /selftests/cluster/node.sh wait-gone \$(cat /tmp/t/client.pid) 600; cat /tmp/t/client.out")
	printf '%s\n' "$out" | sed 's/^/# client: /'
	cap_stop
	check "$CASE: the session completes through the owner, every answer right, no reset on the wire" \
		session_clean "$out"
	check "$CASE: kernel logs clean" logs_clean client owner peer1 peer2
	case_end
}
peers_untouched() {
	vm_run_all "peer1 peer2" "permctl --json taken | grep -q '^\[\]$'" && mirrored 1
}
session_clean() { # client-output
	grep -q '^ok rounds=40 ' <<<"$1" || return 1
	! cap_text "$CAP_RST" | grep .
}

# ---- a crash with a continuous session, for the demo and the benchmark ----
# The client's echo session (a request every 5 ms, each answer checked, a trace of its reads)
# runs; the owner's QEMU is killed at a random point of the heartbeat cycle; nobody types a
# takeover.  Sets CRASH_OUT (the client's last line) and CRASH_STALL (its worst round, ms).
crash_session() { # rounds
	local n
	vm_run owner "ptcp-testapp echo-serve [::]:80 >/tmp/t/app.log 2>&1 &"
	vm_run_all "peer1 peer2" "ptcp-testapp echo-serve [::]:80 --resume >/tmp/t/app.log 2>&1 &"
	sleep 0.5
	vm_run client "ptcp-testapp echo-client 10.0.0.1:80 $1 - --interval-ms 5 --trace /tmp/t/trace >/tmp/t/client.out 2>&1 & echo \$! >/tmp/t/client.pid"
	vm_run client "i=0; until [ \$(wc -l </tmp/t/trace) -ge 150 ]; do [ \$i -lt 300 ] || exit 1; sleep 0.1; i=\$((i + 1)); done" ||
		return 1
	mirrored 1 || return 1
	[ "$MODE" != demo ] || vm_run peer1 "permctl conns" | sed 's/^/    peer1$ permctl conns: /'
	# A random point of the heartbeat cycle.
	n=$((RANDOM % HB_MS))
	sleep "$(awk -v n="$n" 'BEGIN { print n / 1000 }')"
	kill_owner
	daemons_took_over 1 3>/dev/null || return 1
	[ -z "${EPILOGUE:-}" ] || epilogue || return 1
	CRASH_OUT=$(vm_run -t 120 client "sh /selftests/cluster/node.sh wait-gone \$(cat /tmp/t/client.pid) 1200; tail -n1 /tmp/t/client.out")
	CRASH_STALL=$(sed -n 's/.*worst_round_ms=\([0-9]*\).*/\1/p' <<<"$CRASH_OUT")
	grep -q '^ok rounds=' <<<"$CRASH_OUT"
}

# The demo's epilogue, while the client's session goes on through peer1: the owner's VM
# boots again, takes its address back once both peers' lists are installed (owner recovery),
# and a new session (port 81) lands on it. Sets T_BACK, EPI_OUT (the new session's result).
epilogue() {
	owner_back || return 1
	vm_run owner "sh /selftests/cluster/node.sh wait-log 'this node takes' 300" >/dev/null || return 1
	T_BACK=$(now)
	vm_run owner "ptcp-testapp echo-serve [::]:81 >/tmp/t/app81.log 2>&1 &"
	sleep 1
	EPI_OUT=$(vm_run -t 60 client "ptcp-testapp echo-client 10.0.0.1:81 4 - 2>&1")
}

demo() {
	local svg png offset zero t_verdict t_start t_done last_before first_after stall syn
	say() { printf '\n=== %s\n' "$*"; }
	say "four QEMU VMs on one bridge (in network namespace $NS): client 10.0.0.100; owner (node 1) serves 10.0.0.1:80; peer1 (node 2) and peer2 (node 3) are its permanency peers"
	owner_managed && case_start demo || die "the cluster did not come up"
	say "permtcpd on the three nodes (heartbeats every $HB_MS ms, $MISSED missed); nobody typed a declaration: peer1's kernel holds them all"
	vm_run peer1 "permctl decl list" | sed 's/^/    /'
	vm_run peer1 "sh /selftests/cluster/node.sh status" | tr -d ' \n' | grep -o '"quorum":[a-z]*\|"lease":[a-z]*\|"view":\[[^]]*\]' |
		sed 's/^/    peer1$ permtcpd --status: /'
	say "the client's session: a request to 10.0.0.1:80 every 5 ms, each 1000-byte answer checked; the peers mirror the connection"
	EPILOGUE=1 crash_session 3000 || die "the crash session failed: $CRASH_OUT"
	say "the client finished: $CRASH_OUT (no error, no reset, every byte checked)"
	vm_run client "cat /tmp/t/trace" >"$work/demo.trace"
	cap_stop
	figures 10.0.0.1 "$CRASH_STALL" "worst round" >"$work/demo.figures"
	# The trace (client's clock) against the capture (host clock): a read comes after its
	# segment reached the bridge, so the smallest difference over all answers is the offset.
	offset=$(cap_text "tcp and src host 10.0.0.1 and src port 80 and dst host 10.0.0.100" | awk '
		match($0, /seq [0-9]+:[0-9]+/) { split(substr($0, RSTART + 4, RLENGTH - 4), s, ":"); host[s[2] - 1] = $1 }
		END { for (b in host) print b, host[b] }' | awk 'NR == FNR { h[$1] = $2; next }
		($2 in h) { d = $1 - h[$2] * 1e9; if (!set || d < best) { best = d; set = 1 } }
		END { if (set) printf "%.0f\n", best }' - "$work/demo.trace")
	[ -n "$offset" ] || die "cannot line the client's trace up with the capture"
	# Times in s after the kill, on the host's clock.
	rel() { awk -v a="$T_KILL" -v b="$1" 'BEGIN { printf "%.3f", b - a }'; }
	t_verdict=$(rel "$FIG_VERDICT")
	t_start=$(awk -v v="$t_verdict" -v w="$FIG_WAIT" 'BEGIN { printf "%.3f", v + w / 1000 }')
	t_done=$(awk -v v="$t_verdict" -v d="$FIG_DONE" 'BEGIN { printf "%.3f", v + d / 1000 }')
	read -r last_before first_after < <(awk -v o="$offset" -v k="$T_KILL" '
		{ t = ($1 - o) / 1e9 - k; if (NR > 1 && t - p > gap) { gap = t - p; a = p; b = t }; p = t }
		END { printf "%.3f %.3f\n", a, b }' "$work/demo.trace")
	stall=$(awk -v a="$last_before" -v b="$first_after" 'BEGIN { printf "%d", (b - a) * 1000 }')
	say "the client's stall: $stall ms without an answer (its reads: last at ${last_before} s, next at +${first_after} s around the kill)"
	awk -v lb="$last_before" -v v="$t_verdict" -v s="$t_start" -v d="$t_done" -v f="$first_after" 'BEGIN {
		printf "    before the crash     %5d ms  (last answer read, then the owner is killed)\n", -lb * 1000
		printf "    detection            %5d ms  (kill -9 -> the peers'"'"' verdict on the wire)\n", v * 1000
		printf "    lease wait           %5d ms  (verdict -> takeover starts: the owner'"'"'s lease ended before any verdict)\n", (s - v) * 1000
		printf "    takeover             %5d ms  (address assumed, TAKEOVER rebuilt the connection)\n", (d - s) * 1000
		printf "    first answer         %5d ms  (takeover done -> the client reads its next answer)\n", (f - d) * 1000
	}'
	grep . "$work/demo.figures" | sed 's/^# /    /'
	mkdir -p "$PERMTCP_ROOT/target/demo"
	svg=$PERMTCP_ROOT/target/demo/failover.svg
	zero=$(awk -v k="$T_KILL" -v o="$offset" 'BEGIN { printf "%.0f", k * 1e9 + o }')
	"$testapp" timeline "$work/demo.trace" "$svg" --zero "$zero" \
		--title "permtcp: the client's session across kill -9 of the owner (heartbeats $HB_MS ms, $MISSED missed)" \
		--stall "$last_before@$first_after" --window "-1.5@$(awk -v f="$first_after" 'BEGIN { print f + 1.5 }')" \
		--mark "owner's QEMU killed@0" --mark "verdict (detection)@$t_verdict" \
		--mark "takeover starts@$t_start" --mark "takeover done@$t_done" \
		--mark "first answer@$first_after" || die "timeline failed"
	say "timeline (the client's received bytes over time): $svg"
	if command -v rsvg-convert >/dev/null; then
		png=${svg%.svg}.png
		rsvg-convert "$svg" -o "$png" && echo "    and as PNG: $png"
	fi
	syn=$(cap_text "tcp and ether src $(mac owner) and src port 81 and $CAP_SYN" | cap_after "$T_BACK")
	say "epilogue: the owner's VM booted again; $(ms "$T_KILL" "$T_BACK") ms after the kill it held 10.0.0.1 again, once both peers' lists of its connections they serve were installed"
	echo "    a new session to 10.0.0.1:81: ${EPI_OUT:-?}; answered by the owner: $([ -n "$syn" ] && echo "yes (its SYN-ACK on the wire)" || echo NO)"
	echo "    the old session was served by peer1 to its end, every byte checked: $CRASH_OUT"
	vm_run owner "grep 'owner recovery' /tmp/t/permtcpd.log" | sed 's/^/    owner: /'
	grep -q '^ok rounds=4 ' <<<"${EPI_OUT:-}" && [ -n "$syn" ] || die "the epilogue's session did not land on the owner"
	logs_clean client owner peer1 peer2 >/dev/null && echo "    kernel logs of client, owner, peer1 and peer2 clean"
	case_end
}

# ---- keepalived, side by side (the benchmark) ----
# The service address keepalived moves: one VRRP instance VI_1 on the three cluster nodes,
# priorities owner 150, peer1 100, peer2 50.
KA_VIP=10.0.0.10
# keepalived's configuration for node $1: advert_int $2 s; with $3 = permtcp, its state
# changes go to the FIFO permtcpd reads (keepalived mode, Documentation/cluster.rst).
ka_conf() { # node advert permtcp|plain
	# VRRP version 3: version 2 counts advert_int in whole seconds.
	printf 'global_defs {\n\trouter_id %s\n\tvrrp_version 3\n' "$1"
	[ "$3" = plain ] || printf '\tvrrp_notify_fifo /tmp/t/ka.fifo\n'
	printf '}\nvrrp_instance VI_1 {\n\tstate BACKUP\n\tinterface eth0\n\tvirtual_router_id 51\n'
	printf '\tpriority %d\n\tadvert_int %s\n' $((200 - 50 * ${ID[$1]})) "$2"
	printf '\tvirtual_ipaddress {\n\t\t%s/24 dev eth0\n\t}\n}\n' "$KA_VIP"
}
# A case of the keepalived benchmark: the cluster nodes afresh, with permtcpd in keepalived
# mode ($2 = permtcp) or nothing of permtcp (plain: no module, no daemon), then keepalived
# (advert_int $1) on the three; returns once the owner holds the address; capture running.
ka_case_start() { # advert permtcp|plain
	local n missing=()
	CASE=ka-$2-$1
	CASE_T=$(now)
	for n in "${NODES[@]}"; do vm_running "$n" || missing+=("$n"); done
	if [ ${#missing[@]} -gt 0 ]; then
		for n in "${missing[@]}"; do vm_boot "$n"; done
		vm_ready "${missing[@]}" || return 1
	fi
	if [ "$2" = permtcp ]; then
		for n in "${CLUSTER_NODES[@]}"; do
			pd_install "$n" keepalived >"$work/check.out" || { echo "# $n: configuration"; cat "$work/check.out"; return 1; }
		done
		cluster_up_settled || { echo "# permtcpd did not come up"; return 1; }
	else
		vm_run_all "${NODES[*]}" "sh /selftests/cluster/node.sh stop" || { echo "# node.sh stop failed"; return 1; }
	fi
	for n in "${CLUSTER_NODES[@]}"; do
		ka_conf "$n" "$1" "$2" >"$work/$n.ka.conf"
		vm_put "$n" "$work/$n.ka.conf" /etc/keepalived/ka.conf 644 >/dev/null || return 1
		vm_run "$n" "keepalived --dont-fork --log-console --no-syslog --vrrp --use-file /etc/keepalived/ka.conf --pid /tmp/t/ka.pid --vrrp_pid /tmp/t/ka.vrrp.pid >/tmp/t/ka.log 2>&1 &"
	done
	vm_run owner "i=0; until /bin/ip addr show dev eth0 | grep -q ' $KA_VIP/'; do [ \$i -lt 300 ] || exit 1; sleep 0.1; i=\$((i + 1)); done" || {
		echo "# the owner never held $KA_VIP; its keepalived:"
		vm_run owner "tail -n 20 /tmp/t/ka.log" | sed 's/^/#   /'
		return 1
	}
	cap_start "$work/$CASE.pcap"
}
# The client's session to KA_VIP (a request every 5 ms, each answer checked) and the owner's
# QEMU killed at a random point of the advertisement cycle; sets KA_MOVED (ms from the kill
# to peer1's first ARP for the address), KA_RESET (ms to the first reset from the address
# on the wire, or empty), CRASH_OUT and CRASH_STALL (the client's worst round).
ka_crash() { # advert-ms permtcp|plain
	local resume= n
	[ "$2" = permtcp ] && resume=--resume
	vm_run owner "ptcp-testapp echo-serve [::]:80 >/tmp/t/app.log 2>&1 &"
	vm_run_all "peer1 peer2" "ptcp-testapp echo-serve [::]:80 $resume >/tmp/t/app.log 2>&1 &"
	sleep 0.5
	vm_run client "ptcp-testapp echo-client $KA_VIP:80 2000 - --interval-ms 5 >/tmp/t/client.out 2>&1 & echo \$! >/tmp/t/client.pid"
	sleep 2
	[ "$2" != permtcp ] || mirrored 1 >/dev/null || return 1
	n=$((RANDOM % $1))
	sleep "$(awk -v n="$n" 'BEGIN { print n / 1000 }')"
	kill_owner >/dev/null
	CRASH_OUT=$(vm_run -t 120 client "sh /selftests/cluster/node.sh wait-gone \$(cat /tmp/t/client.pid) 1200; grep -v '^note: ' /tmp/t/client.out | tail -n1")
	CRASH_STALL=$(sed -n 's/.*worst_round_ms=\([0-9]*\).*/\1/p' <<<"$CRASH_OUT")
	vm_run peer1 "grep -E 'Entering|MASTER|BACKUP|FAULT' /tmp/t/ka.log | tail -n 3" | sed 's/^/# peer1 keepalived: /'
	[ "$2" != permtcp ] || vm_run peer1 "grep -E 'keepalived|took over' /tmp/t/permtcpd.log | tail -n 3" | sed 's/^/# peer1 permtcpd: /'
	# tcpdump, killed, writes nothing of what is still queued for it: the reset that ended the
	# client's session must be in the file first.
	sleep 1
	cap_stop
	KA_MOVED=$(cap_text "arp and ether src $(mac peer1)" | cap_after "$T_KILL" |
		awk -v vip="$KA_VIP" 'index($0, "tell " vip ",") || index($0, "Reply " vip " is-at") { print $1; exit }')
	KA_RESET=$(cap_text "tcp and src host $KA_VIP and $CAP_RST" | cap_after "$T_KILL" |
		awk '{ print $1; exit }')
	[ -z "$KA_MOVED" ] || KA_MOVED=$(ms "$T_KILL" "$KA_MOVED")
	[ -z "$KA_RESET" ] || KA_RESET=$(ms "$T_KILL" "$KA_RESET")
	vm_run_all "${CLUSTER_NODES[*]/owner/}" "killall -9 keepalived ptcp-testapp 2>/dev/null; true"
}
# keepalived in the tier (issue 2254's users' setup): the same crash, the same client, once with
# keepalived alone (the connection is reset) and once with permtcp (permtcpd in keepalived
# mode: the connection survives, every byte right, no reset on the wire). advert_int 0.1.
case_keepalived() {
	local t
	ka_case_start 0.1 plain || { result fail "keepalived4: keepalived alone comes up"; return; }
	CASE=keepalived4
	result ok "$CASE: keepalived alone (no module, no permtcpd) gives the owner $KA_VIP"
	ka_crash 100 plain
	echo "# keepalived alone: address on peer1 ${KA_MOVED:-?} ms after the kill, first reset ${KA_RESET:-none} ms; client: $CRASH_OUT"
	check "$CASE: keepalived alone moves the address to peer1" test -n "$KA_MOVED"
	check "$CASE: and the client's connection is reset (on the wire and in the client)" \
		bash -c '[ -n "$1" ] && grep -q "Connection reset by peer" <<<"$2"' - "$KA_RESET" "$CRASH_OUT"
	case_end >/dev/null
	ka_case_start 0.1 permtcp || { result fail "$CASE: keepalived and permtcpd come up"; return; }
	CASE=keepalived4
	result ok "$CASE: keepalived and permtcpd (keepalived mode) on the three nodes, the owner holds $KA_VIP"
	ka_crash 100 permtcp
	echo "# keepalived + permtcp: address on peer1 ${KA_MOVED:-?} ms after the kill; client: $CRASH_OUT"
	check "$CASE: with permtcp the session survives, all 2000 answers right" grep -q '^ok rounds=2000 ' <<<"$CRASH_OUT"
	check "$CASE: no reset on the wire" test -z "$KA_RESET"
	check "$CASE: peer1 took over on keepalived's word, assuming no address" \
		vm_run peer1 "grep -q \"taking over on keepalived's word\" /tmp/t/permtcpd.log && ! grep -q 'assumed' /tmp/t/permtcpd.log"
	check "$CASE: kernel logs clean" logs_clean client peer1 peer2
	case_end
	vm_run_all "${NODES[*]}" "sh /selftests/cluster/node.sh stop" >/dev/null
	for t in "${CLUSTER_NODES[@]}"; do vm_running "$t" && pd_install "$t" >/dev/null; done
}

# median and worst of a list of numbers: "median M ms, worst W ms (N)".
med_worst() {
	printf '%s\n' "$@" | sed '/^$/d' | sort -n |
		awk '{ v[NR] = $1 } END { if (NR) printf "median %d ms, worst %d ms", v[int((NR + 1) / 2)], v[NR]; else printf "none" }'
}
# ---- the owner's throughput with and without permtcp (the benchmark) ----
# One bulk transfer (BULK bytes) from the owner to the client on port $1, in MB/s.
bulk_mbps() { # port
	vm_run owner "rm -rf /tmp/t/bulk && mkdir -p /tmp/t/bulk && touch /tmp/t/bulk/go && (ptcp-testapp serve 10.0.0.1:$1 down:$BULK /tmp/t/bulk >/dev/null 2>&1 &) && sh /selftests/cluster/node.sh wait-file /tmp/t/bulk/listening 100" >/dev/null || return 1
	vm_run -t 300 client "ptcp-testapp client 10.0.0.1:$1 down:$BULK" | sed -n 's/.*MBps=\([0-9.]*\).*/\1/p'
}
# The owner's bulk throughput to the client, each VM on its own vCPU, without permtcp (no
# module, no daemon anywhere) and with it (permtcpd on the three nodes, both peers snooping
# the transfer, the owner's lease renewed). This host runs the four VMs' vCPUs on its cores
# (two here): a snooping peer's vCPU, busy with every frame of the transfer, takes host CPU
# from the owner's and the client's, which separate machines would not. So each state runs
# three transfers, in the same host conditions for both states:
#   as is:  every VM anywhere, at nice 0;
#   nice:   both peers' QEMU at nice 19 (they get the CPU the owner and the client leave; a
#           peer that falls behind drops frames at its tap, which the counts below show);
#   pinned: the peers on host CPUs of their own, as separate machines have (with two or
#           three host CPUs, the owner and the client share the first and the peers the
#           second; with four, each VM has its own).
# The states go without, with, with, without, ... (round 1 without then with, round 2 with
# then without, and so on): an order that favours the later state, or a drift of the host
# over the run, weighs on both alike. Until 2026-12-01 the without transfers always came
# first, and at nice 0: the niced ratio then set niced peers against peers at nice 0.
# The next of the declared ports 80-90 after $1, round: a transfer on a port the bindings
# do not cover would run unmirrored (the bench's fourth and later rounds once did).
next_port() { echo $((80 + ($1 - 79) % 11)); }
pin_own_cpus() {
	if [ "$(nproc)" -ge 4 ]; then
		vm_pin 0 owner && vm_pin 1 client && vm_pin 2 peer1 && vm_pin 3 peer2
	else
		vm_pin 0 owner client && vm_pin 1 peer1 peer2
	fi
}
# median of a list of numbers ("-" for none)
median() { printf '%s\n' "$@" | sed '/^-*$/d' | sort -n | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "-" }'; }
# lowest-highest of a list of numbers
spread() { printf '%s\n' "$@" | sed '/^-*$/d' | sort -n | awk '{ v[NR] = $1 } END { print NR ? v[1] "-" v[NR] " MB/s" : "-" }'; }
# The rounds' own ratios (with/without, the two transfers of a kind in one round): their
# geometric mean and its 95 % interval (two standard errors of the mean log ratio), which
# says what the host's noise lets the medians resolve. Arguments: the two lists, each as
# one word-split string.
pair_ratio() { # "without..." "with..."
	awk -v a="$1" -v b="$2" 'BEGIN {
		na = split(a, x, " "); split(b, y, " ")
		for (i = 1; i <= na; i++)
			if (x[i] + 0 > 0 && y[i] + 0 > 0) { n++; l[n] = log(y[i] / x[i]); s += l[n] }
		if (n < 2) { print "-"; exit }
		m = s / n
		for (i = 1; i <= n; i++) v += (l[i] - m) ^ 2
		e = 2 * sqrt(v / (n - 1) / n)
		printf "%.3f (%.3f-%.3f, %d pairs)", exp(m), exp(m - e), exp(m + e), n
	}'
}
# One line of the summary: label, median MB/s without and with permtcp, their ratio.
throughput_row() { # label without with pairs
	awk -v l="$1" -v a="$2" -v b="$3" -v p="$4" 'BEGIN { printf "  %-34s without permtcp %s MB/s, with %s MB/s: ratio %s; rounds %s\n", l, a, b, (a + 0 > 0 && b ~ /^[0-9.]+$/ ? sprintf("%.3f", b / a) : "-"), p }'
}
# The three transfers in the current state ($1: off or on), into TP_<state>_<mode>; the
# frames the peers' taps dropped during each, into TP_DROPS_<mode>.
throughput_set() {
	local st=$1 mode mbps d0
	for mode in as nice pin; do
		[ $mode = pin ] && [ "$(nproc)" -lt 2 ] && continue
		case $mode in
		nice) vm_nice 19 peer1 peer2 ;;
		pin) pin_own_cpus ;;
		esac
		d0=$(peer_drops)
		# A failed transfer counts as "-": the lists stay aligned by round, for pairs.
		mbps=$(bulk_mbps $TP_PORT) && [ -n "$mbps" ] || mbps=-
		eval "TP_${st}_$mode+=(\"\$mbps\")"
		eval "TP_DROPS_$mode=\$((TP_DROPS_$mode + \$(peer_drops) - d0))"
		case $mode in
		nice) vm_nice 0 peer1 peer2 ;;
		pin) vm_pin all "${NODES[@]}" ;;
		esac
		TP_PORT=$(next_port $TP_PORT)
	done
}
# What peer1's hook saw and what it kept itself (zero-copy retention) since its daemon
# started snooping: "kept seen".
peer1_kept() {
	local k
	k=$(vm_run peer1 "permctl --json stats" |
		sed -n 's/.*"hook_frames":\([0-9]*\).*"frames_kept":\([0-9]*\).*/\2 \1/p')
	set -- $k 0 0
	echo "$1 $2"
}
# The cluster in state $1: off (no module, no daemon anywhere) or on (cluster_up); the
# state it is in is TP_CUR.
tp_state() { # off|on
	[ "$1" != "$TP_CUR" ] || return 0
	if [ "$1" = off ]; then
		vm_run_all "${NODES[*]}" "sh /selftests/cluster/node.sh stop" || die "node.sh stop"
	else
		cluster_up_settled || die "the cluster did not come up"
	fi
	TP_CUR=$1
}
# Round $1's order of the states: without, with, with, without, ...
tp_order() { if [ $(($1 % 2)) = 0 ]; then echo on off; else echo off on; fi; }
bench_throughput() {
	local i st k0 k1 order
	TP_off_as=() TP_off_nice=() TP_off_pin=() TP_on_as=() TP_on_nice=() TP_on_pin=()
	TP_DROPS_as=0 TP_DROPS_nice=0 TP_DROPS_pin=0 TP_PORT=80
	THROUGHPUT_KEPT=(0 0)
	case_start throughput >/dev/null || die "the cluster did not come up"
	cap_stop
	TP_CUR=on
	tp_state off
	for i in $(seq "$CRASHES"); do
		order=$(tp_order $i)
		for st in $order; do
			tp_state $st
			if [ $st = off ]; then
				throughput_set off
			else
				set -- $(peer1_kept)
				k0=$1 k1=$2
				throughput_set on
				set -- $(peer1_kept)
				THROUGHPUT_KEPT=($((THROUGHPUT_KEPT[0] + $1 - k0))
					$((THROUGHPUT_KEPT[1] + $2 - k1)))
			fi
		done
		progress "throughput $i ($order): without permtcp ${TP_off_as[*]: -1} MB/s, with ${TP_on_as[*]: -1}; peers at nice 19: ${TP_off_nice[*]: -1} / ${TP_on_nice[*]: -1}${TP_on_pin:+; peers on host CPUs of their own: ${TP_off_pin[*]: -1} / ${TP_on_pin[*]: -1}}; peer1 kept $((THROUGHPUT_KEPT[0])) of $((THROUGHPUT_KEPT[1])) frames so far"
	done
	THROUGHPUT="$(median "${TP_off_as[@]}") $(median "${TP_on_as[@]}")"
	THROUGHPUT+=" $(median "${TP_off_nice[@]}") $(median "${TP_on_nice[@]}")"
	[ ${#TP_on_pin[@]} = 0 ] ||
		THROUGHPUT+=" $(median "${TP_off_pin[@]}") $(median "${TP_on_pin[@]}")"
	THROUGHPUT_PAIRS=("$(pair_ratio "${TP_off_as[*]}" "${TP_on_as[*]}")"
		"$(pair_ratio "${TP_off_nice[*]}" "${TP_on_nice[*]}")"
		"$(pair_ratio "${TP_off_pin[*]}" "${TP_on_pin[*]}")")
	# How far single transfers of one kind spread (the host's noise, against the ratios).
	THROUGHPUT_SPREAD="without permtcp $(spread "${TP_off_as[@]}" "${TP_off_nice[@]}" "${TP_off_pin[@]}"), with $(spread "${TP_on_as[@]}" "${TP_on_nice[@]}" "${TP_on_pin[@]}")"
	case_end >/dev/null
}

# ---- the owner's own work per transfer, counted (the benchmark's owner-cost part) ----
# The owner's VM runs with scripts/tcgprof's plugin (user space counted too, snapshots on
# demand): one transfer of BULK bytes to the client, without permtcp and with it (as in
# bench_throughput, the states alternating), between two snapshots of the owner's counts.
# What the owner's kernel and user space ran for it does not depend on what else the host
# runs, as a time does: on separate machines, where the peers take nothing from it, the
# owner's throughput moves with its own work (a sender whose CPU limits it).
# Asks the owner's plugin for a snapshot named $1; waits for it (up to 10 s).
owner_snap() {
	local t=0
	echo "$1" >"$OWNER_PROF/prof.txt.snap"
	while [ -e "$OWNER_PROF/prof.txt.snap" ] || [ ! -e "$OWNER_PROF/prof.txt.$1" ]; do
		[ $t -lt 500 ] || die "the owner's plugin wrote no snapshot $1"
		sleep 0.02
		t=$((t + 1))
	done
}
bench_owner_cost() {
	local i st k u mbps text t0 t1 pairs_off=() pairs_on=() daemon=()
	OC_off=() OC_on=() OC_IDLE_off=() OC_IDLE_on=() OC_SECS_on=()
	TP_PORT=80
	case_start owner-cost >/dev/null || die "the cluster did not come up"
	cap_stop
	text=$(vm_run owner "cat /sys/module/permtcp/sections/.text")
	TP_CUR=on
	tp_state off
	for i in $(seq "$CRASHES"); do
		for st in $(tp_order $i); do
			tp_state $st
			# The last transfer's files go before the count starts (bulk_mbps removes
			# them too, inside the count, where they cost the transfer after another
			# in the same state some 13 M instructions of page-cache work).
			vm_run owner "rm -rf /tmp/t/bulk" >/dev/null
			owner_snap "$st-$i-a"
			mbps=$(bulk_mbps $TP_PORT) || mbps=-
			owner_snap "$st-$i-b"
			# Then nothing transferred for about two seconds: what the owner runs per
			# second in this state whatever it sends (with permtcp: permtcpd's heartbeats,
			# leases and timers, and the kernel's work for them).
			t0=$(now)
			owner_snap "$st-$i-c"
			sleep 2
			owner_snap "$st-$i-d"
			t1=$(now)
			read -r k u < <(python3 "$PERMTCP_ROOT/scripts/tcgprof/delta.py" /dev/null \
				"$OWNER_PROF/prof.txt.$st-$i-c" "$OWNER_PROF/prof.txt.$st-$i-d")
			t1=$(ms "$t0" "$t1")
			eval "OC_IDLE_$st+=(\"\$(((k + u) * 1000 / (t1 > 0 ? t1 : 1)))\")"
			[ $st = off ] || [ "$mbps" = - ] ||
				OC_SECS_on+=("$(awk -v b="$BULK" -v m="$mbps" 'BEGIN { printf "%.3f", b / m / 1e6 }')")
			if [ $st = on ]; then
				# The daemon's mappings, for its share of the user-space count.
				vm_run owner 'cat /proc/$(cat /tmp/t/permtcpd.pid)/maps' >"$OWNER_PROF/maps.$i"
				python3 "$PERMTCP_ROOT/scripts/tcgprof/delta.py" "$OWNER_PROF/on-$i.txt" \
					"$OWNER_PROF/prof.txt.$st-$i-a" "$OWNER_PROF/prof.txt.$st-$i-b" >/dev/null
				daemon+=("$OWNER_PROF/on-$i.txt" "$OWNER_PROF/maps.$i")
			fi
			TP_PORT=$(next_port $TP_PORT)
			read -r k u < <(python3 "$PERMTCP_ROOT/scripts/tcgprof/delta.py" /dev/null \
				"$OWNER_PROF/prof.txt.$st-$i-a" "$OWNER_PROF/prof.txt.$st-$i-b")
			eval "OC_$st+=(\"\$k \$u\")"
			eval "pairs_$st+=(\"\$OWNER_PROF/prof.txt.\$st-\$i-a\" \"\$OWNER_PROF/prof.txt.\$st-\$i-b\")"
			progress "owner cost $i, $st: ${mbps} MB/s, the owner ran $k kernel and $u user instructions"
		done
	done
	# Every transfer of a state summed, as a profile report.py reads: what the owner ran
	# more with permtcp, function by function (its module's symbols at the address it had).
	for st in off on; do
		mkdir -p "$OWNER_PROF/$st"
		cp "$KDIR/System.map" "$OWNER_PROF/$st/"
		cp "$module" "$OWNER_PROF/$st/permtcp.ko"
		echo "${text:-0xffffffffa0000000}" >"$OWNER_PROF/$st/text"
	done
	python3 "$PERMTCP_ROOT/scripts/tcgprof/delta.py" "$OWNER_PROF/off/prof.txt" "${pairs_off[@]}" >/dev/null
	python3 "$PERMTCP_ROOT/scripts/tcgprof/delta.py" "$OWNER_PROF/on/prof.txt" "${pairs_on[@]}" >/dev/null
	# The guests run without address-space randomisation: the daemon's addresses hold the
	# test program's code too, which the transfers without permtcp cancel.
	python3 "$PERMTCP_ROOT/scripts/tcgprof/usyms.py" "$work/root" --top=15 \
		--minus="$OWNER_PROF/off/prof.txt" "$OWNER_PROF/on/prof.txt" "${daemon[1]}" \
		>"$OWNER_PROF/permtcpd.txt"
	case_end >/dev/null
}
# The median of the "KERNEL USER" pairs given, by their sum: "KERNEL USER".
median_pair() { printf '%s\n' "$@" | awk '{ print $1 + $2, $1, $2 }' | sort -n | awk '{ k[NR] = $2; u[NR] = $3 } END { if (NR) print k[int((NR + 1) / 2)], u[int((NR + 1) / 2)] }'; }
owner_cost_summary() {
	local off on
	off=$(median_pair "${OC_off[@]}")
	on=$(median_pair "${OC_on[@]}")
	echo
	echo "the owner's own work per transfer of $BULK bytes to the client (tcgprof on the owner's VM, kernel and"
	echo "user space; median of $CRASHES each, the states alternating):"
	set -- $off $on
	awk -v k0="$1" -v u0="$2" -v k1="$3" -v u1="$4" -v i0="$(median "${OC_IDLE_off[@]}")" \
		-v i1="$(median "${OC_IDLE_on[@]}")" -v secs="$(median "${OC_SECS_on[@]}")" 'BEGIN {
		w0 = k0 + u0; w1 = k1 + u1
		printf "  without permtcp %.1f M instructions (kernel %.1f M, user %.1f M)\n", w0 / 1e6, k0 / 1e6, u0 / 1e6
		printf "  with permtcp    %.1f M instructions (kernel %.1f M, user %.1f M)\n", w1 / 1e6, k1 / 1e6, u1 / 1e6
		printf "  owner throughput by instructions (without/with): %.4f\n", (w1 > 0 ? w0 / w1 : 0)
		bg = i1 - i0
		printf "  nothing transferred: without permtcp %.2f M instructions a second, with %.2f M: +%.2f M a second\n", i0 / 1e6, i1 / 1e6, bg / 1e6
		t = bg * secs
		printf "  of the +%.1f M a transfer took with permtcp, %.1f M is that rate over the %.2f s it lasted here, and\n", (w1 - w0) / 1e6, t / 1e6, secs
		printf "  %.1f M the rest (the module'"'"'s hooks, and the transfer'"'"'s own work as it changed): without the\n", (w1 - w0 - t) / 1e6
		printf "  first part (a CPU that runs the transfer in a fraction of the time), by instructions %.4f\n", (w1 - t > 0 ? w0 / (w1 - t) : 0) }'
	printf '  single transfers, without: %s\n' "$(printf '%s\n' "${OC_off[@]}" | awk '{ printf "%s%.1f", (NR > 1 ? ", " : ""), ($1 + $2) / 1e6 } END { print " M" }')"
	printf '  single transfers, with:    %s\n' "$(printf '%s\n' "${OC_on[@]}" | awk '{ printf "%s%.1f", (NR > 1 ? ", " : ""), ($1 + $2) / 1e6 } END { print " M" }')"
	echo "  what the owner ran more with permtcp, all $CRASHES transfers (scripts/tcgprof/report.py):"
	python3 "$PERMTCP_ROOT/scripts/tcgprof/report.py" "$OWNER_PROF/on" "$OWNER_PROF/off" --top=15 | sed 's/^/    /'
	echo "  of the user-space part, permtcpd's own, all $CRASHES transfers with permtcp (scripts/tcgprof/usyms.py):"
	sed 's/^/    /' "$OWNER_PROF/permtcpd.txt"
}

# keepalived alone and keepalived with permtcp, advert_int 0.1 and 1 s, CRASHES crashes each.
bench_keepalived() {
	local adv mode i moved resets survived stalls
	for adv in 0.1 1; do
		for mode in plain permtcp; do
			moved=() resets=() stalls=() survived=0
			for i in $(seq "$CRASHES"); do
				ka_case_start "$adv" "$mode" || die "keepalived ($mode, advert_int $adv) did not come up"
				if ka_crash "$(awk -v a="$adv" 'BEGIN { print a * 1000 }')" "$mode"; then :; fi
				moved+=("$KA_MOVED")
				[ -z "$KA_RESET" ] || resets+=("$KA_RESET")
				if grep -q '^ok rounds=' <<<"$CRASH_OUT"; then
					survived=$((survived + 1))
					stalls+=("$CRASH_STALL")
				fi
				progress "keepalived advert_int $adv, $mode, crash $i: address on peer1 after ${KA_MOVED:-?} ms, first reset ${KA_RESET:-none}${KA_RESET:+ ms}; client: $CRASH_OUT"
				case_end >/dev/null
			done
			KA_BENCH+=("$(printf 'keepalived advert_int %-3s %-10s address moved: %s; sessions survived %d of %d; stall %s; resets on the wire %d (first: %s)' \
				"$adv" "${mode/permtcp/+ permtcp}" "$(med_worst "${moved[@]}")" "$survived" "$CRASHES" \
				"$(med_worst "${stalls[@]}")" "${#resets[@]}" "$(med_worst "${resets[@]}")")")
		done
	done
}

# The planned handoff's figures for N = PERMTCP_HANDOFF_CONNS (default 1 100 1000)
# connections: the client's sessions (a round every 20 ms on each, N / 2.5 ms from 100 on:
# the VMs' one vCPU under TCG answers about 2,500 rounds a second), 3 s without a handoff
# (phase 0, the baseline: the worst round TCG gives anyway), then `permtcpd --handoff` on
# the owner and 2 s more (phase 1); each session's worst round in a phase is the pause it
# saw. Prints per N the pause per connection (median, 99th percentile and largest over the
# sessions) in both phases and permtcpd's times. Heartbeats every
# 300 ms, 10 missed (PERMTCP_HB_MS, PERMTCP_MISSED otherwise): a thousand sessions starting
# at once starve the VMs under TCG for longer than the tier's 300 ms dead time. A run whose
# cluster lost a node meanwhile is run again (three tries).
bench_handoff() {
	local n iv try
	HB_MS=${PERMTCP_HB_MS:-300} MISSED=${PERMTCP_MISSED:-10}
	for n in ${PERMTCP_HANDOFF_CONNS:-1 100 1000}; do
		iv=$((n < 100 ? 20 : n * 2 / 5))
		for try in 1 2 3; do
			bench_handoff_once "$n" "$iv" && break
			progress "handoff of $n, try $try: $HO_FAILED"
		done
		HO_BENCH+=("$(printf '%5d conns (a round every %3d ms): pause per connection median %s ms, p99 %s ms, max %s ms (baseline before it: median %s, max %s); held %s, taken %s, aborted %s; hold %s us, take round trip %s us, done %s us, total %s us' \
			"$n" "$iv" "$(kv "$HO_CLIENT" pause_median_ms phase=1)" "$(kv "$HO_CLIENT" pause_p99_ms phase=1)" \
			"$(kv "$HO_CLIENT" pause_max_ms phase=1)" \
			"$(kv "$HO_CLIENT" pause_median_ms phase=0)" "$(kv "$HO_CLIENT" pause_max_ms phase=0)" \
			"$(json_num "$HO_JSON" held)" "$(json_num "$HO_JSON" taken)" "$(json_num "$HO_JSON" aborted)" \
			"$(json_num "$HO_JSON" hold)" "$(json_num "$HO_JSON" take)" "$(json_num "$HO_JSON" done)" "$(json_num "$HO_JSON" total)")")
	done
	HB_MS=100 MISSED=3
}
# One run of bench_handoff: $1 sessions, a round every $2 ms; HO_JSON and HO_CLIENT as it
# found them, HO_FAILED why it failed.
bench_handoff_once() { # conns interval-ms
	local m
	for m in "${CLUSTER_NODES[@]}"; do
		! vm_running "$m" || pd_install "$m" >/dev/null || { HO_FAILED="configuration of $m"; return 1; }
	done
	HO_JSON= HO_FAILED=
	case_start "bench-handoff-$1" >"$work/case.out" 2>&1 || { HO_FAILED="the cluster did not come up: $(tail -n 5 "$work/case.out")"; return 1; }
	handoff_start 10.0.0.1 "$1" "$2" || HO_FAILED="$1 sessions did not start"
	[ -n "$HO_FAILED" ] || mirrored_on peer1 "$1" 300 >/dev/null || HO_FAILED="peer1 does not mirror every session"
	sleep 3
	handoff_phase 1
	[ -n "$HO_FAILED" ] || handoff_do 10.0.0.1:80 2 owner
	sleep 2
	handoff_end
	grep -q '"held":' <<<"$HO_JSON" || HO_FAILED=${HO_FAILED:-"permtcpd --handoff: $HO_JSON"}
	grep -q "^ok conns=$1 " <<<"$HO_CLIENT" || HO_FAILED=${HO_FAILED:-"the client: $HO_CLIENT"}
	vm_run_all "owner peer1" "grep -E 'verdict|declared|handoff|error' /tmp/t/permtcpd.log | tail -n 12"
	sed 's/^/# owner: /' "$work/owner.out"
	sed 's/^/# peer1: /' "$work/peer1.out"
	case_end >/dev/null
	progress "handoff of $1: $HO_JSON; client: $(tr '\n' ' ' <<<"$HO_CLIENT")"
	[ -z "$HO_FAILED" ]
}

# Client-observed stalls for heartbeat intervals of 100 ms and 1 s, five crashes each.
bench() {
	local hb i n s stalls sorted hbs=
	[[ " $BENCH_PARTS " != *" heartbeats "* ]] || hbs="100 1000"
	for hb in $hbs; do
		HB_MS=$hb
		stalls=()
		for i in $(seq "$CRASHES"); do
			# New configurations for the running cluster nodes (a rebooted owner gets them).
			for n in "${CLUSTER_NODES[@]}"; do
				! vm_running "$n" || pd_install "$n" >/dev/null || die "configuration of $n"
			done
			case_start "bench-hb$hb-$i" || die "the cluster did not come up"
			if crash_session 2000; then
				stalls+=("$CRASH_STALL")
				progress "heartbeats $hb ms, crash $i: the client's stall $CRASH_STALL ms (verdict after $(vm_run peer1 "grep -m1 -o 'last heard [0-9]* ms' /tmp/t/permtcpd.log"))"
			else
				progress "heartbeats $hb ms, crash $i: FAILED ($CRASH_OUT)"
			fi
			case_end >/dev/null
		done
		sorted=$(printf '%s\n' "${stalls[@]}" | sort -n)
		s=$(printf '%s\n' "$sorted" | awk '{ v[NR] = $1 } END { if (NR) printf "median %d ms, worst %d ms (%d crashes)", v[int((NR + 1) / 2)], v[NR], NR }')
		BENCH+=("heartbeats $hb ms, $MISSED missed: client stall $s")
	done
	HB_MS=100
	[[ " $BENCH_PARTS " != *" keepalived "* ]] || bench_keepalived
	[[ " $BENCH_PARTS " != *" throughput "* ]] || bench_throughput
	[[ " $BENCH_PARTS " != *" owner-cost "* ]] || bench_owner_cost
	[[ " $BENCH_PARTS " != *" handoff "* ]] || bench_handoff
	echo
	echo "client-observed stall across kill -9 of the owner's VM (a crash at a random point of the heartbeat"
	echo "or advertisement cycle; same VMs, client and session; TCG):"
	[ ${#BENCH[@]} = 0 ] || printf '  permtcp, %s\n' "${BENCH[@]}"
	[ ${#KA_BENCH[@]} = 0 ] || printf '  %s\n' "${KA_BENCH[@]}"
	if [ ${#HO_BENCH[@]} -gt 0 ]; then
		echo
		echo "planned handoff through permtcpd (owner to peer1, traffic running; separate VMs, TCG):"
		printf '  %s\n' "${HO_BENCH[@]}"
	fi
	if [ -n "$THROUGHPUT" ]; then
		echo
		echo "the owner's bulk throughput to the client ($BULK bytes, median of $CRASHES, separate VMs):"
		set -- $THROUGHPUT
		echo "  (medians and their ratio; then \"rounds\": the geometric mean of each round's own ratio,"
		echo "  with its 95 % interval: what the host's noise lets the figures resolve)"
		throughput_row "as is:" "$1" "$2" "${THROUGHPUT_PAIRS[0]}"
		throughput_row "peers at nice 19:" "$3" "$4" "${THROUGHPUT_PAIRS[1]}"
		[ $# -lt 6 ] || throughput_row "peers on host CPUs of their own:" "$5" "$6" "${THROUGHPUT_PAIRS[2]}"
		echo "  single transfers, every way of running: $THROUGHPUT_SPREAD"
		echo "  (frames the peers' taps dropped during the transfers with permtcp: $TP_DROPS_as as is, $TP_DROPS_nice at nice 19, $TP_DROPS_pin on their own CPUs;"
		echo "  frames peer1's hook kept itself (no clone), of those it saw: ${THROUGHPUT_KEPT[0]} of ${THROUGHPUT_KEPT[1]})"
	fi
	[ ${#OC_on[@]} = 0 ] || owner_cost_summary
}
# ---- run ----
build_initramfs "$work" keepalived
accel=$(vm_accel "$work")
# fd 3: the log, for what a check run by check_here shows whatever its outcome.
exec 3>&1
net_up || die "cannot set up network namespace $NS"
make_key
FIGS=()
BENCH=()
KA_BENCH=()
HO_BENCH=()
CRASHES=${PERMTCP_CRASHES:-5}
BENCH_PARTS=${PERMTCP_BENCH:-heartbeats keepalived throughput}
BULK=${PERMTCP_BULK:-30000000}
THROUGHPUT=
OC_on=()
# The owner-cost part runs the owner's VM with tcgprof's plugin, slower: alone, so that no
# timed figure of the same run is taken with it.
OWNER_PROF=
if [[ " $BENCH_PARTS " == *" owner-cost "* ]]; then
	[ "$BENCH_PARTS" = owner-cost ] || die "PERMTCP_BENCH=owner-cost runs alone (its plugin slows the owner's VM)"
	[ "$accel" = tcg ] || die "owner-cost counts with a TCG plugin: PERMTCP_KVM=0"
	OWNER_PROF=$work/owner-prof
	rm -rf "$OWNER_PROF"
	mkdir -p "$OWNER_PROF"
	OWNER_PLUGIN=$PERMTCP_ROOT/target/tcgprof/tcgprof.so
	if [ ! -e "$OWNER_PLUGIN" ] || [ "$PERMTCP_ROOT/scripts/tcgprof/tcgprof.c" -nt "$OWNER_PLUGIN" ]; then
		mkdir -p "$(dirname "$OWNER_PLUGIN")"
		gcc -O2 -shared -fPIC -Wall -Werror -o "$OWNER_PLUGIN" "$PERMTCP_ROOT/scripts/tcgprof/tcgprof.c" ||
			die "cannot build $OWNER_PLUGIN"
	fi
fi
case $MODE in
demo)
	progress "demo: $(basename "$bzimage") ($(kernel_version)) under ${accel^^}, 1 vCPU and 384 MB per VM"
	demo
	exit 0
	;;
bench)
	progress "failover benchmark: $(basename "$bzimage") ($(kernel_version)) under ${accel^^}, 1 vCPU and 384 MB per VM"
	bench
	exit 0
	;;
esac
planned=0
for c in "${cases[@]}"; do planned=$((planned + PLAN[$c])); done
echo "KTAP version 1"
echo "1..$planned"
progress "multi-VM tier: ${cases[*]}; $(basename "$bzimage") ($(kernel_version)) under ${accel^^}, 1 vCPU and 384 MB per VM; heartbeats $HB_MS ms, $MISSED missed"
for c in "${cases[@]}"; do
	case $c in
	kill9-echo4) case_echo 4 ;;
	kill9-echo6) case_echo 6 ;;
	kill9-bulk4) case_bulk 4 ;;
	kill9-bulk6) case_bulk 6 ;;
	lossy-echo4) case_echo 4 "loss 10% delay 20ms" ;;
	zombie4) case_zombie stop 4 ;;
	zombie6) case_zombie stop 6 ;;
	partition4) case_zombie partition 4 ;;
	partition6) case_zombie partition 6 ;;
	daemons4) case_daemons ;;
	recovery4) case_recovery 4 ;;
	recovery6) case_recovery 6 ;;
	handoff4) case_handoff 4 ;;
	handoff6) case_handoff 6 ;;
	handoff-lost4) case_handoff_lost ;;
	keepalived4) case_keepalived ;;
	esac
done
elapsed=$(awk -v a="$T0" -v b="$(now)" 'BEGIN { printf "%d", b - a }')
if [ ${#FIGS[@]} -gt 0 ]; then
	echo "# fail-over figures:"
	printf '#   %s\n' "${FIGS[@]}"
fi
if [ "$KN" != "$planned" ]; then
	echo "# planned $planned checks, ran $KN"
	KFAIL=$((KFAIL + 1))
fi
echo "cluster: $KPASS passed, $KFAIL failed, $KTODO todo (${#cases[@]} cases, ${elapsed}s under ${accel^^})"
[ "$KFAIL" = 0 ]
