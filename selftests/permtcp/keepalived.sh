#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# keepalived mode (Documentation/cluster.rst, "keepalived mode"): Debian's keepalived runs in
# the owner's (node 1, priority 150) and both peers' namespaces (node 2: 100, node 3: 50), one
# VRRP instance VI_1 over the bridge holding the service address 10.0.0.10 (advert_int 1 s,
# SLOW s on a sanitizer kernel), its vrrp_notify_fifo read by the node's permtcpd, whose
# [keepalived] maps VI_1 to node 1.
# The owner crashes mid-session: its link is cut and every process of its namespace killed.
# - permtcp: keepalived makes node 2 MASTER and moves the address; node 2's permtcpd takes the
#   connection over without assuming the address and tells node 3, which takes over its
#   (empty) share; the client's session finishes every round with the right bytes. Node 1
#   comes back: its permtcpd, told by the peers that they took it over, sets its hold file
#   (created 0 at the first start; keepalived tracks it) to 1, and back to 0 once owner
#   recovery installed both peers' lists of the connections they serve (none left here);
#   its keepalived then takes the address back, and node 2, its instance leaving MASTER,
#   holds the address quietly (hand-back) for what it serves.
# - The race of keepalived's issue 2254: the same, with node 2's FIFO lines delayed 3 s on
#   their way to permtcpd. The client's request arrives at node 2 after keepalived moved the
#   address and before the takeover: node 2's stack resets it, the module drops the reset
#   (the connection is mirrored), the client sees none, and the session finishes right.
# - Plain keepalived (no permtcp on the peers): the client's connection is reset.
# Figures: the stall the client saw in each case.
. /selftests/lib.sh

ktap_plan 26

KA=/tmp/ka
VIP=10.0.0.10
mkdir -p $KA
# VRRP's advertisement interval, in seconds: 1, or SLOW on a sanitizer kernel, where the
# guest runs many times slower and a backup that misses three advertisements in a row
# would become MASTER while node 1 lives (a KASAN run saw keepalived flap and node 2 take
# node 1 over before the crash). The other waits of the script scale with it.
ADV=$SLOW

# keepalived's configuration for node $1 with priority $2, notifications to FIFO $3; with $4,
# VI_1 tracks that file (permtcpd's hold file: non-zero is a fault) through a script that
# exits with its value, every advertisement interval: keepalived's track_file needs inotify,
# which the test kernel lacks ("Unable to monitor track files"). The script may take two
# intervals: its default timeout, one interval, failed it over and over on KASAN (a fork
# and exec there can take more than a second), and the instance went from BACKUP to FAULT
# and back without ever becoming MASTER.
ka_conf() { # node priority fifo [hold-file]
	{
		printf 'global_defs {\n\trouter_id node%s\n\tvrrp_notify_fifo %s\n' "$1" "$3"
		printf '\tscript_user root\n}\n'
		if [ -n "$4" ]; then
			printf '#!/bin/sh\nexit "$(cat %s)"\n' "$4" >$KA/n$1.hold-check
			chmod 755 $KA/n$1.hold-check
			printf 'vrrp_script hold {\n\tscript %s\n\tinterval %s\n\ttimeout %s\n\tweight 0\n}\n' \
				$KA/n$1.hold-check "$ADV" $((2 * ADV))
		fi
		printf 'vrrp_instance VI_1 {\n\tstate BACKUP\n\tinterface eth0\n\tvirtual_router_id 51\n'
		printf '\tpriority %s\n\tadvert_int %s\n\tvirtual_ipaddress {\n\t\t%s/24 dev eth0\n\t}\n' "$2" "$ADV" "$VIP"
		[ -z "$4" ] || printf '\ttrack_script {\n\t\thold\n\t}\n'
		echo "}"
	} >$KA/n$1.conf
}

