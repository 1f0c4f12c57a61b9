# gocim — see README.md. `make run` brings up a local cluster, `make test` runs every test.
SHELL := /bin/bash
MODULES := proto internal cim-server cim-route cim-client e2e bench
BINARIES := cim-server cim-route cim-client
GO ?= go
TEST_FLAGS ?= -race -count=1 -timeout 20m

# Fuzz budgets are execution counts (≈ 15 s each here): a duration races
# Go 1.26's fuzz coordinator at its deadline, which then fails with a bare
# "context deadline exceeded" and no crasher (go.dev/issue/75804, fixed
# in Go 1.27). FUZZ_TIME, when set, replaces them all (a count or a duration).
FUZZ_CODEC ?= 150000x
FUZZ_API ?= 60000x
FUZZ_CONN ?= 100000x
FUZZ_MQTT ?= 100000x
FUZZ_WS ?= 60000x

.PHONY: all build run stop status test allocs unit e2e e2e-redis-cluster fuzz bench bench-quick lint proto proto-check docker-check deps clean

all: build

build:
	@mkdir -p bin
	$(GO) build -o bin/ $(foreach b,$(BINARIES),./$(b)/cmd/$(b)) ./cim-route/cmd/cimctl

run: build
	scripts/cluster.sh start

stop:
	scripts/cluster.sh stop

status:
	scripts/cluster.sh status

deps:
	scripts/deps.sh
	scripts/deps.sh protoc

# test: everything CI checks — formatting, vet, generated code, all tests
# (unit and e2e) with the race detector against real ZooKeeper, Redis and
# slapd, then the fuzz targets for a bounded time each, then the benchmark
# workloads at small sizes as a smoke test (no thresholds).
test: deps lint proto-check
	$(GO) test $(TEST_FLAGS) $(foreach m,$(MODULES),./$(m)/...)
	$(MAKE) allocs
	$(MAKE) e2e-redis-cluster
	$(MAKE) fuzz
	$(MAKE) bench-quick

# allocs: the allocation budgets of hot paths and the idle reader's stack
# (4 KiB of an idle connection's 8), which the race detector changes, so
# they are checked again without it.
allocs:
	cd proto && $(GO) test -count=1 -run 'Allocations' ./...
	cd cim-client && $(GO) test -count=1 -run 'Allocations' ./...
	cd cim-server && $(GO) test -count=1 -run 'IdleReaderStack' ./internal/gateway/

# fuzz: the frame decoder, the route's JSON handlers, a logged-in gateway
# connection fed arbitrary bytes, the MQTT packet reader and decoders, and a
# WebSocket connection fed arbitrary frames.
fuzz:
	cd proto && $(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(or $(FUZZ_TIME),$(FUZZ_CODEC)) ./codec/
	cd cim-route && $(GO) test -run '^$$' -fuzz '^FuzzJSONHandlers$$' -fuzztime $(or $(FUZZ_TIME),$(FUZZ_API)) ./internal/api/
	cd cim-server && $(GO) test -run '^$$' -fuzz '^FuzzServe$$' -fuzztime $(or $(FUZZ_TIME),$(FUZZ_CONN)) ./internal/conn/
	cd cim-server && $(GO) test -run '^$$' -fuzz '^FuzzPackets$$' -fuzztime $(or $(FUZZ_TIME),$(FUZZ_MQTT)) ./internal/mqttconn/
	cd cim-server && $(GO) test -run '^$$' -fuzz '^FuzzConn$$' -fuzztime $(or $(FUZZ_TIME),$(FUZZ_WS)) ./internal/wsconn/

unit:
	$(GO) test $(TEST_FLAGS) $(foreach m,$(filter-out e2e bench,$(MODULES)),./$(m)/...)

e2e:
	$(GO) test $(TEST_FLAGS) -v ./e2e/...

# e2e-redis-cluster: the chat, group, receipt and loss tests again, each on
# a Redis Cluster of three masters with a replica each (GOCIM_E2E_REDIS).
REDIS_CLUSTER_TESTS := ^(TestNoLossUnderFailures|TestNoLossUnderFailuresRouteReplicas|TestOfflineDeliveryAndReceipts|TestResendIsDeduplicated|TestGroupOperations|TestGroupMessages|TestGroupTimeline|TestRouteRestartLosesNothing|TestFrozenGatewayKeepsOrder|TestRecallEditDelete|TestSeveralDevices)$$
e2e-redis-cluster:
	GOCIM_E2E_REDIS=cluster $(GO) test $(TEST_FLAGS) -run '$(REDIS_CLUSTER_TESTS)' ./e2e/

# bench: the benchmark workloads against a real cluster built without -race;
# prints a markdown table and writes bench/results/latest.json (docs/BENCHMARKS.md).
bench: deps
	$(GO) run ./bench/cmd/gocim-bench $(BENCH_FLAGS)

bench-quick: deps
	$(GO) run ./bench/cmd/gocim-bench --quick --json "" $(BENCH_FLAGS)

lint:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(foreach m,$(MODULES),./$(m)/...)

proto:
	scripts/protoc.sh

# proto-check regenerates the protobuf code and fails if it differs from what is committed.
proto-check: proto
	@git diff --exit-code -- proto/cimpb || { echo "proto/cimpb is stale: run 'make proto' and commit"; exit 1; }

docker-check:
	$(GO) test -count=1 -run TestComposeFile ./e2e/

clean:
	rm -rf bin
