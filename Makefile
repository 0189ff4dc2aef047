# Kappa — two commands: `make up` and `make test`. Run as root on Debian 12.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin
export GOFLAGS := -buildvcs=false

KAPPA      ?= bin/kappa
LISTEN     ?= 127.0.0.1:9070
DATA_DIR   ?= /var/lib/kappa
LOG        ?= /var/log/kappa.log
ENDPOINT   := http://$(LISTEN)

.PHONY: up deps build example test test-unit test-e2e conformance fuzz bench bench-registry down clean

## up: install what is missing, build, start the server, deploy and invoke the example
up: deps build
	@scripts/up.sh "$(KAPPA)" "$(LISTEN)" "$(DATA_DIR)" "$(LOG)"

deps:
	@scripts/deps.sh

build:
	CGO_ENABLED=0 go build -o $(KAPPA) ./cmd/kappa
	CGO_ENABLED=0 go build -o $(dir $(KAPPA))kappa-init ./cmd/kappa-init

## test: install what the tests need and run every test
test: deps
	scripts/build-criu.sh
	scripts/console-deps.sh
	go vet ./...
	go test -race -count=1 ./internal/... ./cmd/...
	scripts/conformance.sh
	go test -count=1 -timeout 30m -v ./test/e2e/... 2>&1 | scripts/e2e-summary.sh

test-unit:
	go test -race ./internal/...

test-e2e:
	go test -count=1 -timeout 30m -v ./test/e2e/...

## conformance: the OCI distribution-spec conformance suite against a live server
conformance:
	scripts/conformance.sh

## fuzz: run every fuzz target for FUZZTIME each
FUZZTIME ?= 30s
fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

## bench: cold start, warm invoke, throughput, scale-out and density, each next to its baseline, in one table
##        (BENCH_FLAGS passes flags, e.g. BENCH_FLAGS="--density 1000 --profile-dir prof")
BENCH_FLAGS ?=
bench: deps build
	scripts/build-criu.sh
	$(KAPPA) bench --source . $(BENCH_FLAGS)

## bench-registry: registry push/pull and Create-to-Active next to Distribution and crane
bench-registry:
	scripts/bench-registry.sh

down:
	@scripts/down.sh $(KAPPA)

clean: down
	rm -rf bin build
