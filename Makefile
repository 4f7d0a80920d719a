# Every target builds the local virtualenv first, so on a fresh machine these are the whole set-up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run dev test bench weights lint venv clean chaos chaos-prereqs browser-prereqs

venv: $(STAMP)

NATIVE_SRC := $(wildcard twinchain/native/src/*) twinchain/native/build.py twinchain/native/_spec.py

# The editable install compiles the C extension in place: rebuild when its sources change.
$(STAMP): pyproject.toml setup.py $(NATIVE_SRC)
	@scripts/check-prereqs.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/twinchain devnet up --validators 4 --base-dir .devnet

dev: $(STAMP)
	$(BIN)/twinchain node --dev

# The suite's 2-minute chaos run uses libfaketime for its clock-skew fault (see chaos-prereqs).
# The import contract (pyproject.toml, [tool.importlinter]) first: an upward import fails here.
# The tests run in lanes (scripts/test-lanes.sh, tests/conftest.py): real-process tests one at a
# time beside the compute-only ones, then the slot-bounded ones alone.
test: $(STAMP) chaos-prereqs browser-prereqs
	$(BIN)/lint-imports --no-cache
	TWINCHAIN_TEST_PYTHON=$(BIN)/python scripts/test-lanes.sh

# 10 minutes, 40 seeded faults on validators in network namespaces (root); table + JSON.
CHAOS_SEED ?= 1
chaos: $(STAMP) chaos-prereqs
	$(BIN)/twinchain devnet chaos --seed $(CHAOS_SEED) --minutes 10 --faults 40 \
		--json chaos-result.json

# Chromium and chromedriver for the dashboard's browser tests: installed here when root and
# missing; without them those tests skip and say why.
browser-prereqs:
	@scripts/check-prereqs.sh --browser || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing chromium and chromium-driver for the dashboard's browser tests"; \
			apt-get install -y -q chromium chromium-driver >/dev/null || \
				{ apt-get update -q >/dev/null && \
				  apt-get install -y -q chromium chromium-driver >/dev/null; } || \
				echo "could not install them: the browser tests will be skipped"; \
		else echo "without them the browser tests are skipped"; fi; }

# libfaketime (clock-skew faults) and nftables (link loss on kernels without netem) are
# optional: installed here when root and missing.
chaos-prereqs:
	@scripts/check-prereqs.sh --chaos || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing faketime (libfaketime) and nftables for the chaos faults"; \
			apt-get install -y -q faketime nftables >/dev/null || \
				{ apt-get update -q >/dev/null && \
				  apt-get install -y -q faketime nftables >/dev/null; } || \
				echo "could not install them: those faults will be skipped"; \
		else echo "without them those faults are skipped"; fi; }

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench

# Re-measure every pallet's call weights into twinchain/runtime/weights/ (a runtime change:
# bump SPEC_VERSION and re-record the golden chains in tests/data/replay when values move).
weights: $(STAMP)
	$(BIN)/python -m bench.weights

lint: $(STAMP)
	$(BIN)/ruff check twinchain tests bench
	$(BIN)/ruff format --check twinchain tests bench
	$(BIN)/lint-imports --no-cache

clean:
	rm -rf $(VENV) build *.egg-info
