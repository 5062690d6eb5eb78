# AML Workspace — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PYTHON ?= $(if $(wildcard $(VENV)/bin/python),$(VENV)/bin/python,python3)
# Local copies of the datasets: AML_DATA_DIR if set, else ../shared/data beside the checkout when it exists.
AML_DATA_DIR ?= $(wildcard $(abspath ..)/shared/data)
export AML_DATA_DIR
export HF_HUB_OFFLINE ?= 1
export DVC_NO_ANALYTICS ?= 1
export MPLBACKEND ?= Agg

.PHONY: help setup run test test-fast lint format strip coverage hooks bench clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## Create .venv, install the pinned requirements and the helper library (editable)
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q -r requirements.txt -e .

run: ## Main job: execute every notebook (papermill) into build/, render HTML, print and write build/metrics.json
	$(PYTHON) -m aml.notebooks

test: ## Every test: unit, integration, server, container, git hook, and every notebook with nbmake
	$(PYTHON) -m pytest --nbmake --nbmake-timeout=1200 --durations=15

test-fast: ## Library and assignment tests without executing the notebooks
	$(PYTHON) -m pytest

lint: ## ruff (code and notebooks) and a check that notebooks are committed without outputs
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m pytest -q tests/test_workspace.py

format: ## Format code with ruff
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .

strip: ## Strip outputs from every notebook (nbstripout)
	git ls-files '*.ipynb' | xargs $(PYTHON) -m nbstripout

coverage: ## Coverage of assignment3/4 test.py (server process and container included) -> assignmentN/coverage.txt
	$(PYTHON) -m aml.covreport assignment3 assignment4

hooks: ## Install the git hooks (pre-commit framework incl. the main-branch tests; standalone copy otherwise)
	$(PYTHON) -m aml.hooks install

bench: ## Load benchmark: gunicorn (workers = cores), 1 and 16 clients, vs in-process score()
	$(PYTHON) assignment3/benchmark.py

clean: ## Remove build outputs (executed notebooks, reports, metrics, test artefacts)
	rm -rf build .pytest_cache .ruff_cache .coverage .coverage.*
