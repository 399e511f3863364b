# Thin wrapper over CMake. `make demo` and `make test` do all set-up on Debian bookworm.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
# Tests at once: twice the cores, as most of a test's time is waiting on the programs it
# started (the plain suite kept 0.9 of two cores busy at -j 2); the ones that keep both
# cores busy or state a time bound run alone whatever this is (RUN_SERIAL).
TEST_JOBS  ?= $(shell echo $$((2 * $(JOBS))))
DEBS = build-essential cmake pkg-config libzmq3-dev libsodium-dev libprotobuf-c-dev \
       protobuf-c-compiler libuv1-dev libcriterion-dev libjansson-dev libsqlite3-dev \
       libcsv-dev libinih-dev libmagic-dev liboath-dev libqrencode-dev tzdata libpq-dev postgresql \
       uthash-dev procps jq libmicrohttpd-dev libcurl4-openssl-dev prometheus curl openssl libarchive-dev sqlite3 \
       chromium chromium-driver python3-selenium dpkg-dev help2man python3-debian libraft-dev libjemalloc-dev python3-yaml
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build demo demo-web test test-unit test-integration test-asan asan-build fuzz fuzz-build crash-loop clean bench bench-full bench-fhir test-e2e package test-package image sbom bench-peers

all: build

# Installs only the packages that are missing, without prompting.
deps:
	@missing=$$(for p in $(DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "all packages present"; fi
	@# npm (for axe-core in tests/web, the portal's browser test): Debian's, unless one is there already
	@command -v npm >/dev/null 2>&1 || { echo "installing: npm"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends npm; }

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	./deploy/demo.sh $(BUILD)

# The demo, then the network and the clinic portal keep running until Ctrl-C.
demo-web: build
	DEMO_WEB=1 ./deploy/demo.sh $(BUILD)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(TEST_JOBS)
	$(MAKE) test-asan
	$(MAKE) fuzz FUZZ_SECONDS=$(TEST_FUZZ_SECONDS)
	$(MAKE) test-e2e
	$(MAKE) test-package

# The Docker end-to-end test: installs Docker from Debian and starts dockerd when needed,
# makes debian:bookworm-slim with debootstrap when no registry answers, builds the image,
# runs deploy/docker-compose.yml and tears it down (tests/e2e/e2e.sh).
test-e2e: build
	./tests/e2e/e2e.sh $(BUILD)

# The image handoff:VERSION (and :latest) with its OCI labels, and the monitoring image
# (deploy/build-image.sh); Docker as test-e2e sets it up (deploy/bootstrap-docker.sh).
image:
	./deploy/bootstrap-docker.sh
	./deploy/build-image.sh --monitoring

# The image's SBOM, SPDX 2.3 JSON: every Debian package in it and the project's programs
# (deploy/sbom.sh), in $(BUILD)/handoff-VERSION.spdx.json.
sbom: deps image
	mkdir -p $(BUILD)
	./deploy/sbom.sh -o $(BUILD)/handoff-$$(./deploy/version.sh).spdx.json

# Debian packages in $(BUILD)/packages: handoff (the broker, the services, the portal, their
# systemd units, /etc/handoff) and handoff-cli (the CLI alone); cmake/Packaging.cmake.
package: build
	cmake -S . -B $(BUILD) >/dev/null    # again: finds help2man if deps has just installed it
	cmake --build $(BUILD) -j $(JOBS)
	cd $(BUILD) && cpack -G DEB

# The packages installed, checked and purged in a throwaway debian:bookworm-slim container
# (tests/package/package.sh; Docker as test-e2e sets it up; about a minute). Part of `make test`.
test-package: package
	./tests/package/package.sh $(BUILD)

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit -j $(TEST_JOBS)

test-integration: build
	cd $(BUILD) && ctest --output-on-failure -L integration -j $(TEST_JOBS)

# handoff-bench against a real broker and services on 127.0.0.1 (bench/README.md): every
# mode with small counts (under a minute on 2 cores); bench-full: 1 KB messages, 1M queued.
bench: build
	$(BUILD)/bench/handoff-bench $(BENCH_ARGS)

bench-full: build
	BENCH_FULL=1 $(BUILD)/bench/handoff-bench $(BENCH_ARGS)

# The FHIR API's latency as a clinic's store grows to 100, 1,000 and 5,000 referrals
# (bench/fhir_api.py, bench/README.md; about 2.5 minutes on 2 cores). Not part of `make test`.
bench-fhir: build
	/usr/bin/python3 bench/fhir_api.py --build-dir $(BUILD) $(BENCH_FHIR_ARGS)

# Handoff's broker beside RabbitMQ and NATS JetStream, each started on 127.0.0.1 for the run
# (bench/peers/peers.py, bench/README.md): 3 interleaved rounds of submit and deliver with the
# same count, size and window; installs the servers and client libraries when missing, then
# runs cmake again so that it finds handoff-bench-peer's libraries. Not part of `make test`.
bench-peers: build
	@$(MAKE) --no-print-directory deps DEBS="rabbitmq-server nats-server librabbitmq-dev libnats-dev"
	cmake -S . -B $(BUILD) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)
	/usr/bin/python3 bench/peers/peers.py --build-dir $(BUILD) $(BENCH_PEERS_ARGS)

# The durable broker killed -9 at random moments 100 times under load (the default test run
# does 20). Prints the seed; HX_CRASH_SEED=N repeats a run's kill timing.
CRASH_CYCLES ?= 100
crash-loop: build
	HX_CRASH_CYCLES=$(CRASH_CYCLES) HX_SOURCE_DIR=$(CURDIR) HX_BUILD_DIR=$(abspath $(BUILD)) \
	  $(BUILD)/tests/integration/test_durability --jobs 1 --filter 'durability/crash_loop'

# The whole suite again under AddressSanitizer + UndefinedBehaviorSanitizer.
asan-build: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DHANDOFF_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j $(JOBS)

test-asan: asan-build
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(TEST_JOBS)

# Coverage-guided fuzzing with libFuzzer (clang): FUZZ_SECONDS per target. New inputs go to
# build-fuzz/corpus/; a crash leaves its input in build-fuzz/ and fails the target.
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
TEST_FUZZ_SECONDS ?= 10   # what `make test` gives each target
FUZZ_TARGETS = fuzz_envelope fuzz_log_recovery fuzz_referral_json fuzz_referral_pb fuzz_files
fuzz-build:
	@$(MAKE) deps DEBS="clang libclang-rt-14-dev $(DEBS)"
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DHANDOFF_FUZZ=ON -DHANDOFF_TESTS=OFF
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target $(FUZZ_TARGETS)

fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t && \
	  echo "== $$t ($(FUZZ_SECONDS) s)" && \
	  (cd $(FUZZ_BUILD) && ./tests/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	     corpus/$$t ../tests/fuzz/corpus/$$t 2>&1 | grep -E "stat::number_of_executed_units|ERROR|SUMMARY|Done") || exit 1; \
	done

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
