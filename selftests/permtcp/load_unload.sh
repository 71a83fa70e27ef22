#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Loading and unloading: plain, repeated, with declarations stored, with namespaces alive.
. /selftests/lib.sh

ktap_plan 12
check "load" load_module
check "family registered" permctl status
check "unload" unload_module
check_fails "family gone after unload" 3 "module is not loaded" permctl status

ok=1
for i in 1 2 3 4 5; do
	load_module && unload_module || ok=0
done
[ $ok = 1 ] && ktap_result ok "five load/unload cycles" || ktap_result fail "five load/unload cycles"

for ns in a b c; do ip netns add "lu_$ns"; done
check "load with three namespaces alive" load_module
ok=1
for ns in a b c; do
	ip netns exec "lu_$ns" sh -c '. /selftests/lib.sh; add_decl 1 && add_decl 2' || ok=0
done
add_decl 3 >/dev/null || ok=0
check "declarations stored in every namespace" sh -c \
	'for ns in lu_a lu_b lu_c; do /bin/ip netns exec $ns permctl --json status | grep -q "\"declarations\":2" || exit 1; done'
check "unload with declarations present and namespaces alive" unload_module
check "reload: namespaces start empty" sh -c \
	'insmod /lib/modules/permtcp.ko && /bin/ip netns exec lu_a permctl --json status | grep -q "\"declarations\":0"'
ip netns exec lu_b sh -c '. /selftests/lib.sh; add_decl 4' >/dev/null
check "namespace deleted while the module holds its state" ip netns del lu_b
check "unload after a namespace went away" unload_module
ip netns del lu_a
ip netns del lu_c
check "kernel log clean" kernel_log_clean
ktap_finish
