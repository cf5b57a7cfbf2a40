# Two commands for a newcomer: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOME_DIR ?= .
PORT   ?= 8443

.PHONY: run test lint typecheck unit e2e bench clean-workspace

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# pycanon (tests/privacy/test_pycanon.py cross-checks k and l) pins exact old numpy/pandas/
	# typing-extensions releases; it runs on ours, so it is installed without its pins.
	$(BIN)/python -m pip install --quiet --no-deps 'pycanon>=1.3'
	touch $(VENV)/.installed $@

## run: create .venv, install, create the demo workspace if it has no keys, serve HTTPS on :8443
## (another port: `make run PORT=9443`; another workspace: `make run HOME_DIR=/srv/gateway`)
run: $(VENV)/.installed
	@test -f $(HOME_DIR)/keys/audit-ed25519.key || GATEWAY_PORT=$(PORT) $(BIN)/gateway init --demo --home $(HOME_DIR)
	GATEWAY_PORT=$(PORT) $(BIN)/gateway serve --home $(HOME_DIR)

# The suite in three processes on this two-core machine (pytest-xdist; each test still runs
# once, `pytest -q` alone runs it serially): a third of a test's time is spent waiting (on
# servers it started, PostgreSQL, fsync, browsers), and a third process fills that time;
# `make test TEST_PROCESSES=2` for fewer. Compiled modules are written even where
# PYTHONDONTWRITEBYTECODE is set (every `gateway` process an end-to-end test starts would
# otherwise compile the package again), beside the sources as usual: the libraries' ones were
# written by pip at install time, and a cache directory of our own (PYTHONPYCACHEPREFIX) would
# make every process of a fresh clone's first run compile pandas, NumPy and the rest again
# (~70 s of CPU); the package is compiled once before the tests start.
TEST_PROCESSES ?= 3
# The tests' temporary workspaces go to /dev/shm where it is a tmpfs with 4 GiB free (a run
# writes ~70 MB, and pytest keeps the last three runs): on a disk mounted with `discard` each
# unlink costs ~0.5 ms, and pytest deleting an old run's ~19,000 files took 16 s at the end of
# `make test`. Elsewhere the system's temporary directory is used. `make test TEST_TMPDIR=DIR`
# chooses another.
TEST_TMPDIR ?= $(shell df -k --output=avail /dev/shm 2>/dev/null | awk 'NR == 2 && $$1 > 4194304 {print "/dev/shm"}')
PYTEST_FAST := PYTHONDONTWRITEBYTECODE= $(BIN)/python -m compileall -q -j 0 gateway tests && \
	$(if $(TEST_TMPDIR),TMPDIR=$(TEST_TMPDIR)) PYTHONDONTWRITEBYTECODE= \
	$(BIN)/pytest -p xdist.plugin -n $(TEST_PROCESSES) --dist worksteal

## test: lint, type-check and run the whole test suite (end-to-end tests included). mypy runs
## beside pytest (its report appears when it is done; the tests' summary stays last), since much
## of the suite's wall time is spent waiting on servers; either failing fails `make test`. mypy
## runs at a lower priority (nice 10): in a fresh clone it has no cache and needs ~24 s of CPU,
## which it then takes from the suite's idle moments instead of from the tests.
test: $(VENV)/.installed-dev lint
	@log=$$(mktemp); \
	{ nice -n 10 $(BIN)/mypy >"$$log" 2>&1; status=$$?; sed 's/^/mypy: /' "$$log"; exit $$status; } & mypy=$$!; \
	$(PYTEST_FAST) -q; tests=$$?; \
	wait $$mypy; typed=$$?; rm -f "$$log"; \
	if [ $$typed -ne 0 ]; then echo "mypy failed (exit $$typed): see the mypy: lines above"; fi; \
	exit $$(( tests != 0 ? tests : typed ))

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

unit: $(VENV)/.installed-dev
	$(PYTEST_FAST) -q -m "not e2e"

e2e: $(VENV)/.installed-dev
	$(PYTEST_FAST) -q -m e2e

## bench: install the benchmark extras and run the benchmarks (throughput.py, which needs wrk, is
## separate: see benchmarks/README.md). pycanon (for tests/privacy/test_pycanon.py) pins old
## versions of numpy, pandas and typing-extensions, so it is installed without its dependencies.
bench: $(VENV)/.installed-dev
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m pip install --quiet --no-deps pycanon
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/desensitize.py --parts transforms,synthesize,scale,mondrian-scale

## clean-workspace: remove the generated demo workspace in the repository root (keys included!)
clean-workspace:
	rm -rf data audit state demo-client.json
	find keys -type f ! -name README.md ! -name .gitignore -delete
