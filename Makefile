# Two commands for a fresh machine:
#   make demo   set up, start the local profile, run one erasure job over HTTP, fetch its artifacts
#   make test   set up, start Postgres and Redis if needed, lint, run the whole test suite
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
# Pinned and installed first: an unpinned `torch` (or one pulled in by diffusers) would resolve to
# a multi-GB CUDA build. GPU hosts use Dockerfile.worker, which installs a CUDA build on purpose.
TORCH_VERSION ?= 2.13.0
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help setup services browsers tools lint test demo serve

help:
	@echo "make demo      set up, run the local service and one demo job end to end [PORT=8000]"
	@echo "make test      set up, start services, lint, run every test"
	@echo "make serve     the local profile (API + worker, SQLite, data in ./var) until Ctrl-C"
	@echo "make setup | services | browsers | lint"

setup: $(INSTALLED)

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

services:
	bash scripts/ensure_services.sh

# Headless Chromium and its driver for the console's browser tests (tests/ui).
browsers:
	bash scripts/ensure_browsers.sh

# docker-compose.yml against the Compose specification's JSON schema (bundled with
# check-jsonschema, a dev dependency in .venv): no Docker, no system package, no network.
tools: setup
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: setup services browsers tools lint
	$(BIN)/pytest -q $(PYTEST_ARGS)

# make demo PORT=8000 to choose the API's port (default: a free one)
demo: setup
	$(BIN)/python scripts/demo.py $(if $(PORT),--port $(PORT))

serve: setup
	$(BIN)/eraser serve
