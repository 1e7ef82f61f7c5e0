# fusewatch — `make demo` runs the embedded demo, `make test` runs every check. Both install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_ARGS ?=

.PHONY: demo test lint typecheck unit install clean

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
	$(VENV)/bin/mypy fusewatch streams models connectors tests

unit: $(STAMP)
	$(PY) -m pytest

test: lint typecheck unit

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
