# SPDX-License-Identifier: GPL-2.0
#
# Helpers for permtcp's kselftest-style scripts, sourced inside the QEMU guest.
# Output is KTAP: each script prints its header and plan, then one result line per case.

# Debian's static busybox prefers its own applets over PATH: make `ip` mean iproute2's.
ip() { /bin/ip "$@"; }

KTAP_N=0
KTAP_FAILED=0
MOD=/lib/modules/permtcp.ko

ktap_plan() {
	KTAP_PLANNED=$1
	echo "KTAP version 1"
	echo "1..$1"
}

ktap_result() { # status description
	KTAP_N=$((KTAP_N + 1))
	if [ "$1" = ok ]; then
		echo "ok $KTAP_N $2"
	else
		echo "not ok $KTAP_N $2"
		KTAP_FAILED=$((KTAP_FAILED + 1))
	fi
}

# check DESCRIPTION CMD...: the case passes when CMD exits 0.
check() {
	desc=$1
	shift
	if out=$("$@" 2>&1); then
		ktap_result ok "$desc"
	else
		echo "# command failed: $*"
		echo "$out" | sed 's/^/#   /'
		ktap_result fail "$desc"
	fi
}

# check_fails DESCRIPTION EXIT PATTERN CMD...: CMD must exit with EXIT and print PATTERN.
check_fails() {
	desc=$1 want=$2 pattern=$3
	shift 3
	out=$("$@" 2>&1)
	rc=$?
	if [ "$rc" = "$want" ] && echo "$out" | grep -q -- "$pattern"; then
		ktap_result ok "$desc"
	else
		echo "# expected exit $want and '$pattern' from: $*"
		echo "# got exit $rc:"
		echo "$out" | sed 's/^/#   /'
		ktap_result fail "$desc"
	fi
}

# check_rc DESCRIPTION EXIT CMD...: CMD must exit with EXIT, whatever it prints.
check_rc() {
	d_=$1 w_=$2
	shift 2
	check_fails "$d_" "$w_" "" "$@"
}

