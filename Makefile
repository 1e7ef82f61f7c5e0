# fusewatch — `make demo` runs the embedded demo, `make test` runs every check. Both install what they need.
# `make services-up` starts the local Kafka broker and InfluxDB (deploy/local/services.sh, docs/services.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_ARGS ?=

SERVICES := deploy/local/services.sh
STARTED := .cache/services-started

.PHONY: demo test test-fast lint layers typecheck pytest pytest-main pytest-offline bench install clean services-up services-down services-status

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip setuptools wheel
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/fusewatch demo --out out/demo --summary-json out/demo/summary.json $(DEMO_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# The layer rules (docs/architecture.md): contracts < models < streams < connectors < apps, checked by import-linter
# with the contracts in pyproject.toml ([tool.importlinter]).
layers: $(STAMP)
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy fusewatch streams models connectors tests benchmarks

# Two pytest sessions side by side. The long runs that need no service (the `slow` and `realdata` tests outside the
# integration tier: CPU only) run at the lowest CPU priority (deploy/local/low-priority.sh: a session of its own at
# autogroup nice 19, since plain `nice` does not count between sessions) beside the rest, on the CPU time the unit
# tests (one core) and the integration tests (which mostly wait on brokers, outages and plant time) leave idle.
# Each session's output is printed when it ends; either one failing fails the target.
OFFLINE := (slow or realdata) and not integration

pytest: $(STAMP)
	@$(MAKE) --no-print-directory -j2 --output-sync=target pytest-main pytest-offline

pytest-main: $(STAMP)
	$(PY) -m pytest -m "not ($(OFFLINE))"

pytest-offline: $(STAMP)
	@mkdir -p .cache
	deploy/local/low-priority.sh $(PY) -m pytest -p no:cacheprovider --basetemp=.cache/pytest-offline -m "$(OFFLINE)"

# Runs the benchmarks (a few minutes), writes benchmarks/results.json and docs/benchmarks.md. The sink
# benchmark needs the local InfluxDB: the services this run started are stopped afterwards, as for `make test`.
bench: $(STAMP)
	@mkdir -p .cache
	$(SERVICES) up --record $(STARTED)
	@status=0; $(PY) -m benchmarks || status=$$?; $(SERVICES) down --only $(STARTED); exit $$status

# The development loop's fast tier (CONTRIBUTING.md): lint, layers and the unit tests and doctests that need no
# service, no real data set and no long end-to-end run.
test-fast: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -m "not integration and not slow and not realdata" tests/unit fusewatch streams models connectors

# The services this run started (not those already running) are stopped afterwards, pass or fail.
test: $(STAMP)
	@mkdir -p .cache
	$(SERVICES) up --record $(STARTED)
	@status=0; $(MAKE) --no-print-directory lint layers typecheck pytest || status=$$?; \
	$(SERVICES) down --only $(STARTED); exit $$status

services-up:
	$(SERVICES) up

services-down:
	$(SERVICES) down

services-status:
	$(SERVICES) status

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
