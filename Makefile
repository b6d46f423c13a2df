# fin-mlops — every command a newcomer needs. `make demo` and `make test` work from a fresh clone:
# they create .venv when missing and install the project (with uv, ~25 s; pip would take ~2 min).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export FIN_HOME ?= $(CURDIR)/.fin_home
export DAGSTER_HOME ?= $(FIN_HOME)/dagster
# Dagster writes a backfill run's events in batches (fin_resources/locations.py, DAGSTER_EVENT_SETTINGS).
export DAGSTER_EVENT_BATCH_SIZE ?= 100
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS ?= true
# Two pytest workers (the slow tests wait on subprocesses and servers as much as on the CPU);
# a test file runs on one worker (--dist loadfile). PYTEST_ARGS= for one process.
PYTEST_ARGS ?= -n 2 --dist loadfile
# This machine sets PYTHONDONTWRITEBYTECODE; bytecode is compiled at install time instead.
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup demo demo-long demo-postgres ui test lint bench clean serve

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.5,<1"
	$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/fin-mlops demo

# the demo, then on through the drift's follow-up retraining, its approval and recovery
demo-long: setup
	$(BIN)/fin-mlops demo --long

# the same story with every store on the local PostgreSQL (fresh fin_demo_* databases each run)
demo-postgres: setup
	$(BIN)/fin-mlops demo --postgres

serve: setup
	$(BIN)/fin-mlops serve --port $${FIN_SERVE_PORT:-8080}

ui: setup
	$(BIN)/fin-mlops init > /dev/null
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $${FIN_UI_PORT:-3000}

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy fin_assets fin_resources fin_sensors

test: setup lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python bench/bench_simulator.py
	$(BIN)/python bench/bench_features.py
	$(BIN)/python bench/bench_training.py
	$(BIN)/python bench/bench_quality.py
	$(BIN)/python bench/bench_validation.py
	$(BIN)/python bench/bench_monitoring.py
	$(BIN)/python bench/bench_drift_detection.py
	$(BIN)/python bench/bench_followup_recovery.py
	$(BIN)/python bench/bench_realtime.py
	$(BIN)/python bench/bench_service.py
	$(BIN)/python bench/bench_cli.py

# The embedded audit store's witness lives outside .fin_home (so that deleting one leaves the other,
# and verification says so); a clean start removes both.
clean:
	-@[ -x $(BIN)/python ] && rm -fv "$$($(BIN)/python -c 'from pathlib import Path; from fin_resources.locations import default_witness_path as w; print(w("sqlite:///" + str(Path(".fin_home").resolve() / "audit.db")))')"
	rm -rf .fin_home .pytest_cache .mypy_cache .ruff_cache dbt_project/target dbt_project/logs