# u32 and u16 attributes and IPv4-mapped addresses, as `permctl debug raw` takes them.
le32() { printf '%02x%02x%02x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24)); }
a32() { printf '0800%02x00%s' "$1" "$(le32 "$2")"; }
a16() { printf '0600%02x00%02x%02x0000' "$1" $(($2 & 255)) $(($2 >> 8)); }
a4() { # kind a.b.c.d
	set -- "$1" $(echo "$2" | tr . ' ')
	printf '1400%02x0000000000000000000000ffff%02x%02x%02x%02x' "$1" "$2" "$3" "$4" "$5"
}
# The attributes of a DIRECTIVE (`permctl debug raw --cmd 12`) for node 1's connection
# 10.0.0.1:80 <- 10.0.0.100:$1, from node $2 (none: -).
directive_hex() { # client-port from
	hex="$(a32 2 1)$(a4 13 10.0.0.1)$(a16 14 80)$(a4 15 10.0.0.100)$(a16 16 "$1")"
	[ "$2" = - ] || hex="$hex$(a32 40 "$2")"
	echo "$hex"
}

# ktap_skip N DESCRIPTION REASON: N cases of a part not run, reported as KTAP skips
# ("ok N DESCRIPTION # SKIP REASON"; run_vm.sh counts them apart from the passed ones).
ktap_skip() {
	i_=0
	while [ $i_ -lt "$1" ]; do
		i_=$((i_ + 1))
		KTAP_N=$((KTAP_N + 1))
		echo "ok $KTAP_N $2 # SKIP $3"
	done
}

# The short form `make check` runs (PERMTCP_QUICK=1 on the host: permtcp.quick=1 here);
# `make selftests` and the sanitizer runs run everything.
QUICK=$(sed -n 's/.*permtcp\.quick=\([0-9]*\).*/\1/p' /proc/cmdline 2>/dev/null)
quick() { [ "${QUICK:-0}" = 1 ]; }

# family_part FAMILY INDEX N DESCRIPTION: whether the part numbered INDEX (0, 1, ...) of a
# script runs on address family FAMILY (4 or 6). Everything runs, except in the short form,
# where a part that runs on both families runs on one, alternating (IPv4 for even parts, IPv6
# for odd ones) so that each family's code is still taken; the other family's N cases are
# reported as skipped.
family_part() {
	quick || return 0
	[ $(($2 % 2)) = $(($1 == 6)) ] && return 0
	ktap_skip "$3" "$4" "short form (make check): IPv$((10 - $1)) only; make selftests runs both"
	return 1
}

# Exit status of a script: non-zero when a case failed or the plan was not met.
ktap_finish() {
	if [ "$KTAP_N" != "$KTAP_PLANNED" ]; then
		echo "# planned $KTAP_PLANNED cases, ran $KTAP_N"
		exit 1
	fi
	[ "$KTAP_FAILED" = 0 ]
	exit $?
}

# Fails when the kernel log shows a warning, oops or refcount/list corruption report.
# On the KCSAN kernel, the core kernel's own races (boot-time APIC calibration, RCU) are not
# ours: a race report counts when one of its two functions is permtcp's (ptcp_* in C, a
# mangled name with "permtcp" in Rust).
kernel_log_clean() {
	bad_=$(dmesg | grep -E 'WARNING:|BUG:|Oops|Call Trace|refcount_t:|list_(add|del) corruption|general protection|permtcp: .* failed' |
		grep -v -E 'BUG: KCSAN: data-race in' ; dmesg | grep -E 'BUG: KCSAN: data-race in .*(ptcp_|permtcp)')
	[ -z "$bad_" ] && return 0
	echo "$bad_" | head -n 5 | sed 's/^/# dmesg: /'
	return 1
}

load_module() {
	insmod "$MOD" || return
	# permtcp.born=0 on the guest's command line (PERMTCP_VM_APPEND): every taken-over
	# connection rebuilt with TCP_REPAIR, none born from its listener (busybox insmod does
	# not read the command line as modprobe does).
	if grep -q 'permtcp\.born=0' /proc/cmdline; then
		echo 0 >/sys/module/permtcp/parameters/born
	fi
}

unload_module() {
	rmmod permtcp
}

module_loaded() {
	grep -q '^permtcp ' /proc/modules
}

# Canonical sample declaration for node $1 (addresses derived from the node id).
add_decl() { # node [extra args...]
	n=$1
	shift
	permctl decl add --node "$n" --addr "192.0.2.$n" --addr "2001:db8::$n" \
		--mac "$(printf "02:00:00:00:00:%02x" "$n")" --ports 80 --ports 8000-8999 --app "svc$n" "$@"
}

# Puts device $1 on br0 as a hub's port: it learns no MAC, so every unicast frame floods to
# every port. Ageing 0 alone is not enough: a learnt MAC stays until the bridge's garbage
# collection runs (every 10 ms, later on a loaded TCG guest), and meanwhile frames to it
# went to its port only. A peer that missed a connection's frames that way had no mirror of
# it at the takeover (takeover_unmodified_http.sh, IPv6 between: 3 runs in 12).
br_port() {
	/bin/ip link set "$1" master br0 &&
		/bin/ip link set "$1" type bridge_slave learning off &&
		/bin/ip link set "$1" up
}

# A cluster on one flooding bridge: the owner (node 1, 10.0.0.1 / fd00::1), its permanency
# peer (node 2, 10.0.0.2 / fd00::2) and a client (10.0.0.100 / fd00::100), each in its own
# namespace with eth0.  The bridge learns no MAC and ignores multicast membership, so every
# port sees every frame: the shared cluster link (Documentation/design.rst, "The cluster
# link"). With PEER2=1, a second peer too (node 3, 10.0.0.3 / fd00::3, MAC ...:04).
cluster_net() {
	/bin/ip link add br0 type bridge ageing_time 0 mcast_snooping 0
	/bin/ip link set br0 up
	i=1
	for ns in owner peer client ${PEER2:+peer2}; do
		/bin/ip netns add "$ns"
		/bin/ip link add "v$ns" type veth peer name eth0 netns "$ns"
		br_port "v$ns"
		/bin/ip -n "$ns" link set lo up
		/bin/ip -n "$ns" link set eth0 address "02:00:00:00:00:0$i" up
		i=$((i + 1))
	done
	/bin/ip -n owner addr add 10.0.0.1/24 dev eth0
	/bin/ip -n owner addr add fd00::1/64 dev eth0 nodad
	/bin/ip -n peer addr add 10.0.0.2/24 dev eth0
	/bin/ip -n peer addr add fd00::2/64 dev eth0 nodad
	/bin/ip -n client addr add 10.0.0.100/24 dev eth0
	/bin/ip -n client addr add fd00::100/64 dev eth0 nodad
	if [ -n "$PEER2" ]; then
		/bin/ip -n peer2 addr add 10.0.0.3/24 dev eth0
		/bin/ip -n peer2 addr add fd00::3/64 dev eth0 nodad
	fi
}


# cluster_net, then the owner and the peer exchange declarations (ports PORTS, 80-90 by
# default) and the peer snoops eth0
# (with the extra `permctl snoop start` options in SNOOP_OPTS, if set; the owner's
# declaration gets the extra `permctl decl add` options in OWNER_OPTS).
cluster_up() {
	cluster_net
	OWNER_DECL="--node 1 --addr 10.0.0.1 --addr fd00::1 --mac 02:00:00:00:00:01 --ports ${PORTS:-80-90} $OWNER_OPTS"
	PEER_DECL="--node 2 --addr 10.0.0.2 --addr fd00::2 --mac 02:00:00:00:00:02 --ports ${PORTS:-80-90}"
	/bin/ip netns exec owner permctl decl add $OWNER_DECL --local >/dev/null &&
		/bin/ip netns exec owner permctl decl add $PEER_DECL >/dev/null &&
		/bin/ip netns exec peer permctl decl add $PEER_DECL --local >/dev/null &&
		/bin/ip netns exec peer permctl decl add $OWNER_DECL >/dev/null &&
		/bin/ip netns exec peer permctl snoop start --dev eth0 $SNOOP_OPTS >/dev/null
}

cluster_down() {
	# Every process left in them first (`kill $!` of `in_ns cmd &` kills the shell running
	# the function, not the command): a namespace lives on while a process is in it.
	for ns in owner peer client peer2; do
		[ -e "/run/netns/$ns" ] || continue
		t_=0
		while [ -n "$(/bin/ip netns pids "$ns")" ] && [ $t_ -lt 100 ]; do
			netns_signal "$ns" 9
			sleep 0.1
			t_=$((t_ + 1))
		done
	done
	# Delete the veth pairs first: a namespace is torn down asynchronously.
	for ns in owner peer client peer2; do /bin/ip link del "v$ns" 2>/dev/null; done
	for ns in owner peer client peer2; do /bin/ip netns del "$ns" 2>/dev/null; done
	/bin/ip link del br0 2>/dev/null
	true
}

in_owner() { /bin/ip netns exec owner "$@"; }
in_peer() { /bin/ip netns exec peer "$@"; }
in_client() { /bin/ip netns exec client "$@"; }
in_peer2() { /bin/ip netns exec peer2 "$@"; }

# Conntrack tracks every connection of the namespaces given (an nft table "bench" with a
# counter of established ones on input and output), as the bench compares snooping with.
conntrack_on() { # namespace...
	for n_ in "$@"; do
		/bin/ip netns exec "$n_" nft -f - <<-EOF
		table inet bench {
			chain pre { type filter hook prerouting priority 0; ct state established counter; }
			chain out { type filter hook output priority 0; ct state established counter; }
		}
		EOF
	done
}

# Sends signal $2 to every process of namespace $1: a crash or a freeze of its machine hits
# all of them.
netns_signal() { # namespace signal
	for p_ in $(/bin/ip netns pids "$1"); do kill -"$2" "$p_" 2>/dev/null; done
}

# The owner crashes: its link goes away first, so that nothing its processes do from then on
# reaches the wire, then every process of its namespace is killed (its server, any daemon),
# and waited for (up to 10 s). $1 is the server's PID as the script knows it: `$!` of
# `in_owner server &`, which is the shell that runs the function, not the server (killing
# it alone had left every test's server running, its link down).
crash_owner() {
	/bin/ip link set vowner down
	kill -9 "$1" 2>/dev/null
	t_=0
	while [ -n "$(/bin/ip netns pids owner)" ] && [ $t_ -lt 100 ]; do
		netns_signal owner 9
		sleep 0.1
		t_=$((t_ + 1))
	done
}

# crash_owner for many connections: a crashed owner's sockets are gone with its machine.
# Here the dying process's would stay as orphans, sending their FINs again into the dead link
# (0.2, 0.6, 1.4 s after the kill...), ten thousand timers at a time on the CPUs that take
# them over: with no orphan allowed, each is reset (into the dead link) and freed as it
# closes. Returns once they are all gone (up to 30 s); says so if they are not.
crash_owner_gone() {
	o_=$(cat /proc/sys/net/ipv4/tcp_max_orphans)
	echo 0 >/proc/sys/net/ipv4/tcp_max_orphans
	crash_owner "$1"
	t_=0
	while [ "$(in_owner ss -Htan | wc -l)" -gt 0 ] && [ $t_ -lt 600 ]; do
		sleep 0.05
		t_=$((t_ + 1))
	done
	echo "$o_" >/proc/sys/net/ipv4/tcp_max_orphans
	[ $t_ -lt 600 ] || echo "# the owner's sockets are still there 30 s after the kill"
}

# The owner serves echo requests on port 80 and the client starts a 40-round session to
# $1:80 that pauses halfway until file $2 exists (output in $2.out); returns once it waits.
# Further arguments go to the owner's echo-serve. Sets owner_pid and client_pid.
echo_session() { # service-address pause-file [owner-options...]
	vip_=$1 pause_=$2
	shift 2
	in_owner ptcp-testapp echo-serve "[::]:80" "$@" &
	owner_pid=$!
	sleep 0.5
	paused_client "$pause_" 100 ptcp-testapp echo-client "$vip_:80" 40 "$pause_"
	sleep 0.5
}

# Starts a client COMMAND in the client's namespace, in the background (client_pid), with
# its output in $1.out; it pauses by creating $1.wait and waiting for $1. Returns once it
# paused, or after $2 tenths of a second.
paused_client() { # pause-file tenths command...
	p_=$1 n_=$2
	shift 2
	rm -f "$p_" "$p_.wait"
	in_client "$@" >"$p_.out" 2>&1 &
	client_pid=$!
	wait_file "$p_.wait" "$n_"
}

# Waits for file $1, up to $2 tenths of a second (default 100).
wait_file() {
	t=0
	while [ ! -e "$1" ] && [ $t -lt "${2:-100}" ]; do sleep 0.1; t=$((t + 1)); done
}

# Reads the peer's mirror of a paused oracle transfer (`ptcp-testapp serve ... DIR`, at its
# quiescent point: DIR/state.json; the owner's end $2) into DIR/conns.json, out.bin and
# in.bin, then lets the transfer finish and waits for it: `ptcp-testapp compare DIR` then
# checks the mirror against the owner's kernel.
oracle_read() { # dir owner-address
	or_client=$(sed 's/.*"peer":"\([^"]*\)".*/\1/' "$1/state.json")
	in_peer permctl --json conns >"$1/conns.json"
	in_peer permctl conn-data --owner "$2" --client "$or_client" --side owner \
		--out "$1/out.bin" >"$1/out.txt"
	in_peer permctl conn-data --owner "$2" --client "$or_client" --side client \
		--out "$1/in.bin" >"$1/in.txt"
	touch "$1/go"
	wait
}

# Ends a cluster case: kills the given processes, waits for every background one, takes the
# cluster down, unloads the module and checks the kernel log as case DESCRIPTION.
case_done() { # description [pid...]
	desc_=$1
	shift
	kill -9 "$@" 2>/dev/null
	wait
	cluster_down
	unload_module
	check "$desc_" kernel_log_clean
}

# Waits until file $1 has at least $2 lines, up to $3 hundredths of a second (default 3000);
# fails when it does not.
wait_lines() { # file lines [hundredths]
	t_=0
	while [ "$(wc -l <"$1" 2>/dev/null || echo 0)" -lt "$2" ]; do
		[ $t_ -lt "${3:-3000}" ] || return 1
		sleep 0.01
		t_=$((t_ + 1))
	done
}

# Milliseconds since boot (10 ms resolution), for timing a step.
uptime_ms() {
	awk '{ printf "%d", $1 * 1000 }' /proc/uptime
}

# The kernel's own YNL client (tools/net/ynl of the kernel source) driving the family from
# its YAML spec (Documentation/netlink/specs/permtcp.yaml); run_vm.sh puts both, Python 3
# and PyYAML in the guest.  JSON output.  The spec is validated on the host (scripts/
# check-spec.sh), not here: the guest has no jsonschema.
YNL_DIR=/usr/lib/ynl
YNL_SPEC=/usr/share/permtcp/permtcp.yaml
# $YNL for `in_peer $YNL ...` and `sh -c "$YNL ..."`, ynl for the script itself.
YNL="python3 $YNL_DIR/pyynl/cli.py --spec $YNL_SPEC --no-schema --output-json"
ynl() { $YNL "$@"; }

# check_json DESCRIPTION EXPR CMD...: CMD must exit 0 and print JSON for which the Python
# expression EXPR, over the parsed value `d`, is true (json and ipaddress imported).
check_json() {
	desc=$1 expr=$2
	shift 2
	if out=$("$@" 2>&1) && printf '%s' "$out" |
		python3 -c "import ipaddress, json, sys; d = json.load(sys.stdin); sys.exit(0 if ($expr) else 1)"; then
		ktap_result ok "$desc"
	else
		echo "# expected $expr from: $*"
		echo "$out" | sed 's/^/#   /'
		ktap_result fail "$desc"
	fi
}

# permtcpd on the cluster_net nodes: node 1 in owner, 2 in peer, 3 in peer2, on 10.0.0.N:7415
# over eth0, with 100 ms heartbeats (3 missed), a shared key, files in /tmp/pd. Each node
# declares 10.0.0.N and fd00::N, MAC 02:00:00:00:00:0M (M: its namespace's), ports 80-90.
PD=/tmp/pd
PD_NODES="1 2 3"
pd_ns() { case $1 in 1) echo owner ;; 2) echo peer ;; 3) echo peer2 ;; esac; }
pd_mac() { case $1 in 1) echo 02:00:00:00:00:01 ;; 2) echo 02:00:00:00:00:02 ;; 3) echo 02:00:00:00:00:04 ;; esac; }

