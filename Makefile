# The two quickstart commands are `make run` and `make test`; both create .venv when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench chaos clean tools azurite

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/dicom-bridge demo

# Azurite (the Azure Storage emulator) for the azure_blob offset store's tests, from npm into
# .tools/ (ignored); nothing to do when it is there.
AZURITE := .tools/node_modules/.bin/azurite-blob
azurite: $(AZURITE)
$(AZURITE):
	@command -v npm >/dev/null || { echo "npm is needed to install Azurite (apt-get install -y npm)"; exit 1; }
	npm install --prefix .tools --no-audit --no-fund --no-save 'azurite@^3.35.0'
	@touch $(AZURITE)

# Four workers on two cores: most tests wait on subprocesses and sockets, not the CPU.
test: $(STAMP) $(AZURITE)
	$(BIN)/python -m pytest -q -n 4

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m mypy

bench: $(STAMP)
	$(BIN)/python -m bench

chaos: $(STAMP)
	$(BIN)/python -m tests.chaos

# Tools the tests drive that pip cannot install: Debian's chromium (the status page's
# browser test) and prometheus (promtool checks the metrics exposition and the alert
# rules). Each installed only when missing; needs root (CI containers are).
tools:
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium)
	@command -v promtool >/dev/null || (apt-get update && apt-get install -y --no-install-recommends prometheus)

clean:
	rm -rf $(VENV) out state .pytest_cache .tools
