# Every target that runs code first makes sure .venv exists and matches requirements.txt.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install train test test-fast lint format bench clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt 2>&1 | sed '/is ignored: it is neither/d'
	$(PY) -c "import torch, gymnasium, hydra, wandb, mujoco; print('installed: torch', torch.__version__)"
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install requirements.txt

train: $(STAMP) ## Train the default run (DQN on CartPole-v1)
	$(PY) train.py

test: $(STAMP) ## Run the whole test suite, learning tests included (what CI runs)
	$(PY) -m pytest -q

test-fast: $(STAMP) ## Run the tests without the slow learning tests
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP) ## Lint with ruff
	$(VENV)/bin/ruff check .

bench: $(STAMP) ## Speed benchmark against Stable-Baselines3 (installs requirements-bench.txt); see docs/results.md
	$(PY) -m pip install --quiet -r requirements-bench.txt 2>&1 | sed '/is ignored: it is neither/d'
	$(PY) scripts/bench.py --threads 2,1

format: $(STAMP) ## Format with ruff
	$(VENV)/bin/ruff format .

clean: ## Remove caches and run outputs (runs/, multirun/, outputs/), keep .venv
	rm -rf runs multirun outputs .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
