# Every target builds the local virtualenv first, so on a fresh machine these are the whole set-up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run dev test bench lint venv clean

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

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check twinchain tests bench
	$(BIN)/ruff format --check twinchain tests bench

clean:
	rm -rf $(VENV) build *.egg-info
