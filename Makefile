# lmrec: `make demo` sets everything up and materializes the whole graph on the bundled demo data;
#        `make test` runs the test suite. Both work offline (PyPI only) on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test setup dev manifest benchmark experiments clean

$(BIN)/dagster: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# constraints.txt pins torch==2.13.0 (the local CPU wheel) and every other version we test with.
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(BIN)/dagster

setup: $(BIN)/dagster manifest
	mkdir -p $(DAGSTER_HOME)
	cp deploy/dagster.yaml $(DAGSTER_HOME)/dagster.yaml

manifest: $(BIN)/dagster
	cd dbt_project && ../$(BIN)/dbt parse --quiet --profiles-dir .

# The job the nightly schedule runs (every asset but the on-demand experiments), so the run shows on the refresh_all
# job page and the Overview timeline; run it again and it re-uses everything unchanged. `dagster job execute` runs it
# with the job's own executor; its SupersessionWarning points at `dg launch`, from dagster-dg-cli, not a dependency.
demo: setup
	PYTHONWARNINGS='ignore:Function `job_execute_command` is superseded' \
		$(BIN)/dagster job execute -m lmrec_assets.definitions -j refresh_all
	$(BIN)/python -m lmrec_assets.cli summary

test: setup
	$(BIN)/python -m pytest -q

dev: setup
	$(BIN)/dagster dev -w workspace.yaml

benchmark: setup
	$(BIN)/python benchmarks/pipeline_ml100k.py

experiments: setup
	$(BIN)/python benchmarks/experiments.py --profile $(or $(PROFILE),standard)

clean:
	rm -rf data/warehouse data/artifacts data/reports data/dagster_home dbt_project/target
