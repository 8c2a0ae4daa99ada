# modelgate developer entry points. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS_BIN := $(CURDIR)/.tools/bin
export PATH := $(TOOLS_BIN):$(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup demo test tools lint unit bench cluster clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

## setup: create .venv at the repo root and install modelgate with its test extras
setup: $(VENV)/.installed

## tools: install and cache every external tool the tests need (idempotent)
tools:
	@for s in scripts/tools/[0-9]*.sh; do echo "==> $$s"; bash "$$s" || exit 1; done

## demo: run the webhook locally over TLS on the embedded defaults and send sample deployments
demo: setup
	$(PY) -m modelgate.demo

## lint: ruff, mypy --strict, import-linter contracts
lint: setup
	$(VENV)/bin/ruff check modelgate policies webhook auditor dashboard tests
	$(VENV)/bin/ruff format --check modelgate policies webhook auditor dashboard tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

## test: install tools, set up, lint and run the whole suite (benchmarks: make bench)
test: tools setup lint
	$(VENV)/bin/pytest -p no:cacheprovider -m "not benchmark"

## bench: benchmarks (webhook load side by side with bare OPA, hot path, audit scale)
bench: tools setup
	MODELGATE_BENCH_SCALE=full $(VENV)/bin/pytest -p no:cacheprovider -m benchmark tests/bench -s

## cluster: start a throwaway etcd + kube-apiserver on loopback for experiments
cluster: tools setup
	$(PY) -m tests.fixtures.cluster

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
