# The two set-up commands (README): `make main` runs the whole lifecycle on embedded defaults,
# `make test` runs the test suite. Both create and use .venv themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed-stamp
WORK ?= work

.PHONY: main test venv bench clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

main: $(STAMP)
	bash scripts/main.sh $(WORK)

test: $(STAMP)
	bash scripts/ensure_postgres.sh
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider --durations=15 tests

bench: $(STAMP)
	$(VENV)/bin/python bench/run_all.py

clean:
	rm -rf $(WORK) mlruns mlflow.db
