# Quick start: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   := build/demo
EXPORT_BACKENDS := 'pysigma-backend-elasticsearch>=2.1,<3' 'pysigma-backend-loki>=0.15,<0.16'

.PHONY: demo test lint typecheck unit venv clean test-deps

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "k3watch needs Python 3.11 or newer (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the project metadata changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# The Sigma backends used by `k3watch rules export` still declare pySigma < 2 although
	@# they work with it; install them without their dependency pins (see docs/export.md).
	$(BIN)/python -m pip install --quiet --no-deps $(EXPORT_BACKENDS)
	@touch $@ $(VENV)/.installed

venv: $(VENV)/.installed

# Start a k3watch server on the embedded store and replay a generated K3s cluster (a learning
# week, then an afternoon with seven attacks) through its ingest API; alerts appear as they fire.
demo: $(VENV)/.installed
	@mkdir -p $(DEMO)
	$(BIN)/k3watch demo --data-dir $(DEMO)/data

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# Debian packages some tests drive for real (systemd-journal-remote builds journal files).
test-deps:
	bash scripts/install-test-deps.sh

unit: $(VENV)/.installed-dev test-deps
	$(BIN)/python -m pytest -n auto -q

test: lint typecheck unit

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
