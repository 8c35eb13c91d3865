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
SHOTS           ?= screenshots
SHOT_HEIGHT     ?= 7000

.PHONY: help setup test check-sync nbtest pytest train lab mlflow-ui bench bench-smoke screenshots clean

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

book: setup  ## run every lesson notebook and keep its outputs (tables, plots) in the notebook, as the book shows them
	$(BIN)/nbdev-test --n-workers 2 --save
	$(BIN)/nbdev-clean

pytest: setup  ## cross-module tests (CLI, jobs end to end, bad-input corpus), on 2 xdist workers (a module per worker)
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=25

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

screenshots: setup  ## PNGs of every report (tiny runs) in screenshots/, to look at before calling a report done (headless Chromium)
	@command -v chromium >/dev/null || { if [ "$$(id -u)" = 0 ]; then echo "installing Debian's chromium ..."; apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "make screenshots needs Chromium: run 'sudo apt-get install -y chromium' (Debian/Ubuntu) and try again"; exit 1; fi; }
	@mkdir -p $(SHOTS)/runs
	@R=$(SHOTS)/runs; \
	[ -d $$R/synth/attrition ] || $(BIN)/hr-ml train attrition --employees 1500 --tenants 8 -p n_splits=3 -p n_boot=30 --no-track --out $$R/synth; \
	if [ ! -d $$R/export/attrition ]; then \
	  $(BIN)/python -c "from hr_ml.tabular import demo_export; demo_export().write_csv('$$R/export.csv')"; \
	  printf 'id: EmployeeNumber\ntarget: Attrition\npositive: "Yes"\nprotected: [Age, Gender, MaritalStatus]\ndrop: [DailyRate, HourlyRate, MonthlyRate]\n' > $$R/mapping.yaml; \
	  $(BIN)/hr-ml train attrition --data $$R/export.csv --mapping $$R/mapping.yaml -p n_splits=3 -p n_repeats=1 -p n_boot=30 --no-track --out $$R/export; fi; \
	[ -d $$R/pay/pay_equity ] || $(BIN)/hr-ml report pay-equity -p employees=3000 -p tenants=10 -p n_boot=30 --out $$R/pay; \
	[ -d $$R/mon/monitor ] || $(BIN)/hr-ml monitor --model "$$(ls -d $$R/synth/attrition/*/ | tail -1)" -p employees=1500 -p tenants=8 -p shift=pay_freeze -p n_boot=30 --out $$R/mon || [ $$? = 1 ]; \
	for f in $$(ls $$R/synth/attrition/*/report.html $$R/synth/attrition/*/model_card.html $$R/export/attrition/*/report.html $$R/pay/pay_equity/*/report.html $$R/mon/monitor/*/report.html); do \
	  run=$$(basename $$(dirname $$f)); kind=$$(basename $$(dirname $$(dirname $$f))); src=$$(basename $$(dirname $$(dirname $$(dirname $$f)))); \
	  png=$(SHOTS)/$$src-$$kind-$$(basename $$f .html).png; \
	  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --screenshot=$$png --window-size=1280,$(SHOT_HEIGHT) "file://$$(realpath $$f)" 2>/dev/null; \
	  echo "$$png  ($$kind run $$run)"; done

clean:  ## remove the environment and generated runs
	rm -rf $(VENV) $(TOOLS) $(RUNS) $(SHOTS) _docs _proc
