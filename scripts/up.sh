#!/usr/bin/env bash
# up.sh starts `kappa server` in the background (unless one answers already),
# deploys the bundled example function and invokes it.
set -euo pipefail
kappa=$1 listen=$2 data=$3 log=$4
endpoint="http://$listen"

if ! curl -fsS "$endpoint/healthz" >/dev/null 2>&1; then
	echo "up: starting kappa server on $listen (data in $data, log in $log)"
	nohup "$kappa" server --listen "$listen" --data-dir "$data" >>"$log" 2>&1 &
	for _ in $(seq 100); do
		curl -fsS "$endpoint/healthz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	curl -fsS "$endpoint/healthz" >/dev/null || { echo "up: server did not start; see $log"; tail -20 "$log"; exit 1; }
fi

echo "up: building the example function (examples/hello)"
mkdir -p build/hello
CGO_ENABLED=0 go build -trimpath -ldflags=-s -o build/hello/bootstrap ./examples/hello
"$kappa" push build/hello "$listen/hello:v1" --entrypoint /bootstrap >/dev/null

echo "up: deploying function hello"
"$kappa" fn delete hello --endpoint "$endpoint" >/dev/null 2>&1 || true
"$kappa" fn create hello --image "$listen/hello:v1" --endpoint "$endpoint" --wait >/dev/null

echo "up: invoking hello"
"$kappa" invoke hello --endpoint "$endpoint" --payload '{"name":"Kappa user"}'
cat <<MSG

Kappa is running on $endpoint. Next:
  $kappa invoke hello --payload '{"name":"you"}' --tail
  aws lambda list-functions --endpoint-url $endpoint
  crane push <image.tar> $listen/myfn:v1    # or docker/podman/skopeo push
  $kappa fn create myfn --image $listen/myfn:v1 --wait
  make down                                  # stop the server
MSG
