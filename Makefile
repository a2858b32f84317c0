# Handoff: one entry point for every routine task. `make help` lists them.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .cache/uv-venv/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
KAFKACTL := $(PYTHON) deploy/kafka/kafkactl.py
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON ?= $(shell command -v python3.11 || command -v python3)
# Byte-compile at install time and let Python keep .pyc files: every service process and
# test subprocess would otherwise spend seconds of CPU compiling its imports on start.
export UV_COMPILE_BYTECODE := 1
unexport PYTHONDONTWRITEBYTECODE
PYTEST_ARGS ?=

.PHONY: help setup test-tools browser-tools docs-tools venv kafka-jars node-tools kafka-up kafka-down kafka-status cluster-up cluster-down \
        test test-later test-unit lint fmt asyncapi provision up down bench bench-quick bench-venv bench-tools chaos chaos-short clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(UV):
	@echo "==> installing uv $(UV_VERSION) into .cache/uv-venv"
	@$(PYTHON) -m venv .cache/uv-venv
	@.cache/uv-venv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock libs/events/pyproject.toml $(wildcard services/*/pyproject.toml) sim/pyproject.toml
	@echo "==> syncing the virtual environment (.venv) from uv.lock"
	@$(UV) sync --all-packages --locked --quiet
	@touch $@

venv: $(VENV)/.synced ## create/refresh .venv from uv.lock

kafka-jars: ## fetch the Kafka jars from Maven Central (once)
	@$(KAFKACTL) fetch

tools/asyncapi/node_modules/.installed: tools/asyncapi/package.json tools/asyncapi/package-lock.json
	@echo "==> installing the AsyncAPI parser (npm ci)"
	@cd tools/asyncapi && npm ci --no-audit --no-fund --silent
	@touch $@

node-tools: tools/asyncapi/node_modules/.installed

tools/browser/node_modules/.installed: tools/browser/package.json tools/browser/package-lock.json
	@echo "==> installing playwright-core for the browser tests (npm ci)"
	@cd tools/browser && npm ci --no-audit --no-fund --silent
	@touch $@

browser-tools: tools/browser/node_modules/.installed ## headless Chromium (Debian package) + playwright-core
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "==> installing chromium from the distribution (apt-get, ~2 min)"; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium; \
	fi

docs-tools: ## kcat (Debian package), used by the guides' executed examples (tests/docs)
	@if ! command -v kcat >/dev/null; then \
	  echo "==> installing kcat from the distribution (apt-get)"; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq kcat; \
	fi

setup: venv kafka-jars ## what `make up` needs: .venv and the Kafka jars

test-tools: setup node-tools browser-tools docs-tools ## plus what the test suite needs: AsyncAPI parser, Chromium, kcat

kafka-up: kafka-jars ## start the local single-node broker (127.0.0.1:19092)
	@$(KAFKACTL) start --wait 120

kafka-down: ## stop the local broker
	@$(KAFKACTL) stop

kafka-status: ## local brokers: running or not, ports, logs
	@$(KAFKACTL) status

cluster-up: kafka-jars ## start the 3-broker cluster (127.0.0.1:29092-29094)
	@$(KAFKACTL) start --cluster --wait 180

cluster-down: ## stop the 3-broker cluster
	@$(KAFKACTL) stop --cluster

test: test-tools ## the whole suite against a real broker (starts one if needed), short chaos set included
	@$(PY) -m pytest $(PYTEST_ARGS)

DAYS ?= 45
test-later: test-tools ## the whole suite with every Python clock DAYS ahead (default 45): finds tests that only pass until a date
	@$(PY) tests/support/clock_shift/handoff_clock_shift.py install
	@echo "==> every Python clock of this run is $(DAYS) days ahead (brokers and kcat keep real time)"
	@HANDOFF_TEST_DAYS_LATER=$(DAYS) $(PY) -m pytest $(PYTEST_ARGS)

chaos-short: test-tools ## only the short chaos set (one named test per fault) on the 3-broker cluster
	@$(PY) -m pytest -m chaos tests/chaos $(PYTEST_ARGS)

test-unit: venv ## only the fast tests that need no broker
	@$(PY) -m pytest -m "not kafka and not cluster" $(PYTEST_ARGS)

lint: venv ## ruff format --check, ruff check, mypy --strict, import contracts
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/mypy libs/events/src
	@$(VENV)/bin/lint-imports

fmt: venv ## format and autofix
	@$(VENV)/bin/ruff format .
	@$(VENV)/bin/ruff check --fix .

asyncapi: venv ## regenerate docs/asyncapi.json from the contracts
	@$(VENV)/bin/handoff asyncapi -o docs/asyncapi.json

provision: venv kafka-up ## create/update all topics on $$KAFKA_BOOTSTRAP_SERVERS
	@$(VENV)/bin/handoff topics provision

up: setup ## the whole delivery world: broker, topics, 6 services, sims (Ctrl-C stops; UP_ARGS=...)
	@$(PY) -m handoff_sim.up $(UP_ARGS)

down: ## stop everything `make up` started (SIGTERM, then SIGKILL stragglers)
	@$(PY) -m handoff_sim.up --down

# Benchmarks run on a broker of their own (127.0.0.1:31092, data in .run/bench/kafka), never
# the test broker. The `bench` dependency group (py-spy) is synced here because a plain
# `uv sync` drops it; the Quix Streams peer gets its own venv (see bench/README.md).
BENCH_ARGS ?=
bench-venv: $(VENV)/.synced
	@$(UV) sync --all-packages --locked --group bench --quiet

bench-tools: ## wrk (Debian package), the webhook benchmark's load generator
	@if ! command -v wrk >/dev/null; then \
	  echo "==> installing wrk from the distribution (apt-get)"; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq wrk; \
	fi

bench: bench-venv bench-tools kafka-jars ## all benchmarks, full size (< 30 min): bench/results/<time>/ (BENCH_ARGS=...)
	@$(PY) -m bench.run --mode full --profile $(BENCH_ARGS)

bench-quick: bench-venv bench-tools kafka-jars ## the benchmarks at small size (< 5 min on an idle machine)
	@$(PY) -m bench.run --mode quick $(BENCH_ARGS)

chaos: venv kafka-jars ## long chaos run: every fault under 5x load on the 3-broker cluster (~10-15 min, docs/reliability.md)
	@$(PY) -m chaos.run --long $(CHAOS_ARGS)

clean: ## remove caches, local state and broker data (keeps jars and .venv)
	@$(KAFKACTL) wipe || true
	@rm -rf .run .pytest_cache .mypy_cache .ruff_cache
