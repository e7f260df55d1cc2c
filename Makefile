# The two commands a user needs: `make up` (run it) and `make test` (test it).
# Everything else here is a step of those two.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PY      := .venv/bin/python
STAMP   := .venv/.installed-stamp
BUF     := npx --no-install buf
# Breaking changes are checked against the main branch; on main itself (CI's
# fresh clone) against the previous commit, so a landing commit cannot break
# the contract it lands on. Override with BUF_AGAINST=...
BUF_AGAINST ?= $(shell scripts/buf_against.sh)

.PHONY: help install up test gen check-gen lint buf-lint buf-breaking typecheck infra infra-stop unit bench-store bench promtool

help:
	@echo "make up     - install and run the whole system on embedded defaults (data in ./data)"
	@echo "make test   - install, start the real servers the tests need, run every check and test"
	@echo "make gen    - regenerate gen/ from protos/"
	@echo "make bench  - every benchmark scenario, both stacks (BENCHMARKS.md)"

$(PY):
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip==25.3

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) scripts/checkout_paths.py
	touch $(STAMP)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

install: $(STAMP) node_modules/.package-lock.json

gen: install
	scripts/gen.sh

# Regenerates in place and fails if anything generated (gen/, the client package's
# betterproto code, the /docs page's Swagger UI files) differs from git.
GENERATED := gen/ clients/python/src/cqrs_users_client/proto/ gateway/docs/vendor/
check-gen: gen
	@if [ -n "$$(git status --porcelain -- $(GENERATED))" ]; then \
	  git status --porcelain -- $(GENERATED); \
	  echo "generated code is stale: run 'make gen' and commit the result"; exit 1; \
	fi

buf-lint: install
	$(BUF) lint

buf-breaking: install
	@if [ -n "$(BUF_AGAINST)" ]; then \
	  echo "buf breaking --against '$(BUF_AGAINST)'"; $(BUF) breaking --against '$(BUF_AGAINST)'; \
	else echo "buf breaking: no earlier contract to compare with"; fi

lint: install buf-lint buf-breaking
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: install
	$(PY) -m mypy

infra: install
	scripts/infra.sh start

infra-stop:
	scripts/infra.sh stop

# Debian's chromium for the console's browser tests (tests/e2e/console).
.PHONY: browser
browser:
	scripts/browser.sh

# evans, a Go gRPC client, for tests/e2e/test_evans.py (built once into .venv/bin).
.PHONY: evans
evans: install
	scripts/evans.sh

# Prometheus alert rules (deploy/prometheus): syntax and their unit tests, with
# Debian's promtool (installed on demand, like the browser).
promtool:
	scripts/promtool.sh

test: install lint check-gen typecheck promtool evans infra browser
	eval "$$(scripts/infra.sh env)"; $(PY) -m pytest

unit: install
	$(PY) -m pytest -m unit

up: $(STAMP)
	$(PY) -m bootstrap

# Prints appends/s against a bare gRPC echo ceiling, and time-travel latency
# (SQLite, and ClickHouse when the infra is up). Figures, not a test.
bench-store: install infra
	eval "$$(scripts/infra.sh env)"; $(PY) -m bench.store_bench

# Every scenario of issue 6 on the embedded and the production stack: prints a table
# and writes bench/results/latest.json (figures, not a test; see BENCHMARKS.md).
bench: install infra
	eval "$$(scripts/infra.sh env)"; $(PY) -m bench --stack both
