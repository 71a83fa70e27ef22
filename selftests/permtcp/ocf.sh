#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The Pacemaker resource agents (tools/ocf, installed as /usr/lib/ocf/resource.d/permtcp)
# without Pacemaker: each action run as Pacemaker's executor runs it (OCF_ROOT, OCF_RESKEY_*
# and __OCF_ACTION in the environment), in the nodes' namespaces.
# - ocf:permtcp:peer passes Debian's ocf-tester (meta-data against the RA API's DTD, every
#   action and its exit codes, repeated starts and stops) with the module loaded and unloaded
#   by the agent; started, it shows the kernel in place (declarations, snooping); the monitor
#   fails when a declaration disappears, and at depth 10 when no frame arrived since the last
#   monitor (the peer's link cut), not while frames arrive.
# - ocf:permtcp:owner passes ocf-tester at home (start = declare and serve: recovery is not
#   implemented); elsewhere, after the owner crashed, it refuses the takeover while the home
#   node is still a cluster member (a crm_node stand-in says so), then takes the connection
#   over: the client's session finishes every round with the right bytes, a second start
#   changes nothing, stop and monitor report it stopped.
. /selftests/lib.sh

ktap_plan 24

AGENTS=/usr/lib/ocf/resource.d/permtcp
export OCF_ROOT=/usr/lib/ocf
export HA_RSCTMP=/tmp/ocf-rsctmp
mkdir -p $HA_RSCTMP
DECLS=/tmp/ocf-decls
# Node 2's line names this machine (uname -n), so that the peer agent finds its id by name;
# node 1 is given its id by parameter.
cat >$DECLS <<EOF
# id name permctl decl add options
1 owner-node --addr 10.0.0.1 --addr fd00::1 --mac 02:00:00:00:00:01 --ports 80-90
2 $(uname -n) --addr 10.0.0.2 --addr fd00::2 --mac 02:00:00:00:00:02 --ports 80-90
EOF

# ra NS AGENT ACTION [NAME=VALUE...]: one action of an agent in namespace NS, with the
# parameters given; prints the agent's output, returns its exit code.
ra() {
	ns_=$1 agent_=$2 action_=$3
	shift 3
	env OCF_RESOURCE_INSTANCE="$agent_-$ns_" __OCF_ACTION="$action_" \
		$(for kv in "$@"; do echo "OCF_RESKEY_$kv"; done) \
		/bin/ip netns exec "$ns_" $AGENTS/"$agent_" "$action_"
}
PEER_ARGS="declarations=$DECLS device=eth0 module=$MOD"
# shellcheck disable=SC2086
peer_ra() { ra peer peer "$1" $PEER_ARGS; }
# shellcheck disable=SC2086
owner_peer_ra() { ra owner peer "$1" $PEER_ARGS node_id=1; }
OWNER_ARGS="node=1"
# shellcheck disable=SC2086
owner_ra() { ns_o=$1 act_o=$2; shift 2; ra "$ns_o" owner "$act_o" $OWNER_ARGS "$@"; }

# ocf_tester NS NAME AGENT NAME=VALUE...: Debian's ocf-tester in namespace NS; its report
# goes to the output.
ocf_tester() {
	ns_t=$1 name_t=$2 agent_t=$3
	shift 3
	opts_t=
	for kv in "$@"; do opts_t="$opts_t -o $kv"; done
	# shellcheck disable=SC2086
	/bin/ip netns exec "$ns_t" ocf-tester -n "$name_t" $opts_t "$AGENTS/$agent_t" >/tmp/ocf-tester.out 2>&1
	rc_t=$?
	sed 's/^/# ocf-tester: /' /tmp/ocf-tester.out
	[ $rc_t = 0 ] && grep -q "passed all tests" /tmp/ocf-tester.out
}

mod_unloaded() { ! grep -q "^permtcp " /proc/modules; }

ifindex_snooped() { # ns
	/bin/ip netns exec "$1" permctl --json stats | sed 's/.*"device_ifindex":\([0-9]*\).*/\1/'
}

peer_in_place() {
	l_=$(in_peer permctl --json decl list) &&
		echo "$l_" | grep -q '"node_id":2,"local":true' &&
		echo "$l_" | grep -q '"node_id":1,"local":false' &&
		[ "$(ifindex_snooped peer)" = "$(in_peer cat /sys/class/net/eth0/ifindex)" ]
}

cluster_net

