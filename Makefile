# a2a-bench — run `make` for the list of targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
CARGO ?= cargo
APT_PACKAGES := libhwloc-dev libudev-dev pkg-config
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help deps deps-browser bench-syscalls bench-scaling device-bundle build test test-slow test-stress test-faults test-multihost test-targets bench-http soak fuzz tune tune-check lint bench-quick bench bench-compare bench-micro bench-router

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

deps: ## Install the Debian packages the build needs, when missing
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	fi

deps-browser: ## Install chromium (headless) for the HTML report's browser test (make test-slow)
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

bench-quick: build ## The quick benchmark: a small grid in well under a minute
	./target/release/a2a-bench --quick

bench: build ## The default benchmark grid (agents 10,50,100 × star,mesh,ring × 3)
	./target/release/a2a-bench

build: deps ## Build the release binary (target/release/a2a-bench)
	$(CARGO) build --release

test: deps ## Run the tests (optimized, with debug assertions)
	$(CARGO) test --profile ci

test-slow: deps deps-browser ## Run the tests, then the slow and load tests one at a time (installs chromium when missing)
	$(CARGO) test --profile ci
	$(CARGO) test --profile ci -- --ignored --test-threads=1 --nocapture

test-stress: deps ## The test suite, COPIES (3) copies at once, ROUNDS (2) times, each under TIMEOUT s: races that contention shows
	bash tests/stress.sh

test-targets: build ## Every `a2a-bench http` pattern against real Python servers from PyPI (a2a-sdk, mcp 1.x/2.x, a2a-registry), 0 errors
	bash tests/targets/run.sh

bench-syscalls: build ## System calls, context switches, IPIs and CPU per routed message for each router, with perf stat (root)
	bash benches/perf_per_msg.sh

bench-http: build ## a2a-bench http vs wrk on the same target, connections and cores; BUDGET=0.5 holds each client to half a core (root), TARGET=fast a C responder, PCAP=1 the wire's own round trips, AT_RATE=1 a2a-bench again at wrk's rate (docs/BENCHMARKS.md)
	bash benches/http_vs_wrk.sh

test-faults: build ## Real faults (netns + veth, tc netem, signals) against the router process (root)
	bash tests/faults.sh

test-multihost: build ## Router and three workers in four network namespaces, merged; HTTP workers; three searching together; a worker killed (root)
	bash tests/multihost.sh

soak: build ## SOAK_SECS (600) at half the closed-loop peak; RSS must stay within ±5 %
	bash tests/soak.sh

# Without AddressSanitizer (-s none): the crate has no unsafe code, and ASan made the JSON target
# 25× slower. libFuzzer still catches every panic, abort, timeout and runaway allocation.
FUZZ_SECS ?= 60
FUZZ_TARGETS := frames messages json connection responses
fuzz: ## Fuzz each parser FUZZ_SECS seconds (cargo-fuzz + nightly); new finds go to tests/fuzz/work
	@command -v cargo-fuzz >/dev/null || { echo "make fuzz: needs cargo-fuzz (cargo install cargo-fuzz) and a nightly toolchain"; exit 1; }
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p tests/fuzz/work/$$t; \
	  echo "fuzz: $$t for $(FUZZ_SECS) s"; \
	  $(CARGO) +nightly fuzz run --fuzz-dir tests/fuzz -O -s none $$t tests/fuzz/work/$$t tests/fuzz/corpus/$$t \
	    -- -max_total_time=$(FUZZ_SECS) -rss_limit_mb=2048 -print_final_stats=1 2>&1 | \
	    grep -E "stat::number_of_executed_units|stat::peak_rss|ERROR|panicked|SUMMARY" ; \
	  test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

tune: ## Apply the sysctl profile (root); reports each key applied / refused
	@bash sysctl/tune.sh apply

tune-check: ## Show current vs recommended sysctl values; STRICT=1 exits 1 when a key differs
	@bash sysctl/tune.sh check $(if $(STRICT),--strict)

lint: ## rustfmt --check and clippy -D warnings
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

bench-compare: build ## glommio vs the tokio baselines, same cores, alternating (≈ 9 min)
	./target/release/a2a-bench compare --agents 10,100 --agents-per-conn 10 \
	  --topologies star,mesh,ring --duration 1.5 --warmup 0.3 --repeat 3 --open-at 0.5,0.01
	@echo "Each agent on its own connection (a plain run's shape):"
	./target/release/a2a-bench compare --agents 100 --agents-per-conn 1 \
	  --topologies star,mesh,ring --duration 1.5 --warmup 0.3 --repeat 3 \
	  --output compare_apc1_results.json

bench-scaling: build ## The comparison at 1, 2, 4 and 8 router cores (agents on as many), one report
	./target/release/a2a-bench compare --scaling 1,2,4,8 --agents 100,1000 --agents-per-conn 10 \
	  --topologies ring,mesh --duration 2 --warmup 0.5 --repeat 3 --output scaling_results.json

device-bundle: build ## The binary (symbols, no debug information), its two libraries, and wrk, tcpdump and perf (packed) when installed, in target/device/, for benches/device.sh on a lent machine
	mkdir -p target/device/lib
	@# Without its debug information, with its symbols (so that perf names the binary's functions there)
	strip --strip-debug -o target/device/a2a-bench target/release/a2a-bench
	for l in libhwloc.so.15 libudev.so.1; do \
	  cp -L "$$(ldd target/release/a2a-bench | awk -v l=$$l '$$1 == l {print $$3}')" target/device/lib/; done
	@# wrk and the libraries it needs beyond libc, for benches/device_http.sh, when installed here
	@if command -v wrk >/dev/null; then mkdir -p target/device/wrk && cp -L "$$(command -v wrk)" target/device/wrk/ && \
	  for l in $$(ldd "$$(command -v wrk)" | awk '$$1 ~ /^lib(luajit|ssl|crypto)/ {print $$3}'); do cp -L $$l target/device/wrk/; done; fi
	@# tcpdump and its libraries, for device_http.sh's PCAP=1 (the wire's own round trips), when installed here
	@if command -v tcpdump >/dev/null; then mkdir -p target/device/tcpdump && cp -L "$$(command -v tcpdump)" target/device/tcpdump/ && \
	  for l in $$(ldd "$$(command -v tcpdump)" | awk '$$3 ~ /^\// && $$1 !~ /^(libc\.so|libm\.so|ld-linux)/ {print $$3}'); do cp -L $$l target/device/tcpdump/; done; fi
	@# perf and the libraries it needs beyond libc, packed (≈ 10 MB), for device.sh's profile of each router, when installed here
	@if command -v perf >/dev/null; then rm -rf target/device/perf.tmp && mkdir -p target/device/perf.tmp/perf && \
	  cp -L "$$(command -v perf)" target/device/perf.tmp/perf/ && \
	  for l in $$(ldd "$$(command -v perf)" | awk '$$3 ~ /^\// && $$1 !~ /^(libc\.so|libm\.so|ld-linux)/ {print $$3}'); do cp -L $$l target/device/perf.tmp/perf/; done && \
	  tar czf target/device/perf.tgz -C target/device/perf.tmp perf && rm -rf target/device/perf.tmp; fi
	@du -sh target/device

bench-router: deps ## Router throughput and round trip with a minimal driver
	$(CARGO) bench --bench router

bench-micro: deps ## Codec and HTTP/2 client micro-benchmarks (criterion)
	$(CARGO) bench --bench wire
	$(CARGO) bench --bench http2_client
