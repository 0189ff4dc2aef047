#!/usr/bin/env bash
# conformance.sh runs the OCI distribution-spec conformance suite against a
# live `kappa server` and fails on any failure.
#
# The suite is built from a pinned version of its Go module in a temporary
# module outside this repository (so Kappa's go.mod never sees it), with
# every API and data option enabled (OCI_VERSION=dev turns on upload cancel,
# digest headers and tag parameters) except sparse manifests: the spec lets a
# registry refuse a manifest whose blobs it lacks (MANIFEST_BLOB_UNKNOWN), and
# Kappa does, because every image in it must be deployable.
#
# It runs twice, on a fresh server and data dir each time: anonymously, and
# with registry credentials configured, so that every request of the suite
# goes through the Docker token flow.
#
# Usage: scripts/conformance.sh [KAPPA_BINARY]   (as root: the server starts
# its sandbox runtime). Results land in $CONFORMANCE_RESULTS (default: a
# temporary directory, printed at the end and kept when a run fails).
set -euo pipefail

SUITE_MODULE=github.com/opencontainers/distribution-spec/conformance
SUITE_VERSION=${CONFORMANCE_VERSION:-v0.0.0-20260831232431-97274622c111}

repo=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$PATH:/usr/local/go/bin"
export GOFLAGS=-buildvcs=false

work=$(mktemp -d /tmp/kappa-conformance.XXXXXX)
results=${CONFORMANCE_RESULTS:-$work/results}
server_pid=
failed=0

cleanup() {
	stop_server
	if ((failed)); then
		echo "conformance: work directory kept: $work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT

stop_server() {
	if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
		kill -TERM "$server_pid"
		wait "$server_pid" 2>/dev/null || true
	fi
	server_pid=
}

# start_server NAME [ARGS...] starts kappa on a free loopback port and sets
# $addr to host:port.
start_server() {
	local name=$1
	shift
	local log=$work/$name.log
	"$kappa" server --listen 127.0.0.1:0 --data-dir "$work/$name/data" --run-dir "$work/$name/run" \
		--log-level warn "$@" 2>"$log" &
	server_pid=$!
	addr=
	for _ in $(seq 1 300); do
		addr=$(sed -n 's/.*listening on http:\/\/\([^ ]*\).*/\1/p' "$log" | head -n1)
		[ -n "$addr" ] && return 0
		if ! kill -0 "$server_pid" 2>/dev/null; then
			echo "conformance: kappa server exited:" >&2
			cat "$log" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "conformance: kappa server did not start in 30s" >&2
	cat "$log" >&2
	return 1
}

# summary_count LABEL FILE prints the count the suite's summary gives LABEL.
summary_count() { sed -n "s/^  $1\.*: *\([0-9]*\)$/\1/p" "$2" | head -n1; }

# run_suite NAME [USER PASSWORD] runs the suite against $addr and checks its
# summary: no failure, no error, nothing skipped as unsupported, and every
# case passed.
run_suite() {
	local name=$1 user=${2:-} password=${3:-}
	local out=$results/$name
	mkdir -p "$out"
	(
		cd "$out"
		export OCI_USERNAME=$user OCI_PASSWORD=$password
		export OCI_REGISTRY=$addr OCI_TLS=disabled OCI_VERSION=dev OCI_LOG=warn OCI_RESULTS_DIR=$out
		export OCI_REPO1=conformance/repo1 OCI_REPO2=conformance/repo2
		export OCI_API_PULL=true OCI_API_PUSH=true OCI_API_REFERRER=true
		export OCI_API_BLOBS_ATOMIC=true OCI_API_BLOBS_DELETE=true OCI_API_BLOBS_DIGEST_HEADER=true
		export OCI_API_BLOBS_MOUNT_ANONYMOUS=true OCI_API_BLOBS_UPLOAD_CANCEL=true
		export OCI_API_MANIFESTS_ATOMIC=true OCI_API_MANIFESTS_DELETE=true
		export OCI_API_MANIFESTS_DIGEST_HEADER=true OCI_API_MANIFESTS_TAG_PARAM=true
		export OCI_API_TAGS_ATOMIC=true OCI_API_TAGS_DELETE=true OCI_API_TAGS_LIST=true
		export OCI_DATA_IMAGE=true OCI_DATA_INDEX=true OCI_DATA_INDEX_LIST=true OCI_DATA_SPARSE=false
		export OCI_DATA_ARTIFACT=true OCI_DATA_SUBJECT=true OCI_DATA_SUBJECT_MISSING=true
		export OCI_DATA_ARTIFACT_LIST=true OCI_DATA_SUBJECT_LIST=true OCI_DATA_DATA_FIELD=true
		export OCI_DATA_NONDISTRIBUTABLE=true OCI_DATA_CUSTOM_FIELDS=true OCI_DATA_NO_LAYERS=true
		export OCI_DATA_EMPTY_BLOB=true OCI_DATA_SHA512=true
		"$suite" -test.run '^TestLegacy$' >"$out/stdout.txt" 2>"$out/stderr.txt"
	) || true
	local pass fail errs skip total
	pass=$(summary_count Pass "$out/stdout.txt")
	fail=$(summary_count FAIL "$out/stdout.txt")
	errs=$(summary_count Error "$out/stdout.txt")
	skip=$(summary_count Skip "$out/stdout.txt")
	total=$(summary_count Total "$out/stdout.txt")
	printf 'conformance (%s): %s/%s passed, %s failed, %s errors, %s skipped\n' \
		"$name" "${pass:-?}" "${total:-?}" "${fail:-?}" "${errs:-?}" "${skip:-?}"
	if [ -z "$pass" ] || [ "$pass" = 0 ] || [ "$fail" != 0 ] || [ "$errs" != 0 ] || [ "$skip" != 0 ] ||
		[ "$pass" != "$total" ]; then
		failed=1
		grep -E 'FAIL|Error' "$out/stdout.txt" | head -n 40 >&2 || true
		cat "$out/stderr.txt" >&2
		echo "conformance ($name): FAILED; full report in $out" >&2
		return 1
	fi
}

kappa=${1:-}
if [ -z "$kappa" ]; then
	kappa=$work/kappa
	(cd "$repo" && go build -o "$kappa" ./cmd/kappa)
fi

echo "conformance: building $SUITE_MODULE@$SUITE_VERSION"
mkdir -p "$work/suite"
(
	cd "$work/suite"
	export GOFLAGS="-buildvcs=false -mod=mod"
	go mod init kappa.invalid/conformance >/dev/null 2>&1
	go get "$SUITE_MODULE@$SUITE_VERSION" >/dev/null 2>&1 || go get "$SUITE_MODULE@$SUITE_VERSION"
	go test -c -o "$work/conformance.test" "$SUITE_MODULE"
)
suite=$work/conformance.test

start_server anonymous
run_suite anonymous || true
stop_server

user=conformance
password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
start_server authenticated --registry-user "$user" --registry-password "$password"
run_suite authenticated "$user" "$password" || true
stop_server

if ((failed)); then
	exit 1
fi
echo "conformance: every case passed (anonymous and authenticated)"
