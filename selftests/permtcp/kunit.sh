#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# KUnit: the module's Rust test suites run when it loads; report their results.
. /selftests/lib.sh

SUITES="permtcp_logic permtcp_snoop permtcp_takeover"
ktap_plan 7
check "module loads (runs its KUnit suites)" load_module
for suite in $SUITES; do
	results=/sys/kernel/debug/kunit/$suite/results
	if [ -r "$results" ]; then
		# Pass the suite's own KTAP through for the host runner to count.
		sed 's/^/# kunit: /' "$results"
		ktap_result ok "KUnit suite $suite reported"
		if grep -q "not ok" "$results" || ! grep -q "^ok .* $suite" "$results"; then
			ktap_result fail "KUnit suite $suite passed"
		else
			ktap_result ok "KUnit suite $suite passed"
		fi
	else
		ktap_result fail "KUnit suite $suite reported"
		ktap_result fail "KUnit suite $suite passed"
	fi
done
unload_module
ktap_finish
