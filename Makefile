# Backorder — the two commands of the README:
#   make demo   install dependencies, build, generate a realistic data set, append it, show the log and the dashboard
#   make test   install dependencies, build, run the whole test suite
#   make soak   the fault suites at length (docs/RELIABILITY.md): SEEDS=… ROUNDS=… FUZZ=…
#   make sanitize  the test suite under ThreadSanitizer (SANITIZER=address for AddressSanitizer)
#   make serve  the HTTP server on the demo data, loopback only, without tokens (docs/SERVER.md)
#   make check-api  schemathesis against a live server with docs/openapi.yaml
#   make check-web  the web dashboard in headless Chromium; keeps its screenshots in docs/
SHELL := /bin/bash
APT_PACKAGES := liblz4-dev libzstd-dev libsimdjson-dev libnats-dev nats-server pkg-config
# The tests also drive the web dashboard in a real browser (WebDashboardTests).
TEST_APT_PACKAGES := chromium chromium-driver
DATA ?= demo-data
EVENTS ?= 200000
SWIFT_BUILD_FLAGS ?=

.PHONY: deps test-deps build release demo demo-cluster test bench clean cluster cluster-stop soak soak-cluster sanitize serve check-api check-web

# Installs the Debian packages that are missing (needs root or sudo).
deps:
	@$(MAKE) --no-print-directory install-missing PACKAGES="$(APT_PACKAGES)"

test-deps:
	@$(MAKE) --no-print-directory install-missing PACKAGES="$(APT_PACKAGES) $(TEST_APT_PACKAGES)"

.PHONY: install-missing
install-missing:
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

build: deps
	swift build $(SWIFT_BUILD_FLAGS)

# The demo runs the release build: it is what a newcomer sees first (a debug build is
# 5-10x slower and would misstate every rate it prints). The Swift runtime and Foundation
# are linked statically: a fresh process then starts in ~7 ms instead of ~14 (dynamic
# symbol binding), which is half of a query's time (bench/RESULTS.md).
BIN := .build/release/backorder
release: deps
	swift build -c release --static-swift-stdlib $(SWIFT_BUILD_FLAGS)

demo: release
	rm -rf $(DATA) && mkdir -p $(DATA)
	$(BIN) generate --events $(EVENTS) --seed 1 > $(DATA)/events.ndjson
	$(BIN) append $(DATA)/events.ndjson --data $(DATA)
	$(BIN) append $(DATA)/events.ndjson --data $(DATA)
	$(BIN) log stats --data $(DATA)
	$(BIN) log verify --data $(DATA)
	$(BIN) audit verify --data $(DATA)
	$(BIN) query dashboard --data $(DATA)
	$(BIN) read --data $(DATA) --type OutOfStockReported --limit 5 --format table
	$(BIN) consume --data $(DATA) --group demo --max-in-flight 5000 > /dev/null
	$(BIN) groups show demo --data $(DATA)
	@echo "The dashboard in a browser: make serve, then open http://127.0.0.1:$(PORT)/t/default (docs/WEB.md)"

test: test-deps
	swift build $(SWIFT_BUILD_FLAGS)
	swift test $(SWIFT_BUILD_FLAGS)

# The HTTP server on the demo data, without tokens, on loopback only (docs/SERVER.md).
PORT ?= 8080
serve: release
	$(BIN) serve --data $(DATA) --listen 127.0.0.1:$(PORT) --insecure-no-auth

# schemathesis (PyPI) against a live server with docs/openapi.yaml: every route with
# generated requests, no 5xx and every answer as the document says. Bounded: MAX_EXAMPLES
# per operation; the server is started on loopback and stopped by PID.
MAX_EXAMPLES ?= 50
check-api: release
	pip install -q schemathesis
	bash bench/check-api.sh $(BIN) $(MAX_EXAMPLES)

# The web dashboard's browser test alone (headless Chromium through chromedriver, loopback,
# stopped by PID), writing its desktop and phone screenshots to docs/ (docs/WEB.md).
check-web: test-deps
	BACKORDER_SCREENSHOTS=$(CURDIR)/docs swift test $(SWIFT_BUILD_FLAGS) --filter WebDashboardTests

# Long runs of the reliability suites: SEEDS fault-simulator seeds (and power-loss seeds),
# ROUNDS kill -9 rounds of `backorder append` and of the log's crash writer, FUZZ × the
# mutation-fuzz iterations. A failing simulator seed is printed; replay it with
# `SEED=N swift test --filter FaultSimulationTests`.
SEEDS ?= 2000
ROUNDS ?= 10000
FUZZ ?= 10
# The fuzz pass runs on its own: beside the others its hang guard (10 minutes) could trip.
soak: build
	BACKORDER_FAULT_SEEDS=$(SEEDS) BACKORDER_SIM_SEEDS=$(SEEDS) BACKORDER_APPEND_KILL_ROUNDS=$(ROUNDS) \
	BACKORDER_CRASH_ROUNDS=$(ROUNDS) BACKORDER_SIM_VERBOSE=1 \
	swift test $(SWIFT_BUILD_FLAGS) --filter 'FaultSimulationTests|SimulationTests|AppendKillTests|CrashTests|FullDiskTests|ConcurrentProducerTests'
	BACKORDER_FUZZ_ITERATIONS=$(FUZZ) swift test $(SWIFT_BUILD_FLAGS) --filter FuzzTests

# The cluster kill test at length (docs/CLUSTER.md): CLUSTER_EVENTS events from 4 producers
# on a 3-node JetStream cluster, CLUSTER_KILLS stream leaders killed with SIGKILL and restarted.
CLUSTER_EVENTS ?= 200000
CLUSTER_KILLS ?= 20
soak-cluster: build
	BACKORDER_CLUSTER_KILL_EVENTS=$(CLUSTER_EVENTS) BACKORDER_CLUSTER_KILLS=$(CLUSTER_KILLS) \
	swift test $(SWIFT_BUILD_FLAGS) --filter 'ClusterKillTests|ClusterStoreTests'

# The whole suite under a sanitizer, in its own build directory (slow: the process-based
# crash tests run with fewer rounds here).
SANITIZER ?= thread
sanitize: deps
	BACKORDER_APPEND_KILL_ROUNDS=30 BACKORDER_CRASH_ROUNDS=20 BACKORDER_INGEST_CRASH_ROUNDS=4 \
	swift test --sanitize=$(SANITIZER) --scratch-path .build-$(SANITIZER)san

# Benchmarks live in their own package (bench/) so that the test build stays small.
bench: deps
	cd bench && swift build -c release --scratch-path .build-bench && .build-bench/release/LogBench

# A local 3-node NATS JetStream cluster on 127.0.0.1 (issue 10, docs/CLUSTER.md); CLUSTER_DIR keeps
# its configs, data and PIDs. `make cluster-stop` stops exactly the recorded PIDs.
CLUSTER_DIR ?= /tmp/backorder-cluster
cluster:
	@command -v nats-server >/dev/null || { SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server; }
	tools/cluster.sh start --dir $(CLUSTER_DIR) --nodes 3

cluster-stop:
	tools/cluster.sh stop --dir $(CLUSTER_DIR)

# The demo on a local 3-node JetStream cluster, started and stopped by tools/demo-cluster.sh.
demo-cluster: release
	tools/demo-cluster.sh $(EVENTS) $(BIN)

clean:
	rm -rf .build $(DATA)
