# Shutterline developer entry points. Every target creates the environment it needs.
SHELL := /bin/bash
CACHE ?= $(HOME)/.cache/shutterline
UV_VERSION := 0.13.8
UV := $(CACHE)/uv/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
export UV_CACHE_DIR := $(CACHE)/uv-cache
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: env demo test lint typecheck unit bench testbed-build testbed-up testbed-down clean

$(UV):
	python3 -m venv $(CACHE)/uv
	$(CACHE)/uv/bin/pip install -q uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --all-extras --python 3.11 --compile-bytecode
	touch $@

# Bytecode for every installed module and ours, written once: where PYTHONDONTWRITEBYTECODE
# is set, every process would otherwise compile its ~3,900 imported modules from source
# (about 6 s of CPU each, 25 s under load; measured before the first stage of `shutterline
# run`). Up-to-date files are skipped, so re-running it costs a second.
BYTECODE := $(PY) -m compileall -q -j 0
$(VENV)/.bytecode: $(VENV)/.synced
	$(BYTECODE) $(VENV)/lib >/dev/null
	touch $@

env: $(VENV)/.synced $(VENV)/.bytecode
	@$(BYTECODE) pipeline-image operator tests >/dev/null

# `make demo KAFKA=host:port` also publishes every alert through the alert relay.
demo: env
	$(PY) -m shutterline.cli.main demo --workdir .demo $(if $(KAFKA),--kafka $(KAFKA))

lint: env
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check pipeline-image operator tests
	$(VENV)/bin/ruff format --check pipeline-image operator tests

typecheck: env
	$(VENV)/bin/mypy pipeline-image/shutterline operator/shutterline_operator tests/testbed

unit: env
	$(PY) -m pytest -q --durations=25

# The test bed's binaries (Kubernetes, etcd, MinIO, Jaeger, Kafka) are built before pytest:
# tens of minutes on a fresh machine, seconds once cached under ~/.cache/shutterline.
test: lint typecheck testbed-build unit

# `make bench BENCH_QUICK=1`: every script at a small size, to check the run works unattended.
bench: env
	$(PY) tests/benchmarks/run_all.py $(if $(BENCH_QUICK),--quick)

# Build or fetch every pinned test-bed binary (first run: tens of minutes; cached after).
testbed-build: env
	bash tests/testbed/install_debs.sh
	$(PY) -m tests.testbed build

testbed-up: env
	$(PY) -m tests.testbed up

testbed-down: env
	$(PY) -m tests.testbed down

clean:
	rm -rf $(VENV) .demo .testbed .pytest_cache .mypy_cache .ruff_cache