# --- ocf:permtcp:peer
# The agent loads the module and unloads it at every stop (unload=true).
check "ocf-tester: ocf:permtcp:peer passes (module loaded and unloaded by the agent)" \
	ocf_tester peer peer peer declarations=$DECLS device=eth0 module=$MOD unload=true
check "after ocf-tester's last stop the module is unloaded" mod_unloaded

check_rc "peer start (its node id found by name)" 0 peer_ra start
check "peer started: both declarations (node 2 local), snooping on eth0" peer_in_place
check_rc "peer start again: nothing to do" 0 peer_ra start
check_rc "the owner node's peer start (node_id=1)" 0 owner_peer_ra start
check_rc "peer monitor: running" 0 peer_ra monitor

# Depth 10: frames must have arrived on eth0 since the last monitor (a recurring monitor:
# a probe, interval 0, does not look).
export OCF_CHECK_LEVEL=10 OCF_RESKEY_CRM_meta_interval=30000
peer_ra monitor >/dev/null 2>&1
in_client ping -c 3 -i 0.2 10.0.0.2 >/dev/null 2>&1
check_rc "peer monitor depth 10 with frames since the last one: running" 0 peer_ra monitor
/bin/ip link set vpeer down
sleep 0.3
peer_ra monitor >/dev/null 2>&1
in_client ping -c 3 -i 0.2 10.0.0.2 >/dev/null 2>&1
check_fails "peer monitor depth 10, peer's link cut: failed (no frame)" 1 "no frame arrived on eth0" \
	peer_ra monitor
# Runs in check_rc's subshell: the variable does not stay set.
peer_probe() { OCF_RESKEY_CRM_meta_interval=0 && peer_ra monitor; }
check_rc "a probe at depth 10, the link still cut, does not look: running" 0 peer_probe
/bin/ip link set vpeer up
unset OCF_CHECK_LEVEL OCF_RESKEY_CRM_meta_interval

in_peer permctl decl del --node 1 >/dev/null
check_fails "peer monitor with node 1's declaration deleted behind its back: failed" 1 \
	"partly in place" peer_ra monitor
check_rc "peer start repairs it" 0 peer_ra start
check "peer in place again" peer_in_place

# --- ocf:permtcp:owner at home (node 1 in the owner's namespace)
check "ocf-tester: ocf:permtcp:owner at home passes" ocf_tester owner owner-home owner node=1
check_fails "owner start elsewhere without node 3 declared: not configured" 6 \
	"not declared here" owner_ra peer start node=3

# --- ocf:permtcp:owner elsewhere: the owner crashes mid-session, the peer takes over
in_peer ptcp-testapp echo-serve "[::]:80" --resume &
peer_pid=$!
echo_session 10.0.0.1 /tmp/ocf-pause
crash_owner $owner_pid
# A crm_node stand-in: Pacemaker still lists the home node as a member.
mkdir -p /tmp/ocf-bin
printf '#!/bin/sh\necho "1 owner-node $(cat /tmp/ocf-member)"\necho "2 %s member"\n' "$(uname -n)" \
	>/tmp/ocf-bin/crm_node
chmod 755 /tmp/ocf-bin/crm_node
export PATH=/tmp/ocf-bin:$PATH
echo member >/tmp/ocf-member
check_fails "owner start elsewhere while the home node is a member: refused" 1 \
	"refusing to take a live owner" owner_ra peer start home_node=owner-node
check "the refused start took nothing over" sh -c \
	"/bin/ip netns exec peer permctl --json status | grep -q '\"failed_nodes\":\[\]'"
echo lost >/tmp/ocf-member
check_rc "owner start elsewhere after the home node was lost: takes over" 0 \
	owner_ra peer start home_node=owner-node
touch /tmp/ocf-pause
wait $client_pid
client_rc=$?
sed 's/^/# client: /' /tmp/ocf-pause.out
[ $client_rc = 0 ] && ktap_result ok "the client finished every round with the right bytes" ||
	ktap_result fail "the client finished every round with the right bytes"
check_rc "owner monitor elsewhere: running (node 1 taken over here)" 0 owner_ra peer monitor
check_rc "owner start again: nothing more to do" 0 owner_ra peer start
check_rc "owner stop" 0 owner_ra peer stop
check_rc "owner monitor after stop: not running" 7 owner_ra peer monitor

kill -9 $peer_pid 2>/dev/null
wait
cluster_down
unload_module
check "kernel log clean" kernel_log_clean
rm -rf $HA_RSCTMP /tmp/ocf-*
ktap_finish
