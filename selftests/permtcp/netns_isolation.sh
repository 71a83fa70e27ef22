#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Each network namespace has its own declarations.
. /selftests/lib.sh

ktap_plan 7
load_module
ip netns add iso_a
ip netns add iso_b
A="/bin/ip netns exec iso_a"
B="/bin/ip netns exec iso_b"

check "add node 1 in namespace a" $A sh -c '. /selftests/lib.sh; add_decl 1'
check "namespace b sees no declaration" sh -c "$B permctl decl list | grep -q '^no declarations'"
check "the initial namespace sees no declaration" sh -c "permctl decl list | grep -q '^no declarations'"
check "the same node id is free in namespace b" $B sh -c '. /selftests/lib.sh; add_decl 1 --local'
ca=$($A permctl --json status | sed 's/.*"netns_cookie":\([0-9]*\).*/\1/')
cb=$($B permctl --json status | sed 's/.*"netns_cookie":\([0-9]*\).*/\1/')
[ -n "$ca" ] && [ "$ca" != "$cb" ] && ktap_result ok "replies come from different namespaces" ||
	ktap_result fail "replies come from different namespaces"
$A permctl decl del --node 1 >/dev/null
check "deleting in a leaves b untouched" sh -c "$B permctl --json status | grep -q '\"declarations\":1,.*\"local_node\":1'"
check_fails "b cannot delete what only a had" 1 "No such file" $B permctl decl del --node 7
ip netns del iso_a
ip netns del iso_b
unload_module
ktap_finish
