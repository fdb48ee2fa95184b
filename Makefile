# cpwatch — `make run` and `make test` do all set-up on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
APT_PKGS := kcat chromium prometheus

.PHONY: setup k8s-tools lock check run test test-unit test-integration test-faults bench stack-up stack-down lint clean

setup: $(STAMP) system-deps k8s-tools

# requirements.lock pins every package with its hashes (regenerate: make lock); cpwatch itself
# is then installed without resolving anything again.
$(STAMP): pyproject.toml requirements.lock
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

lock:
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --quiet -o requirements.lock

# Debian tools the tests use as independent peers (kcat reads our topics).
system-deps:
	@missing=""; for p in $(APT_PKGS); do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "missing Debian packages:$$missing (sudo apt-get install$$missing)"; exit 1; fi; fi

# kustomize, built once from the Go module proxy (renders deploy/k8s for its tests).
k8s-tools: $(STAMP)
	$(BIN)/python -m deploy.k8s.render --install

stack-up: setup
	@if [ "$$CPWATCH_EXTERNAL_STACK" = 1 ]; then echo "using the external stack"; else $(BIN)/cpwatch stack up; fi

stack-down:
	$(BIN)/cpwatch stack down

run: stack-up
	$(BIN)/cpwatch run

# Everything, fault tests included: none takes over 5 minutes. The fault tests kill the worker
# and stop/restart this stack's Kafka and Elasticsearch (they run first, alphabetically).
test: stack-up check
	$(BIN)/pytest -q -p no:cacheprovider --durations=25

# Stage order (import-linter contracts in pyproject.toml) and strict types of the contract and
# the pure logic.
check: setup
	$(BIN)/lint-imports
	$(BIN)/mypy

test-unit: setup
	$(BIN)/pytest -q -m "not integration and not faults"

test-faults: stack-up
	$(BIN)/pytest -q -p no:cacheprovider -m faults

bench: stack-up
	$(BIN)/python -m bench.run

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
