#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# KUnit: the module's Rust test suites run when it loads; report their results.
. /selftests/lib.sh

ktap_plan 3
check "module loads (runs its KUnit suites)" load_module
results=/sys/kernel/debug/kunit/permtcp_logic/results
if [ -r "$results" ]; then
	# Pass the suite's own KTAP through for the host runner to count.
	sed 's/^/# kunit: /' "$results"
	ktap_result ok "KUnit suite permtcp_logic reported"
	if grep -q "not ok" "$results" || ! grep -q "^ok .* permtcp_logic" "$results"; then
		ktap_result fail "KUnit suite permtcp_logic passed"
	else
		ktap_result ok "KUnit suite permtcp_logic passed"
	fi
else
	ktap_result fail "KUnit suite permtcp_logic reported"
	ktap_result fail "KUnit suite permtcp_logic passed"
fi
unload_module
ktap_finish
