# The two commands of the README:
#   make book   build the HTML book from the executed chapters in book/  -> _build/html/
#   make test   run every test: unit, pipeline, nbval baselines, browser
# Both create the virtual environment .venv on first use (a stamp file makes later runs fast).

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.qmu-installed
# Installed first and on its own, so that pip takes this exact release (a local CPU wheel
# where one lies on disk) instead of resolving a newer multi-GB build for the project.
# E.g. `make TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"`.
TORCH ?= torch==2.13.0
CHROMIUM ?= /usr/bin/chromium
PYTEST_ARGS ?=
NBVAL_ARGS := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

.PHONY: help install book test browser-deps baselines clean

help:
	@echo "make book       build the HTML book (_build/html/index.html)"
	@echo "make test       run the whole test suite (installs Debian's chromium if missing)"
	@echo "make install    only create .venv and install the project"
	@echo "make baselines  re-make the nbval baselines tests/nbval/*.ipynb"
	@echo "make clean      remove _build/ and test-artifacts/"

# constraints.txt pins every package to the versions the committed book and the nbval
# baselines were produced with (regenerate: pip freeze --exclude-editable > constraints.txt).
$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "error: no python3.11 or python3 found" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install -c constraints.txt -e ".[dev]"
	touch $@

install: $(STAMP)

book: $(STAMP)
	$(BIN)/python -m qmu_core build

browser-deps:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ]; then sudo=; \
	  elif command -v sudo >/dev/null 2>&1; then sudo=sudo; \
	  else echo "error: $(CHROMIUM) is missing and apt-get needs root: apt-get install chromium" >&2; exit 1; fi; \
	  echo "installing Debian's chromium for the browser test"; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium >/dev/null; \
	fi

test: $(STAMP) browser-deps
	$(BIN)/python -m pytest $(NBVAL_ARGS) tests $(PYTEST_ARGS)

baselines: $(STAMP)
	$(BIN)/python -m qmu_core baselines

clean:
	rm -rf _build test-artifacts