# A fresh $PD (no log, socket or incarnation of an earlier script or case) with the shared
# key: 32 random bytes, mode 0600.
pd_key() {
	rm -rf $PD
	mkdir -p $PD
	echo "1 $(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >$PD/keys
	chmod 600 $PD/keys
}

# Writes node $1's configuration; $2: more top-level keys, $3: more [declaration] keys,
# $4: a [snoop] table's keys (none: snoop on eth0, the interface).
# Heartbeats missed before a verdict. On the sanitizer kernels (KASAN/KMEMLEAK, KCSAN) the
# guest under TCG can leave a daemon unscheduled for 400 ms: with 3 missed 100 ms heartbeats
# a live node was declared dead there (directive_steer.sh: node 3 took node 2 over), so
# those kernels get a 1 s dead time.
PD_MISSED=3
# The same kernels run the suite 3 to 5 times slower under TCG: what a test waits for
# (wait_until, client_wait, and the timeouts a script scales with it) is given SLOW times as
# long there. It waits longer; it checks the same outcome.
SLOW=1
if [ -e /sys/kernel/debug/kmemleak ] || [ -e /sys/kernel/debug/kcsan ]; then
	PD_MISSED=10
	SLOW=4
fi

pd_conf() { # node [top] [declaration] [snoop]
	n=$1
	{
		echo "cluster_id = 7"
		echo "node_id = $n"
		echo "incarnation_file = \"$PD/n$n.inc\""
		echo "key_file = \"$PD/keys\""
		echo "send_key_id = 1"
		echo "bind = [\"10.0.0.$n:7415\"]"
		echo "interface = \"eth0\""
		echo "status_socket = \"$PD/n$n.sock\""
		echo "control_socket = \"$PD/n$n.ctl\""
		echo "heartbeat_interval_ms = 100"
		echo "missed_heartbeats = $PD_MISSED"
		[ -z "$2" ] || printf '%b\n' "$2"
		for p in $PD_NODES; do
			[ "$p" = "$n" ] && continue
			printf '[[peer]]\nnode_id = %s\naddrs = ["10.0.0.%s:7415"]\n' "$p" "$p"
		done
		echo "[declaration]"
		echo "addrs = [\"10.0.0.$n\", \"fd00::$n\"]"
		echo "macs = [\"$(pd_mac "$n")\"]"
		echo "ports = [\"80-90\"]"
		[ -z "$3" ] || printf '%b\n' "$3"
		[ -z "$4" ] || printf '[snoop]\n%b\n' "$4"
	} >$PD/n$n.toml
}

