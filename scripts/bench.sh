#!/usr/bin/env bash
# bench.sh builds kappa and runs `kappa bench`: cold start, warm invoke,
# throughput, scale-out and density, each next to its baseline on this host
# (crun/runc run, podman run if installed, a bare Go HTTP echo server), and
# prints one table. Run as root from anywhere; extra arguments go to
# `kappa bench` (see `kappa bench --help`), e.g.:
#
#   scripts/bench.sh --density 1000
#   scripts/bench.sh --scenarios cold --cold 100 --profile-dir /tmp/prof
#   scripts/bench.sh --kappa /path/to/older/kappa   # measure another build
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$PATH:/usr/local/go/bin"
export GOFLAGS=-buildvcs=false
cd "$repo"
mkdir -p bin
go build -o bin/kappa ./cmd/kappa
exec bin/kappa bench --source "$repo" "$@"
