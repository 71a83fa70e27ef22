#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Owner recovery, kernel side (Documentation/design.rst, "Owner recovery"): node 1 owns the
# service and crashes during a bulk download; node 2 takes the connection over. Node 1 comes
# back (a new network namespace: a rebooted kernel) and takes its address back: node 2 keeps
# it quietly (permctl hand-back: loopback) and node 1 announces it, so the client sends to
# node 1's MAC again. node 2's owner-recovery directive (what permctl served lists there,
# given to node 1's kernel with permctl recovery; permtcpd does not carry it yet) tells node
# 1's kernel that node 2 serves the connection: node 1 drops its stack's resets of it and
# refuses a SYN that would reuse it, node 2 takes its frames off the link, and the client's
# download completes with every byte right while its new connections go to node 1. An empty
# directive ends it. Refused directives: no snooping, an unknown peer, a connection of
# another node. IPv4 and IPv6.
. /selftests/lib.sh

ktap_plan 32
BYTES=16000000
D=/tmp/or

# Node 1 reboots: its namespace (and its kernel state) is gone, a new one is attached to the
# bridge with the same MAC and cluster address; the service address comes later.
owner_reboot() {
	/bin/ip link del vowner 2>/dev/null
	/bin/ip netns del owner
	/bin/ip netns add owner
	/bin/ip link add vowner type veth peer name eth0 netns owner
	br_port vowner
	/bin/ip -n owner link set lo up
	/bin/ip -n owner link set eth0 address 02:00:00:00:00:01 up
	/bin/ip -n owner addr add 10.0.0.11/24 dev eth0
	in_owner sysctl -qw net.ipv6.conf.eth0.ndisc_notify=1
	in_owner permctl decl add $OWNER_DECL --local >/dev/null &&
		in_owner permctl decl add $PEER_DECL >/dev/null
}

# Node 2 hands the address back (permctl hand-back: it keeps it quietly on its loopback, as
# it still serves the connection, and answers no ARP for it); node 1 takes it and announces
# it (typed here: gratuitous ARP; IPv6: the unsolicited neighbour advertisement after
# duplicate address detection, ndisc_notify).
address_back() { # family address
	in_peer permctl hand-back --node 1 | sed 's/^/# node 2: /'
	/bin/ip -n peer addr show dev lo | grep -q " $2/" &&
		! /bin/ip -n peer addr show dev eth0 | grep -q " $2/" || return 1
	if [ $1 = 4 ]; then
		/bin/ip -n owner addr add $2/24 dev eth0
		in_owner arping -U -c 2 -I eth0 $2 >/dev/null
	else
		/bin/ip -n owner addr add $2/64 dev eth0
	fi
}

client_sends_to_owner() { /bin/ip -n client neigh show "$1" | grep -q "lladdr 02:00:00:00:00:01"; }

# The owner's stats counter $1 equals $2.
owner_stat() { in_owner permctl --json stats | grep -q "\"$1\":$2[,}]"; }

# node 2's empty directive: node 1 follows nothing any more.
clear_handed() { in_owner permctl recovery --node 2 >/dev/null && owner_stat handed 0; }

# The client's port of its connection to the service (ss), for the directive.
client_port() {
	in_client ss -Htn state established "( dport = :80 )" | awk '{ print $3 }' |
		sed 's/.*://' | head -n1
}