# Starts node $1's daemon in its namespace (log in $PD/n$1.log); sets pd_pid.
pd_start() {
	/bin/ip netns exec "$(pd_ns "$1")" permtcpd --config $PD/n$1.toml --foreground \
		>>$PD/n$1.log 2>&1 &
	pd_pid=$!
	eval "pd_pid_$1=$pd_pid"
}

# Node $1's status (JSON, one key a line).
pd_status() { permtcpd --status --socket $PD/n$1.sock; }

# A number from node $1's status: the first line with "$2": (e.g. bad_tag, sent).
pd_count() { pd_status "$1" | grep "\"$2\":" | head -n1 | tr -dc 0-9; }

# A list from node $1's status, compact: pd_list 2 takeovers prints e.g. [3,1].
pd_list() { pd_status "$1" | tr -d ' \n' | grep -o "\"$2\":\[[0-9,]*\]" | cut -d: -f2; }

# Whether node $1's status lists node $3 in list $2.
pd_listed() { pd_list "$1" "$2" | grep -q "[[,]$3[],]"; }

# Waits up to $2 tenths of a second for command $3... to succeed: $2 tries 0.1 s apart, and
# at most twice that time in all (a try that takes seconds, as on a sanitizer kernel, does
# not stretch the wait to hours). Its variables are its own (wu_*): a command that is a
# shell function shares the caller's variables.
wait_until() { # what tenths command... (tenths times SLOW)
	wu_what=$1 wu_tries=$(($2 * SLOW))
	shift 2
	wu_end=$(($(uptime_ms) + wu_tries * 200))
	wu_n=0
	while ! "$@" >/dev/null 2>&1; do
		if [ $wu_n -ge "$wu_tries" ] || [ "$(uptime_ms)" -ge $wu_end ]; then
			echo "# timed out waiting for $wu_what ($wu_n tries); its last try says:"
			"$@" 2>&1 | tail -n 20 | sed 's/^/#   /'
			# What the guest was busy with (a loaded sanitizer kernel stretches every try).
			echo "#   load: $(cat /proc/loadavg)"
			top -b -n1 2>/dev/null | sed -n '5,12p' | sed 's/^/#   top: /'
			return 1
		fi
		sleep 0.1
		wu_n=$((wu_n + 1))
	done
}

