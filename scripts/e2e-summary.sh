#!/usr/bin/env bash
# e2e-summary.sh passes `go test -v` output through and fails when a test
# failed or was skipped in CI (where everything a test needs is installed).
set -uo pipefail
out=$(mktemp)
tee "$out"
status=${PIPESTATUS[0]}
grep -q '^\(FAIL\|--- FAIL\)' "$out" && status=1
if [ "${CI:-}" = "true" ] && grep -q -- '--- SKIP' "$out"; then
	echo "e2e: tests were skipped in CI, where nothing may skip:"; grep -A1 -- '--- SKIP' "$out"; status=1
fi
rm -f "$out"
exit "$status"
