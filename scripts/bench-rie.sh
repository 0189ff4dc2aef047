#!/usr/bin/env bash
# bench-rie.sh — `kappa rie` side by side with the real aws-lambda-rie.
#
# Both emulators run the same aws-lambda-go echo bootstrap
# (internal/runtimeapi/testdata/echo) on loopback ports. The script measures
# sequential invoke latency (p50, p99) of each, and the throughput of
# `kappa rie` at concurrency 8 (aws-lambda-rie serves one invocation at a
# time, so it has no such figure), and prints a table with the ratios.
#
# aws-lambda-rie comes from PATH, or is installed with
#   go install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@latest
# (RIE_VERSION overrides "latest"); without it only kappa rie is measured.
#
# Knobs (environment): N sequential invocations (2000) after WARMUP (200);
# CONC workers (8) for DURATION seconds (10) in the throughput run.
set -euo pipefail

N=${N:-2000}
WARMUP=${WARMUP:-200}
CONC=${CONC:-8}
DURATION=${DURATION:-10}
RIE_VERSION=${RIE_VERSION:-latest}

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]:-}"; do
		[ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

echo "building kappa, the echo bootstrap and the client…" >&2
(cd "$root" && CGO_ENABLED=0 go build -o "$work/kappa" ./cmd/kappa)
(cd "$root" && CGO_ENABLED=0 go build -o "$work/echo" ./internal/runtimeapi/testdata/echo)

# The load generator: a standalone program (standard library only).
mkdir -p "$work/client"
cat >"$work/client/go.mod" <<'EOF'
module benchclient

go 1.22
EOF
cat >"$work/client/main.go" <<'EOF'
// Command benchclient posts invocations to an emulator and prints
// "p50_us p99_us requests_per_second".
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "", "invoke URL")
	n := flag.Int("n", 1000, "sequential invocations (concurrency 1)")
	warmup := flag.Int("warmup", 100, "invocations not counted")
	conc := flag.Int("c", 1, "workers")
	dur := flag.Duration("d", 0, "with -c: run for this long")
	flag.Parse()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	body := []byte(`{"op":"echo","data":{"hello":"world"}}`)
	one := func() time.Duration {
		start := time.Now()
		resp, err := client.Post(*url, "application/json", bytes.NewReader(body))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			fmt.Fprintln(os.Stderr, "status", resp.StatusCode)
			os.Exit(1)
		}
		return time.Since(start)
	}
	for range *warmup {
		one()
	}
	var lat []time.Duration
	var mu sync.Mutex
	start := time.Now()
	if *dur > 0 {
		var wg sync.WaitGroup
		stop := start.Add(*dur)
		for range *conc {
			wg.Go(func() {
				var mine []time.Duration
				for time.Now().Before(stop) {
					mine = append(mine, one())
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
		}
		wg.Wait()
	} else {
		for range *n {
			lat = append(lat, one())
		}
	}
	elapsed := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) int64 { return lat[int(float64(len(lat)-1)*p)].Microseconds() }
	fmt.Printf("%d %d %.0f\n", pct(0.50), pct(0.99), float64(len(lat))/elapsed.Seconds())
}
EOF
(cd "$work/client" && GOFLAGS= go build -o "$work/benchclient" .)

rie=""
if command -v aws-lambda-rie >/dev/null 2>&1 && ! aws-lambda-rie --help 2>&1 | grep -q "kappa"; then
	rie=$(command -v aws-lambda-rie)
else
	echo "installing aws-lambda-rie@$RIE_VERSION…" >&2
	if GOBIN="$work/bin" GOFLAGS= go install "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$RIE_VERSION" >"$work/rie-install.log" 2>&1; then
		rie="$work/bin/aws-lambda-rie"
	else
		echo "aws-lambda-rie is not installable here (see below); measuring kappa rie only" >&2
		tail -5 "$work/rie-install.log" >&2
	fi
fi

# start NAME LISTEN_PORT CMD...: runs an emulator, waits until it answers.
start() {
	local name=$1 port=$2
	shift 2
	mkdir -p "$work/run-$name"
	(cd "$work/run-$name" && exec "$@" >"$work/$name.out" 2>&1) &
	pids+=($!)
	for _ in $(seq 1 200); do
		if curl -s -o /dev/null -XPOST "http://127.0.0.1:$port/2015-03-31/functions/function/invocations" \
			-d '{"op":"echo","data":0}'; then
			return 0
		fi
		sleep 0.05
	done
	echo "$name does not answer; its output:" >&2
	cat "$work/$name.out" >&2
	exit 1
}

url() { echo "http://127.0.0.1:$1/2015-03-31/functions/function/invocations"; }

start kappa 19180 "$work/kappa" rie --max-concurrency "$CONC" --extensions-dir "$work/none" \
	--runtime-api-address 127.0.0.1:19101 --runtime-interface-emulator-address 127.0.0.1:19180 "$work/echo"
read -r k50 k99 _ < <("$work/benchclient" -url "$(url 19180)" -n "$N" -warmup "$WARMUP")
read -r _ kt99 ktput < <("$work/benchclient" -url "$(url 19180)" -c "$CONC" -d "${DURATION}s" -warmup 0)

r50=- r99=-
if [ -n "$rie" ]; then
	start rie 19280 "$rie" --runtime-api-address 127.0.0.1:19201 \
		--runtime-interface-emulator-address 127.0.0.1:19280 "$work/echo"
	read -r r50 r99 _ < <("$work/benchclient" -url "$(url 19280)" -n "$N" -warmup "$WARMUP")
fi

ratio() { if [ "$2" = "-" ]; then echo "-"; else awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; fi; }
us() { if [ "$1" = "-" ]; then echo "-"; else awk -v a="$1" 'BEGIN { printf "%.3f ms", a / 1000 }'; fi; }

printf '\nsequential invoke latency, %d invocations after %d warm-up, echo bootstrap (aws-lambda-go)\n' "$N" "$WARMUP"
printf '%-22s %14s %14s %16s\n' "metric" "kappa rie" "aws-lambda-rie" "kappa / rie"
printf '%-22s %14s %14s %16s\n' "p50" "$(us "$k50")" "$(us "$r50")" "$(ratio "$k50" "$r50")"
printf '%-22s %14s %14s %16s\n' "p99" "$(us "$k99")" "$(us "$r99")" "$(ratio "$k99" "$r99")"
printf '\nkappa rie at concurrency %d for %ss (--max-concurrency %d)\n' "$CONC" "$DURATION" "$CONC"
printf '%-22s %14s %14s\n' "throughput" "${ktput} req/s" "(rie: 1 at a time)"
printf '%-22s %14s\n' "p99 latency" "$(us "$kt99")"