ka_start() { # node
	/bin/ip netns exec "$(pd_ns "$1")" keepalived --dont-fork --log-console --log-detail \
		--no-syslog --vrrp --use-file $KA/n$1.conf --pid $KA/n$1.pid \
		--vrrp_pid $KA/n$1.vrrp.pid >>$KA/n$1.log 2>&1 &
}

has_vip() { /bin/ip -n "$1" addr show dev eth0 | grep -q " $VIP/"; }
owner_has_vip() { has_vip owner; }
peer_has_vip() { has_vip peer; }
# Node 1 alone holds the VIP; the client's neighbour entry is flushed then, so that its
# session goes to node 1.
vip_only_home() {
	owner_has_vip && ! has_vip peer && ! has_vip peer2 &&
		/bin/ip -n client neigh flush all
}

# keepalived on node 1, then, once it holds the VIP, on the peers. Started together, a peer
# that hears no advertisement for three intervals (node 1's instance waits for its track
# script's first run) becomes MASTER for a moment, and its permtcpd takes node 1 over on
# keepalived's word (a CI run saw it: node 1's session was then never mirrored).
ka_start_all() {
	ka_start 1
	wait_until "the VIP on node 1" 100 owner_has_vip || return 1
	ka_start 2
	ka_start 3
	# Three advertisement intervals: a peer that missed node 1's would be MASTER by then.
	sleep $((4 * ADV))
	wait_until "the VIP on node 1 alone" 50 vip_only_home
}

# The owner's namespace dies: its link is cut first (nothing more leaves it), then every
# process in it is killed (keepalived, permtcpd, the server).
owner_dies() {
	/bin/ip link set vowner down
	for p in $(/bin/ip netns pids owner); do kill -9 "$p" 2>/dev/null; done
}

# permtcpd on the three nodes with [keepalived]; node 1 declares the VIP. $1: node 2's FIFO
# as permtcpd reads it (keepalived writes $KA/n2.fifo).
pd_up() { # node2-fifo
	pd_key
	for n in 1 2 3; do
		fifo=$KA/n$n.fifo
		[ $n = 2 ] && fifo=$1
		hold=
		[ $n = 1 ] && hold="\nhold_file = \"$KA/n1.hold\""
		pd_conf $n "[keepalived]\nfifo = \"$fifo\"$hold\ninstances = { VI_1 = 1 }"
	done
	sed -i "s|^addrs = \[\"10.0.0.1\", \"fd00::1\"\]|addrs = [\"$VIP\"]|" $PD/n1.toml
	# keepalived decides node 1's takeover: permtcpd's own verdicts matter only for a node
	# the loaded guest did not run for a while; a 1 s dead time (not 300 ms) spares those.
	sed -i "s/^missed_heartbeats = 3$/missed_heartbeats = 10/" $PD/n1.toml $PD/n2.toml $PD/n3.toml
	for n in 1 2 3; do pd_start $n; done
}

decls_123() { kernel_decls 1 1 2 3 && kernel_decls 2 1 2 3 && kernel_decls 3 1 2 3; }
mirrored() { in_peer permctl --json conns | grep -q '"ready":true'; }
rst_dropped() { in_peer permctl --json stats | sed 's/.*"rst_dropped":\([0-9]*\).*/\1/'; }

# Starts the owner's server and a paused 40-round session to the VIP (client_pid).
session() { # pause-file
	in_owner ptcp-testapp echo-serve "[::]:80" &
	sleep 0.5
	paused_client "$1" 100 ptcp-testapp echo-client "$VIP:80" 40 "$1"
}

client_result() { # description pause-file
	# At most 30 s (times SLOW): a session the takeover never reached is killed and fails.
	t_=0
	while kill -0 $client_pid 2>/dev/null && [ $t_ -lt $((300 * SLOW)) ]; do
		sleep 0.1
		t_=$((t_ + 1))
	done
	kill -9 $client_pid 2>/dev/null
	wait $client_pid
	rc_=$?
	sed 's/^/# client: /' "$2.out"
	[ $rc_ = 0 ] && ktap_result ok "$1" || ktap_result fail "$1"
	worst=$(sed -n 's/.*worst_round_ms=\([0-9]*\).*/\1/p' "$2.out")
}

