# One entry point per task. Every target creates .venv and installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUM    := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# .venv with everything (tests, linters, bench tooling) and, for `make run`, with what running needs:
# mcpctl and the example servers (the `examples` extra). The full install satisfies both.
STAMP  := $(VENV)/.installed-$(SUM)
RUN_STAMP := $(VENV)/.installed-run-$(SUM)
# Two workers on two cores (--dist loadfile keeps a module on one worker). A third overlapped the e2e
# modules' waits on real processes (a run at -n 2 kept 0.9 of the 2 cores busy), but it starved the
# timing-bound tests: 3 of 5 clean-clone runs on 2026-12-01 failed one of them (a lease renewal
# answered late, a load test's connection dropped); 11.5-13.5 min at -n 3, 12.3 at -n 2.
PYTEST_WORKERS ?= 2
# Real upstream MCP servers for the tests (npm), e.g. node_modules/.bin/mcp-server-everything.
NODE_STAMP := node_modules/.installed
# A real load balancer for the loopback-cluster e2e (tests/e2e/test_loopback_cluster.py): Debian's HAProxy.
HAPROXY := /usr/sbin/haproxy
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# mcpctl's bytecode, as an installed wheel has it: the install is editable, so with
# PYTHONDONTWRITEBYTECODE set (as on CI's machines) every start of mcpd, mcplocal and the CLI compiled
# mcpctl's modules again (~0.04 s of a CLI call's 0.4 s; the suite starts the CLI ~1,200 times).
# Done at install (`make run` must be one command: tests/e2e/makerun.py) and again by `make test`;
# up to date in ~0.2 s; a stale .pyc is never used (Python checks each against its source).
COMPILE := $(BIN)/python -m compileall -q src

.PHONY: run test test-unit test-integration test-e2e lint fmt clean conformance bench bench-context newcomer

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(COMPILE)
	rm -f $(VENV)/.installed-*
	touch $@ $(RUN_STAMP)

# No pip upgrade here: the venv's own pip installs the project, and a newcomer's first start is faster.
$(RUN_STAMP): pyproject.toml
	@echo "installing mcpctl and the example servers into $(VENV) (the first time only: about a minute)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[examples]'
	$(COMPILE)
	rm -f $(VENV)/.installed-run-*
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

$(HAPROXY):
	$(SUDO) sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy)'

## make run: start mcpd on 127.0.0.1:3000 with the embedded SQLite database under the data dir, after
## installing (once) only what running needs: mcpctl and the example servers, not the test toolchain.
## Servers installed by the project (mcp-server-time and mcp-server-git in .venv, npm ones in node_modules
## after `make test` or `npm ci`) are on mcpd's PATH, so `mcpctl create server time --command
## mcp-server-time` works without activating the venv.
run: $(RUN_STAMP)
	PATH="$(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$$PATH" $(BIN)/mcpd

## make test: static checks (ruff, mypy strict, import contracts) + the whole suite
## (unit, integration on SQLite and PostgreSQL, e2e with real processes).
test: $(STAMP) $(NODE_STAMP) $(HAPROXY)
	$(BIN)/ruff check src tests conformance bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(COMPILE)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-unit: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m pytest -q tests/unit

## make conformance: the official MCP conformance suite (2025-11-25 and 2026-07-28) against the fixture
## server directly and through every gateway target: embedded mcpd and `mcplocal serve`, each with the
## fixture as an http and as a stdio upstream. Fails if a check (checks.json) or scenario that passes
## directly is lost through a target, apart from conformance/differences.yaml (see conformance/README.md).
## CONFORMANCE_ARGS e.g. --json, --check-proxy, --target serve-stdio, --spec-version 2026-07-28.
conformance: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m conformance.run $(CONFORMANCE_ARGS)

## make bench: tools/call through the embedded gateway vs the fixture upstream directly, at concurrency
## 1, 8 and 32 (each level bounded by count and time): req/s, p50/p95/p99 and the ratios. A measurement,
## not a test. BENCH_ARGS e.g. --json, --era 2026-07-28, --profile DIR (py-spy).
bench: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

## make bench-context: what the proxy models save (bench/context.py): first tool-surface tokens direct vs
## gate over a project of real servers (>100 tools), top-1/top-5 tool selection of begin_session over
## bench/context_tasks.yaml, and the content pipeline's first-answer bytes and page latencies. A measurement.
bench-context: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m bench.context $(BENCH_ARGS)

## make newcomer: seconds from `git clone` of this checkout's HEAD to a listed tool, doing what the README
## says with a fresh HOME (bench/newcomer.py; README "First steps" has the number). A measurement, not a
## test: it installs from the package index and needs no .venv. NEWCOMER_ARGS e.g. --rev REV, --keep.
newcomer:
	$(PYTHON) -m bench.newcomer $(NEWCOMER_ARGS)

## make bench-peers: the peer comparison of issue 16 in one run: the fixture directly, mcp-proxy and
## supergateway (stdio bridges), mcpctl embedded and split (`mcplocal serve`), each with a stdio and an
## http upstream; wrk (C, bench/wrk/mcp.lua) and the project's own client at concurrency 1, 8, 32: req/s,
## p50/p99, CPU per call per process, ratios, new upstream connections per call, the issue's targets.
## The peers and wrk are pinned and installed under .bench/ (and apt), never into .venv or node_modules.
## BENCH_ARGS e.g. --targets direct,embedded-stdio --concurrency 8 --seconds 3 --json. See docs/performance.md.
BENCH_DIR := .bench
MCP_PROXY_VERSION := 0.13.0
SUPERGATEWAY_VERSION := 4.0.0
WRK := /usr/bin/wrk
MCP_PROXY := $(BENCH_DIR)/mcp-proxy-$(MCP_PROXY_VERSION)/bin/mcp-proxy
SUPERGATEWAY := $(BENCH_DIR)/node/node_modules/supergateway/.installed-$(SUPERGATEWAY_VERSION)
.PHONY: bench-peers
bench-peers: $(STAMP) $(WRK) $(MCP_PROXY) $(SUPERGATEWAY)
	$(BIN)/python -m bench.peers --bench-dir $(BENCH_DIR) $(BENCH_ARGS)

$(WRK):
	$(SUDO) sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)'

# Its own venv: mcp-proxy pins its own `mcp`, which must not meet ours.
$(MCP_PROXY):
	$(PYTHON) -m venv $(BENCH_DIR)/mcp-proxy-$(MCP_PROXY_VERSION)
	$(BENCH_DIR)/mcp-proxy-$(MCP_PROXY_VERSION)/bin/python -m pip install --quiet 'mcp-proxy==$(MCP_PROXY_VERSION)'

$(SUPERGATEWAY):
	npm install --prefix $(BENCH_DIR)/node --no-audit --no-fund --no-save 'supergateway@$(SUPERGATEWAY_VERSION)'
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check src tests conformance bench
	$(BIN)/ruff format --check src tests conformance bench
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff format src tests conformance bench
	$(BIN)/ruff check --fix src tests conformance bench

clean:
	rm -rf $(VENV) node_modules build dist .pytest_cache .mypy_cache .ruff_cache