recovery_case() { # family service-address address peer-address
	fam=$1 vip=$2 addr=$3
	load_module
	cluster_up || return 1
	in_owner ptcp-testapp down-serve "[::]:80" $BYTES &
	owner_pid=$!
	in_peer ptcp-testapp down-serve "[::]:80" $BYTES --resume 2>$D-app.err &
	app_pid=$!
	sleep 0.5
	paused_client $D 100 ptcp-testapp down-client "$vip:80" $BYTES $D
	conn_seen peer ESTAB >/dev/null
	port=$(client_port)
	crash_owner $owner_pid
	check "IPv$fam: node 2 takes the connection over" sh -c \
		"/bin/ip netns exec peer permctl --json takeover --node 1 | grep -q '\"taken\":1'"
	owner_reboot
	check "IPv$fam: without snooping node 1 refuses a recovery directive" check_fails_quiet \
		in_owner permctl recovery --node 2 --conn "$vip:80,$4:$port"
	in_owner permctl snoop start --dev eth0 >/dev/null
	check "IPv$fam: a directive from an undeclared node is refused" check_fails_quiet \
		in_owner permctl recovery --node 9 --conn "$vip:80,$4:$port"
	check "IPv$fam: a directive for another node's connection is refused" check_fails_quiet \
		in_owner permctl recovery --node 2 --conn "$5:80,$4:$port"
	served=$(in_peer permctl served --node 1)
	echo "# node 2 serves: $served"
	check "IPv$fam: node 2 lists the connection it serves of node 1" [ "$served" = "$vip:80,$4:$port" ]
	check "IPv$fam: node 1 takes node 2's recovery directive" \
		in_owner permctl recovery --node 2 --conn "$served"
	check "IPv$fam: node 1 follows one handed-back connection" owner_stat handed 1
	check "IPv$fam: node 2 hands the address back, keeping it quietly" address_back $fam $addr
	in_owner ptcp-testapp echo-serve "[::]:80" &
	echo_pid=$!
	check "IPv$fam: the client sends to node 1's MAC again" \
		wait_until "the announcement" 50 client_sends_to_owner "$addr"
	# A SYN from the client's port would open a second connection on node 1.
	in_client ptcp-testapp syn eth0 02:00:00:00:00:01 "$4:$port" "$vip:80" good
	check "IPv$fam: node 1 refused a SYN reusing the connection" \
		refused_or_diag
	touch $D
	client_wait 600
	sed 's/^/# client: /' $D.out
	sed 's/^/# node 2 app: /' $D-app.err
	for ns in owner peer; do
		echo "# $ns stats: $(/bin/ip netns exec $ns permctl --json stats |
			grep -o '"rst_dropped":[0-9]*,"steered":[0-9]*,"handed":[0-9]*,"syn_refused":[0-9]*')"
	done
	want=$(ptcp-testapp stream-sum $BYTES)
	if [ $client_rc = 0 ] && grep -q "$want" $D.out; then
		ktap_result ok "IPv$fam: the client read every byte right from node 2"
	else
		recovery_diag
		ktap_result fail "IPv$fam: the client read every byte right from node 2"
	fi
	check "IPv$fam: node 1 dropped its stack's resets of it" stat_set owner rst_dropped
	check "IPv$fam: node 2 took its frames for node 1's MAC" stat_set peer steered
	# node 2's application serves downloads, node 1's echoes: an echo session is node 1's.
	touch $D.go
	check "IPv$fam: a new connection goes to node 1" sh -c \
		"/bin/ip netns exec client ptcp-testapp echo-client $vip:80 4 $D.go | grep -q '^ok'"
	check "IPv$fam: an empty directive ends the handed-back list" clear_handed
	case_done "IPv$fam: kernel log clean" $app_pid $echo_pid
}

# What each node made of the connection, when a check failed (a rare failure in CI left
# too little to explain it): node 2's sockets on port 80 and its records, where the threads
# of node 2's processes wait, the nodes' counters, and the TCP counters of resets and aborts
# in each namespace.
recovery_diag() {
	echo "# diagnostics:"
	{
		echo "node 2 sockets:"
		in_peer ss -tanoi "( sport = :80 )"
		echo "node 2 taken:"
		in_peer permctl --json taken
		echo "node 2 threads:"
		for p in $(/bin/ip netns pids peer); do
			for t in /proc/"$p"/task/*; do
				echo "$t $(cat "$t"/comm 2>/dev/null) $(cat "$t"/wchan 2>/dev/null)"
			done
		done
		for ns in owner peer; do
			echo "$ns stats: $(/bin/ip netns exec $ns permctl --json stats)"
		done
		for ns in owner peer client; do
			echo "$ns TCP: $(/bin/ip netns exec $ns cat /proc/net/netstat /proc/net/snmp |
				awk '/^(TcpExt|Tcp):/ { if (!h[$1]++) { split($0, n); next }
				for (i = 2; i <= NF; i++) if ($i != 0 && n[i] ~ /Abort|Reset|Rst|Listen|Estab/)
				printf "%s=%s ", n[i], $i }')"
		done
	} 2>&1 | sed 's/^/#   /'
	return 1
}

# node 1 counts the refused SYN, or the diagnostics say what the nodes made of it.
refused_or_diag() { wait_until "the refusal" 30 owner_stat syn_refused 1 || recovery_diag; }

# Succeeds when the command fails, without its error in the output.
check_fails_quiet() { ! "$@" >/dev/null 2>&1; }

recovery_case 4 10.0.0.1 10.0.0.1 10.0.0.100 10.0.0.2
family_part 6 0 16 "IPv6 recovery" && recovery_case 6 "[fd00::1]" fd00::1 "[fd00::100]" "[fd00::2]"
ktap_finish
