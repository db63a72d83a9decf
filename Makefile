# sluice: the two commands a fresh Debian 12 machine needs are `make demo`
# and `make test`; both install whatever is missing first (scripts/setup.sh).

SHELL := /bin/bash
CARGO ?= cargo
DEMO_DIR ?= var/demo
DEMO_LISTEN ?= 127.0.0.1:6432
DEMO_PG_PORT ?= 55432
# Seconds per fuzz target for `make fuzz-smoke`.
FUZZ_SECONDS ?= 20

.PHONY: all setup build demo test lint fmt-check clippy fuzz-smoke clean-demo

all: build

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --workspace

# Builds the release binary and runs the complete local demo until Ctrl-C.
demo: setup
	$(CARGO) build --release -p sluice -p sluice-ledger --bins
	./target/release/sluice demo --dir $(DEMO_DIR) --listen $(DEMO_LISTEN) --pg-port $(DEMO_PG_PORT)

# Lint first, then the whole test suite, so that the last lines printed are
# cargo test's own summary.
test: setup lint
	$(CARGO) build --workspace
	$(CARGO) test --workspace --no-fail-fast
	# The masking engine once more on its portable (non-AVX2) paths and
	# on its AVX2 paths, which the run above skips on a CPU with AVX2 or
	# AVX-512.
	SLUICE_SIMD_MAX=baseline $(CARGO) test --test masking_equivalence
	SLUICE_SIMD_MAX=v3 $(CARGO) test --test masking_equivalence
	# And on an emulated CPU without AVX, where the engine must detect
	# that it has no AVX2 and take the portable paths by itself (fewer
	# property-test cases: emulation is slow, and the paths themselves
	# were tested in full by the baseline run above).
	PROPTEST_CASES=16 SLUICE_SIMD_EXPECT=baseline \
		CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="qemu-x86_64 -cpu Nehalem" \
		$(CARGO) test --test masking_equivalence

lint: setup fmt-check clippy

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Short runs of every fuzz target on stable (no sanitizer). Optional: not
# part of `make test`.
fuzz-smoke: setup
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	@set -e; cd fuzz; targets="$$($(CARGO) fuzz list)"; \
	if [ -z "$$targets" ]; then echo "fuzz-smoke: no fuzz targets yet"; exit 0; fi; \
	for t in $$targets; do \
		echo "fuzz-smoke: $$t ($(FUZZ_SECONDS) s)"; \
		$(CARGO) fuzz run "$$t" --sanitizer none -- -max_total_time=$(FUZZ_SECONDS); \
	done

# Removes the demo's database, certificates, tokens and config.
clean-demo:
	@if [ -f $(DEMO_DIR)/pg/data/postmaster.pid ] && kill -0 "$$(head -1 $(DEMO_DIR)/pg/data/postmaster.pid)" 2>/dev/null; then \
		echo "clean-demo: the demo's PostgreSQL is still running; stop \`make demo\` first"; exit 1; fi
	@if [ -f $(DEMO_DIR)/pg.location ]; then rm -rf "$$(tail -1 $(DEMO_DIR)/pg.location)"; fi
	rm -rf $(DEMO_DIR)
