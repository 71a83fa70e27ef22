#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Guest side of the multi-VM tier (selftests/cluster/run.sh): one VM is one cluster node.
# Its role and addresses come from the kernel command line (permtcp.role=client|owner|peer,
# permtcp.node=N, permtcp.ip4=A/L, permtcp.ip6=A/L); /init runs `node.sh agent` in mode
# "cluster".
#
#   node.sh agent              set up eth0, then run the host's commands from /dev/ttyS1
#   node.sh reset              a fresh node: test programs killed, module reloaded, this
#                              node's own addresses only, declarations, snooping (peers)
#   node.sh wait-file F TENTHS wait for file F, up to TENTHS tenths of a second
#   node.sh wait-gone PID TENTHS  wait for process PID to end
#   node.sh log-clean          no warning, oops or lockdep report in the kernel log
#
# The agent's protocol: the host writes one line "ID COMMAND"; the agent runs COMMAND with
# sh -c (standard input /dev/null), writes its output, then a line "@@END ID STATUS @@".  It
# writes "@@READY ROLE" once, when it starts.  Commands that must outlive their line run in
# the background with their output in a file.

arg() { sed -n "s/.*permtcp\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
ROLE=$(arg role)
NODE=$(arg node)
MOD=/lib/modules/permtcp.ko

# Nodes 1 (the owner), 2 and 3 (its permanency peers): addresses and MACs by node id, the
# same as the host's runner gives the VMs.
decl() { # node
	echo "--node $1 --addr 10.0.0.$1 --addr fd00::$1 --mac 02:00:00:00:00:0$1 --ports 80-90"
}

own_addresses() {
	/bin/ip addr flush dev eth0
	/bin/ip addr add "$(arg ip4)" dev eth0
	/bin/ip addr add "$(arg ip6)" dev eth0 nodad
	/bin/ip neigh flush dev eth0
}

reset() {
	killall -9 ptcp-testapp permctl ping 2>/dev/null
	sleep 0.1
	rm -rf /tmp/t
	mkdir -p /tmp/t
	own_addresses
	[ "$ROLE" = client ] && return 0
	rmmod permtcp 2>/dev/null
	insmod "$MOD" || return 1
	for n in 1 2 3; do
		# shellcheck disable=SC2046 # a declaration is several arguments
		if [ "$n" = "$NODE" ]; then
			permctl decl add $(decl "$n") --local >/dev/null || return 1
		else
			permctl decl add $(decl "$n") >/dev/null || return 1
		fi
	done
	if [ "$ROLE" = peer ]; then
		permctl snoop start --dev eth0 >/dev/null || return 1
		permctl directives >/tmp/t/directives.log 2>&1 &
	fi
	return 0
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
reset) reset ;;
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
log-clean)
	! dmesg | grep -E 'WARNING:|BUG:|Oops|Call Trace|refcount_t:|list_(add|del) corruption|general protection|possible (recursive|circular) locking|permtcp: .* failed'
	;;
*) echo "usage: node.sh agent|reset|wait-file F N|wait-gone PID N|log-clean" >&2; exit 2 ;;
esac
