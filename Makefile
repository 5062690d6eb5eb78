# AML Workspace — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PYTHON := $(VENV)/bin/python
# The virtual environment is (re)built when it is missing or when what it was built from changed: the stamp file is
# older than requirements.txt or pyproject.toml. `make run` and `make test` depend on it, so a fresh clone needs no
# other step.
STAMP := $(VENV)/.aml-installed
# Local copies of the datasets: AML_DATA_DIR if set, else ../shared/data beside the checkout when it exists.
AML_DATA_DIR ?= $(wildcard $(abspath ..)/shared/data)
export AML_DATA_DIR
export HF_HUB_OFFLINE ?= 1
export DVC_NO_ANALYTICS ?= 1


.PHONY: help setup run test test-fast docs lint format strip coverage hooks bench bench-scale clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(STAMP) ## Create or refresh .venv (pinned requirements + the library, editable); run and test do it too

$(STAMP): requirements.txt pyproject.toml
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt -e '.[all]'
	touch $@

run: $(STAMP) ## Main job: execute every notebook (papermill) into build/, render HTML, print and write build/metrics.json
	$(PYTHON) -m aml.devtools.notebooks

test: $(STAMP) ## Every test: unit, data, model, integration, server, container, git hook, docs site, every notebook (nbmake)
	$(PYTHON) -m pytest --nbmake --nbmake-timeout=1200 --durations=15 -n 3 --dist loadfile

test-fast: $(STAMP) ## Library and assignment tests without executing the notebooks
	$(PYTHON) -m pytest

docs: $(STAMP) ## Documentation site (Sphinx, warnings are errors, always re-read: -E; needs graphviz) -> build/docs/html
	$(PYTHON) -m sphinx -W --keep-going -E -b html -d build/docs/doctrees docs build/docs/html

lint: $(STAMP) ## ruff (code and notebooks) and a check that notebooks are committed without outputs
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m pytest -q tests/test_workspace.py

format: $(STAMP) ## Format code with ruff
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .

strip: $(STAMP) ## Strip outputs from every notebook (nbstripout)
	git ls-files '*.ipynb' | xargs $(PYTHON) -m nbstripout

coverage: $(STAMP) ## Coverage of assignment3/4 test.py (server process and container included) -> assignmentN/coverage.txt
	$(PYTHON) -m aml.devtools.covreport assignment3 assignment4

hooks: $(STAMP) ## Install the git hooks (pre-commit framework incl. the main-branch tests; standalone copy otherwise)
	$(PYTHON) -m aml.devtools.hooks install

bench: $(STAMP) ## Benchmarks: assignment3's service (1 and 16 clients) and project/'s (lean scorer, batch /score, wrk, slow clients)
	$(PYTHON) assignment3/benchmark.py
	$(PYTHON) project/benchmark.py
	$(PYTHON) project/bench_slow_clients.py

bench-scale: $(STAMP) ## Spark scaling: 1,000,000 messages, one process vs local[1]/[2] vs a standalone cluster of 1 and 2 workers; the search
	$(PYTHON) project/scale/spark_bench.py

clean: ## Remove build outputs (executed notebooks, reports, metrics, test artefacts)
	rm -rf build .pytest_cache .ruff_cache .coverage .coverage.*
