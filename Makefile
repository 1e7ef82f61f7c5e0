# fusewatch — `make demo` runs the embedded demo, `make test` runs every check. Both install what they need.
# `make services-up` starts the local Kafka broker and InfluxDB (deploy/local/services.sh, docs/services.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_ARGS ?=

SERVICES := deploy/local/services.sh
STARTED := .cache/services-started

.PHONY: demo test lint typecheck pytest bench install clean services-up services-down services-status

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

typecheck: $(STAMP)
	$(VENV)/bin/mypy fusewatch streams models connectors tests benchmarks

pytest: $(STAMP)
	$(PY) -m pytest

# Runs the benchmarks (a few minutes), writes benchmarks/results.json and docs/benchmarks.md. The sink
# benchmark needs the local InfluxDB: the services this run started are stopped afterwards, as for `make test`.
bench: $(STAMP)
	@mkdir -p .cache
	$(SERVICES) up --record $(STARTED)
	@status=0; $(PY) -m benchmarks || status=$$?; $(SERVICES) down --only $(STARTED); exit $$status

# The services this run started (not those already running) are stopped afterwards, pass or fail.
test: $(STAMP)
	@mkdir -p .cache
	$(SERVICES) up --record $(STARTED)
	@status=0; $(MAKE) --no-print-directory lint typecheck pytest || status=$$?; \
	$(SERVICES) down --only $(STARTED); exit $$status

services-up:
	$(SERVICES) up

services-down:
	$(SERVICES) down

services-status:
	$(SERVICES) status

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
