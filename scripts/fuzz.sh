#!/usr/bin/env bash
# fuzz.sh runs every `go test -fuzz` target in the module for $1 (default
# 30s) each, one at a time (go test fuzzes one target per run).
set -euo pipefail
cd "$(dirname "$0")/.."
time=${1:-30s}
status=0
while IFS= read -r line; do
	file=${line%%:*}
	name=$(sed -E 's/^.*func (Fuzz[A-Za-z0-9_]+).*/\1/' <<<"$line")
	pkg=./$(dirname "$file")
	echo "fuzz: $pkg $name ($time)"
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$time" "$pkg"; then
		status=1
	fi
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' internal cmd test 2>/dev/null | sed -E 's/^([^:]+):[0-9]+:/\1:/')
exit "$status"
