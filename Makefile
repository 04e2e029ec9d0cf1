# CardioMesh — the two commands a newcomer needs are `make demo` and `make test`.
#
#   make venv     create .venv (python3 -m venv) and install '.[dev]' when pyproject.toml changed
#   make demo     run the whole system on this machine      (DEMO_ARGS="--help" etc.)
#   make test     the test suite                            (PYTEST_ARGS="-k fusion -x" etc.)
#   make bench    every bench/*.py (not _helpers), alert_latency first; results in bench/results/
#                 (fl_accuracy, its seed spread included, took 55 min here as parallel processes: see its --parts;
#                 fl_scale, one round of 1,000 watches, about 15 min, most of it the watches' offline precompute;
#                 fl_additive about 20 min, fl_trees about 22 min, fl_population 17 min;
#                 fl_trees_bus, the DP trees over the broker, about 3.5 min; fl_forest, the DP forest, 11 min,
#                 and fl_forest_bus, over the broker, 13 min;
#                 bench/_trees_loro.py and bench/_tree_cost.py, the DS1 choices fl_trees reads, and
#                 bench/_dp_forest.py --protocol loro, the one fl_forest reads, are studies run apart: 28, about
#                 15 and 19 min)
#   make lint     ruff check + mypy

SHELL       := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON3     ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.installed
DEMO_ARGS   ?=
PYTEST_ARGS ?=
MYPY_PATHS  := shared watch_agent phone_agent edge_hub cloud_expert cardiomesh bench tests

# bench/alert_latency.py first, then every other bench/*.py that exists (sorted).
BENCH_FIRST  := bench/alert_latency.py
BENCH_SCRIPTS = $(wildcard $(BENCH_FIRST)) $(sort $(filter-out $(BENCH_FIRST) bench/_%,$(wildcard bench/*.py)))

.PHONY: help venv demo test bench lint

help:
	@echo "targets: venv demo test bench lint   (vars: DEMO_ARGS, PYTEST_ARGS)"

venv: $(STAMP)

# Reinstall only when pyproject.toml is newer than the stamp. pip (not uv): torch==2.13.0 is
# a CPU wheel that pip resolves from the machine's local wheel index.
$(STAMP): pyproject.toml
	@test -x $(PY) || { echo "creating $(VENV)"; $(PYTHON3) -m venv $(VENV); }
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

demo: venv
	$(VENV)/bin/cardiomesh demo $(DEMO_ARGS)

# pytest's exit 5 (no tests collected) is a failure too, said out loud.
test: venv
	@echo "$(PY) -m pytest -q $(PYTEST_ARGS)"
	@$(PY) -m pytest -q $(PYTEST_ARGS) || { rc=$$?; \
		if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$rc; }

bench: venv
	@scripts='$(strip $(BENCH_SCRIPTS))'; \
	if [ -z "$$scripts" ]; then echo "no bench/*.py yet"; exit 1; fi; \
	for script in $$scripts; do \
		echo "== $$script"; \
		$(PY) $$script; \
	done

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy $(wildcard $(MYPY_PATHS))
