# hr_ml — the whole setup is `make train` or `make test` on a fresh clone (python3 >= 3.11, git, make).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON      ?= python3
UV_VERSION  := 0.13.9
TOOLS       := .tools
UV          := $(TOOLS)/bin/uv
VENV        := .venv
BIN         := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
export MPLBACKEND := Agg
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION := false

TRAIN_EMPLOYEES ?= 20000
TRAIN_TENANTS   ?= 120
RUNS            ?= runs

.PHONY: help setup test check-sync nbtest pytest train lab mlflow-ui bench bench-smoke clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	@echo "bootstrapping uv $(UV_VERSION) into $(TOOLS)/"
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "hr_ml needs python3 >= 3.11")'
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --locked --compile-bytecode --python $(PYTHON)
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "hr_ml (.venv)" >/dev/null
	@touch $@

setup: $(VENV)/.synced  ## create .venv from uv.lock (bootstraps uv)

check-sync: setup  ## nbdev-clean and nbdev-export must leave no diff
	@$(BIN)/nbdev-clean
	@$(BIN)/nbdev-export
	@if [ -n "$$(git status --porcelain -- nbs hr_ml)" ]; then \
	  echo "ERROR: notebooks and hr_ml/ are out of sync (nbdev-clean/nbdev-export changed files):"; \
	  git status --short -- nbs hr_ml; \
	  echo "Fix: run 'make setup && .venv/bin/nbdev-clean && .venv/bin/nbdev-export', review and commit the result."; \
	  exit 1; fi
	@echo "nbdev-clean and nbdev-export: no diff"

nbtest: setup  ## run every notebook's lesson cells
	$(BIN)/nbdev-test --n-workers 2 --timing

pytest: setup  ## cross-module tests (CLI, jobs end to end, bad-input corpus)
	$(BIN)/python -m pytest

test: check-sync nbtest pytest  ## all checks: sync, nbdev-test, pytest

train: setup  ## train the attrition model on the embedded synthetic HRIS
	$(BIN)/hr-ml train attrition --employees $(TRAIN_EMPLOYEES) --tenants $(TRAIN_TENANTS) --out $(RUNS)

lab: setup  ## JupyterLab on the project's kernel, bound to 127.0.0.1
	@if [ "$$(id -u)" = 0 ]; then echo "running as root: adding --allow-root (JupyterLab refuses root otherwise)"; fi
	$(BIN)/jupyter lab --ip 127.0.0.1 --no-browser --notebook-dir nbs $$([ "$$(id -u)" = 0 ] && echo --allow-root || true)

mlflow-ui: setup  ## MLflow UI on 127.0.0.1 for the embedded tracking store (mlruns/)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false MLFLOW_DISABLE_TELEMETRY=true $(BIN)/mlflow ui --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///mlruns/mlflow.db --default-artifact-root mlruns/artifacts

bench: setup  ## full benchmarks at platform scale (minutes; writes bench/results/)
	$(BIN)/python bench/run_all.py

bench-smoke: setup  ## seconds-long version of every benchmark
	$(BIN)/python bench/run_all.py --smoke --out /tmp/hr_ml_bench_smoke

clean:  ## remove the environment and generated runs
	rm -rf $(VENV) $(TOOLS) $(RUNS) _docs _proc
