# kubeline: `make demo` runs the whole lifecycle locally, `make test` runs the tests.
# Each target builds the venv from the lock file on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MLFLOW_DISABLE_TELEMETRY := true
export BENTOML_DO_NOT_TRACK := true
export DO_NOT_TRACK := 1

.PHONY: venv demo test test-unit test-integration test-e2e lint bench compile check-compiled lock clean clean-state

venv: $(STAMP)

# uv installs the locked set in seconds; it is itself pinned by hash in requirements/bootstrap.txt.
$(STAMP): requirements/dev.txt requirements/checkov.txt requirements/bootstrap.txt pyproject.toml
	@# A venv made without ensurepip (Debian without python3-venv) has no pip: start over.
	@$(BIN)/python -m pip --version >/dev/null 2>&1 || { rm -rf $(VENV); \
	  $(PYTHON) -m venv $(VENV) || { echo "python3 -m venv failed: on Debian/Ubuntu run" \
	  "'apt-get install python3-venv'"; rm -rf $(VENV); exit 1; }; }
	$(BIN)/python -m pip install -q --require-hashes -r requirements/bootstrap.txt
	# Bytecode compiled once here: with PYTHONDONTWRITEBYTECODE set (as on CI) every process
	# would otherwise recompile mlflow and scikit-learn from source (12.5 s -> 4.9 s per import).
	$(BIN)/uv pip sync -q --compile-bytecode --python $(BIN)/python requirements/dev.txt
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@# checkov (the chart's scanner) pins a boto3 the dev lock cannot hold: a venv of its own.
	$(BIN)/uv venv -q --allow-existing --python $(BIN)/python $(VENV)/tools/checkov
	$(BIN)/uv pip sync -q --python $(VENV)/tools/checkov/bin/python requirements/checkov.txt
	touch $(STAMP)

demo: venv
	$(BIN)/kubeline demo

test: venv lint check-compiled
	$(BIN)/pytest -q tests/unit
	$(BIN)/pytest -q -m integration tests/integration
	@$(MAKE) --no-print-directory test-e2e

test-unit: venv
	$(BIN)/pytest -q tests/unit

test-integration: venv
	$(BIN)/pytest -q -m integration tests/integration

# The e2e tests need a container engine; say plainly when they cannot run.
test-e2e: venv
	@if ! ls tests/e2e/test_*.py >/dev/null 2>&1; then \
	  echo "e2e: SKIPPED (no container tests yet)"; \
	elif ! docker info >/dev/null 2>&1; then \
	  echo "e2e: SKIPPED (no container engine reachable)"; \
	else $(BIN)/pytest -q -m e2e tests/e2e; fi

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

compile: venv
	$(BIN)/kubeline compile

# The committed specs must be what the code compiles to today.
check-compiled: venv
	$(BIN)/kubeline compile --check

bench: venv
	$(BIN)/python bench/features.py

# Re-lock after changing dependencies in pyproject.toml.
# The pipeline image's lock is the core alone, the serving and monitor images' the names in
# requirements/serving.in and monitor.in (no kfp), all at exactly the dev lock's versions.
lock: venv
	$(BIN)/uv pip compile pyproject.toml --extra dev --constraint requirements/pins.txt \
	  --generate-hashes --python-version 3.11 --no-header -q -o requirements/dev.txt
	$(BIN)/uv pip compile pyproject.toml --constraint requirements/dev.txt \
	  --generate-hashes --python-version 3.11 --no-header -q -o requirements/pipeline.txt
	$(BIN)/uv pip compile requirements/checkov.in \
	  --generate-hashes --python-version 3.11 --no-header -q -o requirements/checkov.txt
	$(BIN)/uv pip compile requirements/serving.in --constraint requirements/dev.txt \
	  --generate-hashes --python-version 3.11 --no-header -q -o requirements/serving.txt
	$(BIN)/uv pip compile requirements/monitor.in --constraint requirements/dev.txt \
	  --generate-hashes --python-version 3.11 --no-header -q -o requirements/monitor.txt

# The venv and build files; the state folder (.kubeline: the local registry) is kept.
clean:
	rm -rf $(VENV) build *.egg-info

# Also the local state: registry, promotion history, runs. Asks nothing: think first.
clean-state:
	rm -rf .kubeline
