# fleetpilot: `make demo` runs the main job, `make test` runs every test. Both install first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The test suite needs Debian's chromium for the browser test (installed when missing and apt exists).

.PHONY: install test test-unit test-integration demo lint format bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch==2.13.0 is pinned in pyproject: pip takes this machine's local CPU build.
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

test: install
	$(PY) -m pytest -q -p no:cacheprovider tests

test-unit: install
	$(PY) -m pytest -q -p no:cacheprovider tests/unit

test-integration: install
	$(PY) -m pytest -q -p no:cacheprovider tests/integration

demo: install
	$(VENV)/bin/fleetpilot demo

lint: install
	$(VENV)/bin/ruff check serving collectors controlplane dashboards tests
	$(VENV)/bin/ruff format --check serving collectors controlplane dashboards tests

format: install
	$(VENV)/bin/ruff format serving collectors controlplane dashboards tests
	$(VENV)/bin/ruff check --fix serving collectors controlplane dashboards tests

clean:
	-$(VENV)/bin/fleetpilot router --stop
	-$(VENV)/bin/fleetpilot fleet down
	rm -rf var