# One case with permtcp. $1: "direct" (permtcpd reads keepalived's FIFO) or "delayed" (a relay
# passes node 2's lines on 3 s late).
permtcp_case() { # direct|delayed
	c=$1
	rm -rf $KA/* $PD
	mkdir -p $KA
	load_module
	PEER2=1 cluster_net
	ka_conf 1 150 $KA/n1.fifo $KA/n1.hold
	for n in 2 3; do ka_conf $n $((200 - 50 * n)) $KA/n$n.fifo; done
	if [ $c = delayed ]; then
		mkfifo $KA/n2.fifo $KA/n2.pd.fifo
		# Opened read-write: neither end sees end-of-file when the other restarts.
		sh -c "exec 3<>$KA/n2.fifo 4<>$KA/n2.pd.fifo
			while read -r l <&3; do sleep $((3 * ADV)); echo \"\$l\" >&4; done" &
		relay_pid=$!
		pd_up $KA/n2.pd.fifo
	else
		pd_up $KA/n2.fifo
	fi
	# keepalived starts once permtcpd made the hold file it tracks (cluster.rst).
	hold_0() { grep -qx 0 $KA/n1.hold; }
	check "$c: node 1's permtcpd creates its hold file, 0" wait_until "node 1's hold file" 100 hold_0
	check "$c: keepalived gives node 1 the address" ka_start_all
	check "$c: every kernel holds the three declarations" wait_until declarations 100 decls_123
	in_peer ptcp-testapp echo-serve "[::]:80" --resume 2>$KA/app2.err &
	session $KA/p
	check "$c: node 2 mirrors the session, ready" wait_until mirror 50 mirrored
	owner_dies
	t_crash=$(uptime_ms)
	if [ $c = delayed ]; then
		# The request goes out once keepalived moved the address, into the window before the
		# delayed takeover.
		check "$c: keepalived moves the address to node 2" wait_until "the VIP on node 2" 150 peer_has_vip
		t_vip=$(uptime_ms)
		touch $KA/p
		sleep $((3 * ADV / 2)).$((3 * ADV % 2 * 5))
		check "$c: node 2 has not taken over yet (its lines are delayed)" sh -c \
			". /selftests/lib.sh; pd_status 2 | tr -d ' \n' | grep -q '\"takeovers\":\[\]'"
	else
		touch $KA/p
		check "$c: keepalived moves the address to node 2" wait_until "the VIP on node 2" 150 peer_has_vip
		t_vip=$(uptime_ms)
	fi
	taken_12() { pd_listed 2 takeovers 1 && pd_listed 3 takeovers 1; }
	check "$c: node 2 takes node 1 over on keepalived's word and tells node 3, which does too" \
		wait_until "takeovers" 100 taken_12
	for n in 2 3; do
		pd_status $n >/dev/null 2>&1 || tail -n 20 $PD/n$n.log | sed "s/^/# node $n (its daemon is gone): /"
	done
	t_taken=$(uptime_ms)
	client_result "$c: the client's session finishes every round with the right bytes" $KA/p
	echo "# $c: stall ${worst:-?} ms (the client's slowest round); address on node 2" \
		"$((t_vip - t_crash)) ms after the crash, takeover seen $((t_taken - t_vip)) ms after that"
	grep -E "keepalived|taking over|took over|TAKEOVER|assumed" $PD/n2.log | sed "s/^/# node 2: /"
	grep -E "MASTER|BACKUP|FAULT" $KA/n2.log | head -n 5 | sed "s/^/# keepalived 2: /"
	check "$c: permtcp assumed no address (keepalived holds it)" sh -c \
		"! grep -q 'assumed' $PD/n2.log && grep -q 'keeping its addresses' $PD/n2.log"
	if [ $c = direct ]; then
		# Node 1 comes back: its permtcpd first (a newer incarnation), then its keepalived.
		/bin/ip link set vowner up
		pd_start 1
		# Held (1) when the peers say they took it over, released (0) once their recovery
		# lists are installed: the lines in this order, the file 0.
		released() {
			a=$(grep -n "took this node over" $PD/n1.log | head -n1 | cut -d: -f1)
			b=$(grep -n "keepalived may give this node its address back" $PD/n1.log | head -n1 | cut -d: -f1)
			[ -n "$a" ] && [ -n "$b" ] && [ "$a" -lt "$b" ] && grep -qx 0 $KA/n1.hold
		}
		check "$c: node 1, back, held down until the peers' recovery lists are installed, then released" \
			wait_until "node 1 released" 100 released
		ka_start 1
		sleep $((5 * ADV))
		# keepalived's log since its restart.
		restarted() { awk '/Starting Keepalived/ { n = NR } { l[NR] = $0 } END { for (i = n; i <= NR; i++) print l[i] }' $KA/n1.log; }
		restarted | grep -E "hold|Entering" | sed "s/^/# keepalived 1: /"
		grep -E "took this node over|hold file" $PD/n1.log | sed "s/^/# node 1: /"
		grep -E "left this node|handed back" $PD/n2.log | sed "s/^/# node 2: /"
		back_home() {
			/bin/ip -n owner addr show dev eth0 | grep -q " $VIP/" &&
				! /bin/ip -n peer addr show dev eth0 | grep -q " $VIP/" &&
				grep -q "left this node: the address is held quietly" $PD/n2.log
		}
		check "$c: node 1's keepalived takes the address back; node 2 hands it back (held quietly)" \
			wait_until "the address back on node 1" 100 back_home
	fi
	if [ $c = delayed ]; then
		echo "# $c: resets of node 2's stack dropped by the module: $(rst_dropped)"
		check "$c: node 2's stack reset the early request and the module dropped it" \
			[ "$(rst_dropped)" -ge 1 ]
		kill $relay_pid 2>/dev/null
	fi
	for ns in owner peer peer2; do
		for p in $(/bin/ip netns pids $ns); do kill -9 "$p" 2>/dev/null; done
	done
	wait
	cluster_down
	unload_module
	check "$c: kernel log clean" kernel_log_clean
}

permtcp_case direct
permtcp_case delayed

# Plain keepalived: no module, no permtcpd. The address moves and the connection is reset.
# (The control experiment: not in the short form.)
if quick; then
	ktap_skip 4 "plain keepalived" "short form (make check): make selftests runs it"
	rm -rf $KA $PD
	ktap_finish
fi
rm -rf $KA/*
PEER2=1 cluster_net
for n in 1 2 3; do ka_conf $n $((200 - 50 * n)) $KA/n$n.fifo; done
check "plain: keepalived gives node 1 the address" ka_start_all
in_peer ptcp-testapp echo-serve "[::]:80" 2>/dev/null &
session $KA/p
owner_dies
touch $KA/p
check "plain: keepalived moves the address to node 2" wait_until "the VIP on node 2" 150 peer_has_vip
wait $client_pid
rc=$?
sed 's/^/# client: /' $KA/p.out
check "plain: the client's connection is reset (exit $rc)" sh -c \
	"[ $rc != 0 ] && grep -q -i 'reset' $KA/p.out"
for p in $(/bin/ip netns pids peer) $(/bin/ip netns pids peer2); do kill -9 "$p" 2>/dev/null; done
wait
cluster_down
check "plain: kernel log clean" kernel_log_clean
# The daemons' files must not reach the next script's (permtcpd_basic.sh counts its log's lines).
rm -rf $KA $PD
ktap_finish
