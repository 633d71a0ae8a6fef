# kamml: every target creates the environment first when it is missing, so each is one command on a
# fresh machine (Python >= 3.11, pip, gcc, Java 17).
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help setup demo test test-fast lint format bench lock clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# The demo needs only the runtime dependencies (quicker on a fresh machine); tests add dev and spark.
$(RUNTIME): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	touch $(RUNTIME)

$(STAMP): $(RUNTIME)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,spark]'
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install kamml with its extras (pinned by constraints.txt)

demo: $(RUNTIME) ## the main job on a synthetic world: train (MLflow), score, allocate, HTML report
	$(BIN)/kamml run --config configs/default.yaml

test: $(STAMP) ## run the whole test suite (unit, slow end-to-end and Spark tests)
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: $(STAMP) ## run only the fast unit tests
	$(BIN)/pytest -m "not slow and not spark" $(PYTEST_ARGS)

lint: $(STAMP) ## ruff (lint + format check) and mypy, as configured in pyproject.toml
	$(BIN)/ruff check src tests benchmarks notebooks examples
	$(BIN)/ruff format --check src tests benchmarks notebooks examples
	$(BIN)/mypy

format: $(STAMP) ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix src tests benchmarks notebooks examples
	$(BIN)/ruff format src tests benchmarks notebooks examples

bench: $(STAMP) ## run the speed and quality benchmarks under benchmarks/ (results in the README)
	@for b in benchmarks/[!_]*.py; do n=$$(basename $$b .py); echo "== $$b"; \
		$(BIN)/python $$b $$( [ $$n = spark_score ] && echo "$(BENCH_ARGS_spark_score)" ) || exit 1; done
# benchmarks/spark_score.py defaults to the issue's 10M accounts (601-672 s, about 11 minutes, on 2 cores: docs/spark.md):
# `make bench` runs it at 1M; run it by hand with --accounts 10000000 on a bigger machine.
BENCH_ARGS_spark_score := --accounts 1000000

lock: ## refresh constraints.txt from a fresh resolution of pyproject.toml (then run make test)
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet '.[dev,spark]'
	.lock-venv/bin/python -m pip freeze --exclude kamml | grep -v '^-e' > constraints.txt
	rm -rf .lock-venv
	@echo "constraints.txt refreshed; run 'make test' before committing it"

clean: ## remove the environment, caches and generated demo outputs
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis src/kamml.egg-info data/demo data/cdnow outputs \
		mlruns.db mlruns.db.kamml-lock mlflow.db mlartifacts build scores.parquet allocation.csv budget.csv budget.png
	find src -name __pycache__ -type d -prune -exec rm -rf {} +  # numba's compiled kernels are cached there too
