#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Guest side of the multi-VM tier (selftests/cluster/run.sh): one VM is one cluster node.
# Its role and addresses come from the kernel command line (permtcp.role=client|owner|peer,
# permtcp.node=N, permtcp.ip4=A/L, permtcp.ip6=A/L, and the cluster address permtcp.cip4=A/L);
# /init runs `node.sh agent` in mode "cluster".
#
#   node.sh agent              set up eth0, then run the host's commands from /dev/ttyS1
#   node.sh stop               test programs and permtcpd killed, the module unloaded, this
#                              node's own addresses only (the host stops every node first,
#                              so that no daemon sees another go and declares it down)
#   node.sh start              the module loaded, permtcpd started with the configuration
#                              and key the host put into /etc/permtcpd (cluster nodes); it
#                              installs the declarations and snoops eth0; log in
#                              /tmp/t/permtcpd.log
#   node.sh status             permtcpd --status (JSON)
#   node.sh wait-ready N TENTHS   the daemon sees N nodes alive (quorum, lease), the kernel
#                              holds N declarations
#   node.sh wait-log RE TENTHS permtcpd's log has a line matching RE
#   node.sh count FIELD        a number from the daemon's status (the first FIELD)
#   node.sh wait-file F TENTHS wait for file F, up to TENTHS tenths of a second
#   node.sh wait-gone PID TENTHS  wait for process PID to end
#   node.sh log-clean          no warning, oops or lockdep report in the kernel log
#
# The agent's protocol: the host writes one line "ID COMMAND"; the agent runs COMMAND with
# sh -c (standard input /dev/null), writes its output, then a line "@@END ID STATUS @@".  It
# writes "@@READY ROLE" once, when it starts.  Commands that must outlive their line run in
# the background with their output in a file.

# Tenths of a second since boot: deadlines that hold however slowly a loaded host runs us.
tenths() { awk '{ printf "%d", $1 * 10 }' /proc/uptime; }

arg() { sed -n "s/.*permtcp\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
ROLE=$(arg role)
NODE=$(arg node)
MOD=/lib/modules/permtcp.ko

# permtcpd's configuration and key, put there by the host (selftests/cluster/run.sh): node
# N declares 10.0.0.N, fd00::N, MAC 02:00:00:00:00:0N and ports 80-90.
CONF=/etc/permtcpd/permtcpd.toml

own_addresses() {
	# The link-local address stays: a node serving connections of an address it holds on
	# its loopback (a handoff's peer) resolves the client's IPv6 address with it (the
	# kernel sends no neighbour solicitation from an address of another device).
	/bin/ip addr flush dev eth0 scope global
	if [ "$(arg managed)" = 1 ] || grep -q '^manage_addresses = true' "$CONF" 2>/dev/null; then
		# permtcpd takes the service addresses itself once it may (owner recovery); the
		# node keeps addresses of its own in the service subnet (10.0.0.1N, fd00::1N).
		/bin/ip addr add "10.0.0.1$NODE/24" dev eth0
		/bin/ip addr add "fd00::1$NODE/64" dev eth0 nodad
	else
		/bin/ip addr add "$(arg ip4)" dev eth0
		/bin/ip addr add "$(arg ip6)" dev eth0 nodad
	fi
	# The cluster address permtcpd uses (cluster nodes): never a service address.
	[ -z "$(arg cip4)" ] || /bin/ip addr add "$(arg cip4)" dev eth0
	/bin/ip neigh flush dev eth0
	# A failed owner's addresses held quietly after a takeover (loopback, and eth0's ARP
	# settings: Documentation/takeover.rst, "Serving without answering ARP").
	/bin/ip addr flush dev lo scope global
	echo 0 >/proc/sys/net/ipv4/conf/eth0/arp_ignore
	echo 0 >/proc/sys/net/ipv4/conf/eth0/arp_announce
}

stop() {
	killall -9 permtcpd ptcp-testapp permctl ping keepalived 2>/dev/null
	sleep 0.1
	rm -rf /tmp/t
	mkdir -p /tmp/t
	/bin/ip link set eth0 promisc off
	own_addresses
	[ "$ROLE" = client ] && return 0
	rmmod permtcp 2>/dev/null
	! grep -q '^permtcp ' /proc/modules
}

start() {
	[ "$ROLE" = client ] && return 0
	insmod "$MOD" || return 1
	[ -f "$CONF" ] || { echo "no $CONF"; return 1; }
	mkdir -p /var/lib/permtcpd /run/permtcpd
	permtcpd --config "$CONF" --foreground >>/tmp/t/permtcpd.log 2>&1 &
	echo $! >/tmp/t/permtcpd.pid
	# Up when its status socket answers.
	t=0
	until permtcpd --status --config "$CONF" >/dev/null 2>&1; do
		[ $t -lt 50 ] || { cat /tmp/t/permtcpd.log; return 1; }
		sleep 0.1
		t=$((t + 1))
	done
}

agent() {
	hostname "$ROLE${NODE:+$NODE}"
	/bin/ip link set eth0 up
	own_addresses
	stty -F /dev/ttyS1 raw -echo
	exec 3<>/dev/ttyS1
	echo "@@READY $ROLE" >&3
	while IFS= read -r line <&3; do
		id=${line%% *}
		cmd=${line#* }
		sh -c "$cmd" </dev/null >/tmp/agent.out 2>&1 3>&-
		rc=$?
		cat /tmp/agent.out >&3
		printf '\n@@END %s %s @@\n' "$id" "$rc" >&3
	done
}

case "$1" in
agent) agent ;;
stop) stop ;;
start) start ;;
status) permtcpd --status --config "$CONF" ;;
wait-file)
	t=0
	while [ ! -e "$2" ] && [ $t -lt "$3" ]; do sleep 0.1; t=$((t + 1)); done
	[ -e "$2" ]
	;;
