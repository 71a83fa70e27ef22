#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The family driven by the kernel's own YNL client (tools/net/ynl) from permtcp's YAML spec:
# the kernel's operations, permissions and policies against the spec, a status query, a
# declaration round trip (YNL and permctl reading each other's), and the dump of a real
# mirrored connection.  Python is part of the test: without it the script fails.
. /selftests/lib.sh

ktap_plan 21

check "python3, PyYAML, YNL and the spec are in the guest" sh -c \
	"python3 -c 'import yaml' && [ -f $YNL_DIR/pyynl/cli.py ] && [ -f $YNL_SPEC ]"
load_module

check "the kernel's commands, handlers, permissions and policies match the spec" \
	python3 /selftests/ynl_kernel_check.py "$YNL_DIR" "$YNL_SPEC"
check_json "status-get (do): version 1, no declaration, capacity 64" \
	'd["version"] == 1 and d["decl-count"] == 0 and d["decl-max"] == 64 and d["netns-cookie"] > 0 and "local-node" not in d' \
	ynl --do status-get

# A declaration with every field, added through YNL: enum values by name, addresses and
# MACs as text (the spec's enums and display hints do the encoding).
decl7='{"node-id": 7, "local": true, "addr4": ["192.0.2.7"], "addr6": ["2001:db8::7"],
	"mac": ["02:00:00:00:00:07"], "ports": [{"lo": 80, "hi": 80}, {"lo": 8000, "hi": 8999}],
	"proto": 6, "failover": "smallest-id", "arp-policy": "fixed", "arp-node": 3,
	"app": ["svc7", "db"], "rx-policy": "drop", "mid-response": "reset"}'
check "decl-add (do) through YNL" ynl --do decl-add --json "{\"decl\": $decl7}"
check_json "decl-get (dump) through YNL returns exactly what was declared" \
	"d == [{'decl': json.loads('''$decl7''')}]" ynl --dump decl-get
expected='[{"node_id":7,"local":true,"addresses":["192.0.2.7","2001:db8::7"],"macs":["02:00:00:00:00:07"],"ports":["80","8000-8999"],"protocol":"tcp","failover":"smallest-id","arp":"node:3","applications":["svc7","db"],"rx_data":"drop","mid_response":"reset"}]'
check_json "permctl reads the YNL declaration back" "d == json.loads('$expected')" \
	permctl --json decl list
check "permctl adds a peer-list declaration" \
	permctl decl add --node 2 --addr 198.51.100.2 --ports 443@3,1 --failover peer-list
# The dump lists declarations by node id.
check_json "YNL reads permctl's declaration: nested ranges with ordered peers" \
	"d[0] == {'decl': {'node-id': 2, 'addr4': ['198.51.100.2'], 'ports': [{'lo': 443, 'hi': 443, 'peer': [3, 1]}], 'proto': 6, 'failover': 'peer-list', 'arp-policy': 'follow-failover', 'rx-policy': 'unanswered', 'mid-response': 'continue'}}" \
	ynl --dump decl-get
check_json "status-get counts two declarations and the local node" \
	'd["decl-count"] == 2 and d["local-node"] == 7' ynl --do status-get
check_fails "unprivileged decl-del through YNL is refused (uns-admin-perm)" 1 \
	"Operation not permitted" su -s /bin/sh nobody -c "$YNL --do decl-del --json '{\"node-id\": 2}'"
check_fails "overlapping ranges are refused with the kernel's message" 1 \
	"overlapping port ranges" ynl --do decl-add --json \
	'{"decl": {"node-id": 9, "addr4": ["192.0.2.9"], "ports": [{"lo": 80, "hi": 90}, {"lo": 85, "hi": 95}], "proto": 6}}'
check "decl-del (do) through YNL, both nodes" sh -c \
	"$YNL --do decl-del --json '{\"node-id\": 7}' && $YNL --do decl-del --json '{\"node-id\": 2}'"
check_json "decl-get (dump) is empty" 'd == []' ynl --dump decl-get
check_json "permctl agrees: no declaration" 'd == []' permctl --json decl list
check_fails "deleting again is ENOENT" 1 "no declaration for this node id: No such file or directory" \
	ynl --do decl-del --json '{"node-id": 7}'

# A real connection: the peer declares itself (permctl) and the owner (YNL) and snoops its
# eth0 through YNL; the client holds an echo session with the owner open halfway; conn-get
# shows it established.
cluster_net
in_peer permctl decl add --node 2 --addr 10.0.0.2 --addr fd00::2 --mac 02:00:00:00:00:02 \
	--ports 80-90 --local >/dev/null
ifindex=$(in_peer cat /sys/class/net/eth0/ifindex)
check "decl-add and snoop-start (do) through YNL in the peer's namespace" sh -c \
	"/bin/ip netns exec peer $YNL --do decl-add --json '{\"decl\": {\"node-id\": 1, \"addr4\": [\"10.0.0.1\"], \"addr6\": [\"fd00::1\"], \"mac\": [\"02:00:00:00:00:01\"], \"ports\": [{\"lo\": 80, \"hi\": 90}], \"proto\": 6}}' &&
	 /bin/ip netns exec peer $YNL --do snoop-start --json '{\"ifindex\": $ifindex, \"max-conns\": 64}'"
echo_session 10.0.0.1 /tmp/ynl-pause
in_peer $YNL --dump conn-get >/tmp/ynl-conns.json 2>&1
check_json "conn-get (dump) shows the client's established connection" \
	'len(d) == 1 and ipaddress.ip_address(d[0]["conn"]["owner-addr"]).ipv4_mapped == ipaddress.ip_address("10.0.0.1") and d[0]["conn"]["owner-port"] == 80 and ipaddress.ip_address(d[0]["conn"]["client-addr"]).ipv4_mapped == ipaddress.ip_address("10.0.0.100") and d[0]["conn"]["state"] == "established" and d[0]["conn"].get("ready") is True and d[0]["conn"]["owner"]["segs"] > 0 and d[0]["conn"]["client"]["bytes"] > 0' \
	cat /tmp/ynl-conns.json
cport=$(python3 -c 'import json; print(json.load(open("/tmp/ynl-conns.json"))[0]["conn"]["client-port"])' 2>/dev/null)
check "permctl shows the same connection" sh -c \
	"/bin/ip netns exec peer permctl --json conns | grep -q '\"client\":\"10.0.0.100:$cport\"'"
check_json "stats-get (do): one connection, from its SYN, on the snooped device" \
	"d['stats']['ifindex'] == $ifindex and d['stats']['conns'] == 1 and d['stats']['synced'] == 1" \
	in_peer $YNL --do stats-get
check "snoop-stop (do) through YNL" in_peer $YNL --do snoop-stop
touch /tmp/ynl-pause
case_done "cluster down, module unloaded, kernel log clean" "$owner_pid" "$client_pid"
ktap_finish
