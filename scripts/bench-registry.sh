#!/usr/bin/env bash
# bench-registry.sh measures Kappa's registry and image store beside
# baselines, all on loopback:
#   - push and pull throughput (MB/s) of random-content images (200 MB and
#     1 GB by default) through Kappa and through CNCF Distribution (Debian's
#     docker-registry, installed if missing);
#   - Create-to-Active time of a function from those images against
#     `crane pull` + `crane export` + untar of the same image;
#   - disk use of ten functions built on one 200 MB base image.
# It prints a table with ratios (> 1: Kappa is faster). Run as root.
#
# Usage: scripts/bench-registry.sh [SIZES_MB]   e.g. "200,1024" (default)
set -euo pipefail

sizes=${1:-200,1024}
repo=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH 2>/dev/null || echo /root/go)/bin"
export GOFLAGS=-buildvcs=false

if ! command -v docker-registry >/dev/null; then
	echo "bench: installing docker-registry (CNCF Distribution)"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-registry >/dev/null
fi
command -v crane >/dev/null || "$repo/scripts/deps.sh"

work=$(mktemp -d /tmp/kappa-bench-registry.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

cd "$repo"
go build -o "$work/kappa" ./cmd/kappa
go build -o "$work/registrybench" ./test/bench/registrybench

"$work/kappa" server --listen 127.0.0.1:0 --data-dir "$work/kappa-data" --run-dir "$work/kappa-run" \
	--log-level warn 2>"$work/kappa.log" &
pids+=($!)
kappa_addr=
for _ in $(seq 1 300); do
	kappa_addr=$(sed -n 's/.*listening on http:\/\/\([^ ]*\).*/\1/p' "$work/kappa.log" | head -n1)
	[ -n "$kappa_addr" ] && break
	sleep 0.1
done
[ -n "$kappa_addr" ] || { cat "$work/kappa.log"; exit 1; }

dist_port=$(free_port)
mkdir -p "$work/dist"
cat >"$work/dist.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/dist
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$dist_port
EOF
docker-registry serve "$work/dist.yml" >"$work/dist.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
	curl -fs "http://127.0.0.1:$dist_port/v2/" >/dev/null && break
	sleep 0.1
done

echo "bench: kappa on $kappa_addr, Distribution $(docker-registry --version 2>/dev/null | awk '{print $3}') on 127.0.0.1:$dist_port, sizes $sizes MB"
"$work/registrybench" -kappa "$kappa_addr" -distribution "127.0.0.1:$dist_port" \
	-data-dir "$work/kappa-data" -sizes "$sizes" -work "$work"