wait-gone)
	t=0
	while kill -0 "$2" 2>/dev/null && [ $t -lt "$3" ]; do sleep 0.1; t=$((t + 1)); done
	! kill -0 "$2" 2>/dev/null
	;;
wait-ready)
	# This node's daemon sees $2 nodes alive, itself included, with quorum and its lease, and
	# its kernel holds $2 declarations; up to $3 tenths of a second.
	end=$(($(tenths) + $3))
	while :; do
		st=$(permtcpd --status --config "$CONF" 2>/dev/null | tr -d ' \n')
		d=$(permctl --json decl list 2>/dev/null | grep -o '"node_id":' | wc -l)
		case "$st" in
		*'"quorum":true'*'"lease":true'* | *'"lease":true'*'"quorum":true'*)
			[ "$(echo "$st" | grep -o '"state":"alive"' | wc -l)" = "$2" ] && [ "$d" = "$2" ] && break
			;;
		esac
		[ "$(tenths)" -lt "$end" ] || {
			echo "not ready: $st; $d declarations in the kernel"
			tail -n 20 /tmp/t/permtcpd.log
			exit 1
		}
		# Not faster: under TCG every program started here takes the daemon's CPU.
		sleep 0.5
	done
	;;
wait-log)
	# permtcpd's log has a line matching $2, within $3 tenths of a second.
	end=$(($(tenths) + $3))
	until grep -q "$2" /tmp/t/permtcpd.log; do
		[ "$(tenths)" -lt "$end" ] || { echo "no '$2' in the log:"; tail -n 20 /tmp/t/permtcpd.log; exit 1; }
		sleep 0.2
	done
	;;
count)
	# A number from the daemon's status: the first "$2": field.
	permtcpd --status --config "$CONF" | grep "\"$2\":" | head -n1 | tr -dc 0-9
	;;
log-clean)
	! dmesg | grep -E 'WARNING:|BUG:|Oops|Call Trace|refcount_t:|list_(add|del) corruption|general protection|possible (recursive|circular) locking|permtcp: .* failed'
	;;
*) echo "usage: node.sh agent|stop|start|status|wait-file F N|wait-gone PID N|log-clean" >&2; exit 2 ;;
esac
