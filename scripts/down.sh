#!/usr/bin/env bash
# Stops the kappa server `make up` started (SIGTERM), and waits until it has
# exited: its drain lets running invocations finish, and a new `make up`
# must not start beside it. A second SIGTERM after 60 s stops the drain.
set -euo pipefail
bin="${1:-bin/kappa}"
pids=$(pgrep -f "^${bin} server" || true)
[[ -z "$pids" ]] && exit 0
kill -TERM $pids 2>/dev/null || true
for i in $(seq 1 1200); do
  alive=""
  for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
  [[ -z "$alive" ]] && exit 0
  if (( i == 600 )); then
    echo "down: still draining after 60 s; stopping now" >&2
    kill -TERM $alive 2>/dev/null || true
  fi
  sleep 0.1
done
echo "down: kappa server$alive did not exit" >&2
exit 1
