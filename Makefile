# Quick start: `make demo` (sandbox CRM -> full sync -> summary) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install demo test lint ui clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(INSTALLED)

install: $(INSTALLED)  ## Create .venv and install the project with its dev extras.

demo: install  ## Seed the sandbox CRM, run a full sync, print the summary.
	$(BIN)/acton demo

lint: install  ## ruff: lint and formatting.
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint  ## ruff, then the test suite (one worker per core: most tests wait on HTTP and SQL).
	$(BIN)/pytest -n auto --dist worksteal

ui: install  ## The Dagster UI on this workspace, with the same ACTON_HOME.
	$(BIN)/acton ui

clean:  ## Remove the local state (.acton/): sandbox data, warehouse, Dagster runs.
	rm -rf .acton
