# fleetpilot: `make demo` runs the main job, `make test` runs every test. Both install first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The test suite needs Debian's chromium for the browser test (installed when missing and apt exists).
CHROMIUM_STAMP := $(VENV)/.chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install browser test test-unit test-integration test-e2e demo lint format bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch==2.13.0 is pinned in pyproject: pip takes this machine's local CPU build.
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Debian's chromium for tests/e2e (driven by the PyPI playwright package from the dev extra; no
# browser download). Installed with apt-get (sudo when not root) when `chromium` is missing; where
# that is impossible the browser test skips and says why.
$(CHROMIUM_STAMP): | $(STAMP)
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	      || echo "warning: could not install chromium; the browser test will be skipped"; \
	  else echo "warning: chromium missing and no apt-get; the browser test will be skipped"; fi; }
	@if command -v chromium >/dev/null 2>&1; then touch $@; fi

browser: $(CHROMIUM_STAMP)

test: install browser
	$(PY) -m pytest -q -p no:cacheprovider tests

test-unit: install
	$(PY) -m pytest -q -p no:cacheprovider tests/unit

test-integration: install
	$(PY) -m pytest -q -p no:cacheprovider tests/integration

test-e2e: install browser
	$(PY) -m pytest -q -p no:cacheprovider tests/e2e

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