# Node $1's kernel (permctl decl list in its namespace) holds the declarations of nodes $2...
kernel_decls() { # node id...
	ns_=$(pd_ns "$1")
	shift
	l_=$(/bin/ip netns exec "$ns_" permctl --json decl list) || return 1
	[ "$(echo "$l_" | grep -o '"node_id":[0-9]*' | wc -l)" = $# ] || return 1
	for i in "$@"; do echo "$l_" | grep -q "\"node_id\":$i," || return 1; done
}

# Every node's kernel holds the declarations of nodes 1, 2 and 3.
decls_123() { kernel_decls 1 1 2 3 && kernel_decls 2 1 2 3 && kernel_decls 3 1 2 3; }

# Namespace $1 mirrors a connection in state $2 within 10 s (its mirror is printed if not).
conn_seen() { # namespace state
	t=0
	while [ $t -lt 100 ]; do
		/bin/ip netns exec $1 permctl --json conns | grep -q "\"state\":\"$2\"" && return 0
		sleep 0.1
		t=$((t + 1))
	done
	/bin/ip netns exec $1 permctl conns | sed 's/^/# /'
	return 1
}

# Node 2's daemon sent a directive and the next peer's acknowledged it.
directive_acked() { [ "$(pd_count 2 acknowledged)" -ge 1 ]; }

# Counter $2 of `permctl stats` in namespace $1 is at least 1.
stat_set() { /bin/ip netns exec $1 permctl --json stats | grep -q "\"$2\":[1-9]"; }

# A bulk download of $3 bytes from the owner's port 80 that node 3's application (stderr in
# $1-app.err) waits to resume: the client starts it to $2:80 and pauses (pause file $1, see
# paused_client). Sets owner_pid, app_pid and client_pid.
download_for_node3() { # pause-file service-address bytes
	in_owner ptcp-testapp down-serve "[::]:80" "$3" &
	owner_pid=$!
	in_peer2 ptcp-testapp down-serve "[::]:80" "$3" --resume 2>"$1-app.err" &
	app_pid=$!
	sleep 0.5
	paused_client "$1" 100 ptcp-testapp down-client "$2:80" "$3" "$1"
}

# Prints what the client of download_for_node3 (pause file $1) read, nodes 2 and 3's
# daemons' takeover and directive lines, and node 3's application's.
download_logs() { # pause-file
	sed 's/^/# client: /' "$1.out"
	for n in 2 3; do
		grep -E "verdict|fenc|took over|assumed|TAKEOVER|directive" $PD/n$n.log | sed "s/^/# node $n: /"
	done
	sed 's/^/# node 3 app: /' "$1-app.err"
}

# Waits up to $1 tenths of a second for the client (client_pid) to end, kills it then;
# sets client_rc to its exit status.
client_wait() { # tenths (times SLOW)
	t_=0
	while kill -0 $client_pid 2>/dev/null && [ $t_ -lt $(($1 * SLOW)) ]; do
		sleep 0.1
		t_=$((t_ + 1))
	done
	kill -9 $client_pid 2>/dev/null
	wait $client_pid
	client_rc=$?
}
