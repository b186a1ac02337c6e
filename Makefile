# Every install step lives here: a fresh clone needs only python3.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP_FLAGS ?= -q --disable-pip-version-check

.PHONY: help install dev demo test lint typecheck pytest bench bench-tools clean chromium

help:
	@echo "make demo   - create .venv, install, run the end-to-end demo"
	@echo "make test   - create .venv with dev extras, ruff, mypy --strict, pytest"
	@echo "make lint   - ruff + mypy only"
	@echo "make bench  - every benchmark (bench/README.md): ingest vs its floors, encoding, delivery vs bare aiohttp, callbacks vs bare Starlette, outage drain, reconciliation, ISO 8583, dashboard"

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) -c constraints.txt -e .
	touch $@

$(BIN)/.dev-installed: $(BIN)/.installed
	$(BIN)/python -m pip install $(PIP_FLAGS) -c constraints.txt -e '.[dev]'
	touch $@

install: $(BIN)/.installed
dev: $(BIN)/.dev-installed

demo: $(BIN)/.installed
	$(BIN)/pesabridge demo

lint: $(BIN)/.dev-installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy --strict src

pytest: $(BIN)/.dev-installed chromium
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint pytest

# Debian's headless Chromium for the dashboard's browser tests: Playwright drives it and never
# downloads a browser of its own. Installed only when missing (CI runs as root).
chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)

BENCHES := "ingest.py $(BENCH_ARGS)" encode.py deliver.py callbacks.py drain.py reconcile.py \
	iso8583_roundtrips.py dashboard.py

# Every benchmark runs even when an earlier one misses its goal; the exit status is
# non-zero if any missed.
bench: $(BIN)/.dev-installed bench-tools
	@status=0; for b in $(BENCHES); do \
		echo "== bench/$$b"; $(BIN)/python bench/$$b || status=1; \
	done; exit $$status

# wrk (Debian) drives bench/callbacks.py; without it the bench falls back to the simulator.
bench-tools:
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; } \
		|| echo "wrk not installed: bench/callbacks.py will use the simulator"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
