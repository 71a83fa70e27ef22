#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Changing commands need CAP_NET_ADMIN over the namespace; reading does not.
. /selftests/lib.sh

ktap_plan 13
load_module
add_decl 1 >/dev/null
before=$(permctl --json decl list)
as_nobody() { su -s /bin/sh nobody -c "$*"; }

check_fails "unprivileged add refused" 1 "Operation not permitted: this command needs CAP_NET_ADMIN" \
	as_nobody ". /selftests/lib.sh; add_decl 2"
check_fails "unprivileged delete refused" 1 "Operation not permitted" \
	as_nobody "permctl decl del --node 1"
check_fails "unprivileged takeover refused" 1 "Operation not permitted" \
	as_nobody "permctl takeover --node 1 --no-assume"
check_fails "unprivileged fail-over directive refused" 1 "Operation not permitted" \
	as_nobody "permctl debug raw --cmd 12 08000200 01000000"
check "unprivileged list of taken-over connections allowed" as_nobody "permctl taken"
check "unprivileged list allowed" as_nobody "permctl decl list | grep -q '^node 1'"
check "unprivileged status allowed" as_nobody "permctl status"
[ "$(permctl --json decl list)" = "$before" ] && ktap_result ok "stored set unchanged" ||
	ktap_result fail "stored set unchanged"
check_fails "root of a child user namespace cannot change the initial namespace" 1 \
	"Operation not permitted" as_nobody "unshare -r sh -c '. /selftests/lib.sh; add_decl 3'"
check "root of a user namespace manages its own network namespace" \
	as_nobody "unshare -r -n sh -c '. /selftests/lib.sh; add_decl 3 && permctl decl list | grep -q \"^node 3\"'"
[ "$(permctl --json decl list)" = "$before" ] && ktap_result ok "initial namespace still unchanged" ||
	ktap_result fail "initial namespace still unchanged"
# A container's root (a user namespace of its own, mapped to root) snoops in its own network
# namespace within the default limits only: more would pin more kernel memory (issue 11,
# finding 4).
in_userns() { su -s /bin/sh nobody -c "unshare -r -n sh -c '/bin/ip link set lo up; $*'"; }
check_fails "a user namespace's root cannot raise the snooping limits" 1 \
	"limits above the defaults need a namespace of the initial user namespace" \
	in_userns "permctl snoop start --dev lo --max-conns 100000"
check "a user namespace's root snoops within the defaults" \
	in_userns "permctl snoop start --dev lo --max-conns 100 && permctl stats | grep -q ."
unload_module
ktap_finish
