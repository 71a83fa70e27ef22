#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Ownership declarations pushed through permctl, read back in text and JSON, deleted.
. /selftests/lib.sh

ktap_plan 12
load_module

check "add a local declaration with every field" \
	permctl decl add --node 1 --local --addr 192.0.2.1 --addr 2001:db8::1 \
	--mac 02:00:00:00:00:01 --mac 02:00:00:00:01:01 --ports 80 --ports 8000-8999 \
	--proto tcp --failover smallest-id --arp smallest-id --app travel-query --app db --rx drop \
	--mid-response reset
check "add a peer-list declaration with a fixed ARP node" \
	permctl decl add --node 2 --addr 198.51.100.2 --ports 443@3,1 --ports 5000-5010@1 \
	--failover peer-list --arp node:3

expected='[{"node_id":1,"local":true,"addresses":["192.0.2.1","2001:db8::1"],"macs":["02:00:00:00:00:01","02:00:00:00:01:01"],"ports":["80","8000-8999"],"protocol":"tcp","failover":"smallest-id","arp":"smallest-id","applications":["travel-query","db"],"rx_data":"drop","mid_response":"reset"},{"node_id":2,"local":false,"addresses":["198.51.100.2"],"macs":[],"ports":["443@3,1","5000-5010@1"],"protocol":"tcp","failover":"peer-list","arp":"node:3","applications":[],"rx_data":"unanswered","mid_response":"continue"}]'
got=$(permctl --json decl list)
if [ "$got" = "$expected" ]; then
	ktap_result ok "JSON list returns exactly what was declared"
else
	echo "# expected: $expected"
	echo "# got:      $got"
	ktap_result fail "JSON list returns exactly what was declared"
fi

check "text list shows both nodes" sh -c \
	'permctl decl list | grep -q "^node 1 (local)" && permctl decl list | grep -q "^node 2$"'
check "text list shows the peer lists" sh -c 'permctl decl list | grep -q "443@3,1 5000-5010@1 (tcp)"'
check "status counts two declarations and the local node" sh -c \
	'permctl --json status | grep -q "\"declarations\":2,\"max_declarations\":64,\"local_node\":1"'
check "delete node 2" permctl decl del --node 2
check "status counts one declaration" sh -c 'permctl --json status | grep -q "\"declarations\":1,"'
check_fails "deleting it again is ENOENT" 1 "No such file or directory: no declaration for this node id" \
	permctl decl del --node 2

# Fill the table: node 1 plus 63 more, then one too many.
ok=1
n=2
while [ $n -le 64 ]; do
	add_decl $n >/dev/null || { ok=0; echo "# add_decl $n failed"; }
	n=$((n + 1))
done
[ $ok = 1 ] && ktap_result ok "table holds 64 declarations" || ktap_result fail "table holds 64 declarations"
check_fails "the 65th is refused with ENOSPC" 1 "No space left on device: declaration table full" \
	add_decl 65
check "dump returns all 64 across several messages" sh -c \
	'[ "$(permctl decl list | grep -c "^node ")" = 64 ]'
unload_module
ktap_finish
