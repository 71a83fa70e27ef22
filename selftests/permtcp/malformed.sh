#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Bad declarations and malformed netlink attributes get a clear errno and extack message,
# and leave the stored set unchanged.
. /selftests/lib.sh

ktap_plan 24
load_module
add_decl 1 --local >/dev/null
before=$(permctl --json decl list)
EINVAL="Invalid argument"

# Semantic errors, through permctl.
check_fails "overlapping port ranges" 1 "$EINVAL: overlapping port ranges" \
	permctl decl add --node 2 --addr 10.0.0.2 --ports 10-20 --ports 15-30
check_fails "empty port range" 1 "$EINVAL: empty port range or port 0" \
	permctl decl add --node 2 --addr 10.0.0.2 --ports 20-10
check_fails "duplicate node id" 1 "File exists: a declaration for this node id exists" add_decl 1
check_fails "second local declaration" 1 "File exists: another declaration is already local" \
	permctl decl add --node 3 --local --addr 10.0.0.3 --ports 80
check_fails "address and ports owned by another node" 1 "Address already in use" \
	permctl decl add --node 4 --addr 192.0.2.1 --ports 8500
check_fails "unknown protocol" 1 "$EINVAL: unknown protocol" \
	permctl decl add --node 2 --addr 10.0.0.2 --ports 80 --proto 200
check_fails "UDP is not supported" 1 "Protocol not supported: only TCP is supported" \
	permctl decl add --node 2 --addr 10.0.0.2 --ports 80 --proto udp
check_fails "peer list without the peer-list policy" 1 "peer lists need the peer-list fail-over policy" \
	permctl decl add --node 2 --addr 10.0.0.2 --ports 80@3
check_fails "multicast address" 1 "$EINVAL: unspecified, broadcast or multicast IP address" \
	permctl decl add --node 2 --addr 224.0.0.9 --ports 80
check_fails "node id 0" 1 "$EINVAL: node id 0 is reserved" \
	permctl decl add --node 0 --addr 10.0.0.2 --ports 80

# Malformed attributes, sent raw (permctl debug raw --cmd N HEX). Little-endian headers.
raw() { permctl debug raw "$@"; }
check_fails "truncated attribute inside the declaration" 1 "$EINVAL: malformed attribute length" \
	raw --cmd 1 0c000180 10000100 01000000
check_fails "unknown attribute inside the declaration" 1 "$EINVAL: unknown declaration attribute" \
	raw --cmd 1 0c000180 08001e00 01000000
check_fails "declaration without NLA_F_NESTED" 1 "$EINVAL" \
	raw --cmd 1 0c000100 08000100 01000000
check_fails "unknown top-level attribute" 1 "$EINVAL" raw --cmd 1 08000900 01000000
check_fails "node id of the wrong size" 1 "$EINVAL" raw --cmd 2 06000200 01000000
check_fails "attribute shorter than its header" 1 "$EINVAL" raw --cmd 1 02000100
check_fails "add without a declaration" 1 "$EINVAL: request carries no declaration" raw --cmd 1
check_fails "attributes on a status request" 1 "$EINVAL" raw --cmd 4 08000200 01000000
check_fails "unknown command" 1 "Operation not supported" raw --cmd 99
check_fails "parking time above one hour" 1 "out of range" \
	raw --cmd 10 08000200 02000000 08001b00 81ee3600
check_fails "fail-over directive without its connection" 1 \
	"$EINVAL: a directive needs the node, both addresses and both ports" \
	raw --cmd 12 08000200 01000000
check_fails "fail-over directive with a short address" 1 "attribute size out of range" \
	raw --cmd 12 08000200 01000000 08000d00 0a000001
check_fails "snoop start keeping more than 8 MiB" 1 "$EINVAL: at most 8 MiB of received data can be kept" \
	raw --cmd 5 08000800 01000000 08001e00 01008000

after=$(permctl --json decl list)
if [ "$after" = "$before" ]; then
	ktap_result ok "stored set unchanged by every refused request"
else
	echo "# before: $before"
	echo "# after:  $after"
	ktap_result fail "stored set unchanged by every refused request"
fi
unload_module
ktap_finish
