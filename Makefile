# exchange-watch: `make demo` and `make test` install what is missing, then run.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: help install system-deps test lint demo up ha rules bench clean

help:
	@echo "make demo   run the whole stack against the simulator with a scripted incident"
	@echo "make test   run the test suite (real Prometheus, Alertmanager, promtool, amtool)"
	@echo "make up     run the stack against the real exchanges until Ctrl-C"
	@echo "make ha     run the high-availability topology (2 locations, 2 Prometheus, VictoriaMetrics,"
	@echo "            2 clustered Alertmanagers, 2 receivers on PostgreSQL) against the simulator"
	@echo "make lint   ruff check, ruff format check and mypy"
	@echo "make rules  render prometheus/thresholds.yml into the rules, rule tests and dashboards"
	@echo "make bench  run benchmarks/ (~5 h with the detection runs, quiet machine): docs/benchmarks.md + benchmarks/results/"

system-deps:
	@PYTHON=$(PYTHON) bash deploy/install-system-deps.sh

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: system-deps $(STAMP)

test: install
	$(PY) -m pytest

# mypy checks the packages listed under [tool.mypy] files in pyproject.toml.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

demo: install
	$(PY) deploy/run_stack.py demo

up: install
	$(PY) deploy/run_stack.py up

ha: install
	$(PY) deploy/run_stack.py ha

bench: install
	@PYTHON=$(PYTHON) bash deploy/install-system-deps.sh bench
	$(PY) benchmarks/run.py --runs $(or $(RUNS),3)

rules: $(STAMP)
	$(PY) prometheus/render_thresholds.py
	$(PY) deploy/ha_configs.py

clean:
	rm -rf run .pytest_cache .ruff_cache
