# Everything a fresh clone needs: `make test` and `make demo` install what they use first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP_PY   := $(VENV)/.installed
STAMP_NODE := node_modules/.installed

.PHONY: setup test unit demo start bench lint clean

setup: $(STAMP_PY) $(STAMP_NODE)

$(STAMP_PY): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# Azurite, the local Azure Storage emulator, pinned by package-lock.json.
$(STAMP_NODE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Both tiers: tests/unit (no servers) and tests/integration (Azurite, the Key Vault fake, the simulator).
test: setup
	$(PY) -m pytest

# The fast tier only: pure logic, no servers.
unit: setup
	$(PY) -m pytest tests/unit

demo: setup
	$(PY) -m tests.demo

bench: setup
	$(PY) -m tests.bench

lint: setup
	$(PY) -m ruff check .

# Runs the app under Azure Functions Core Tools on Azurite and the ActiveCampaign simulator.
start: setup
	@command -v func >/dev/null 2>&1 || { \
	  echo "Azure Functions Core Tools (func) is not installed. Install version 4:"; \
	  echo "  npm install --global azure-functions-core-tools@4 --unsafe-perm true"; \
	  echo "  or see https://learn.microsoft.com/azure/azure-functions/functions-run-local"; \
	  exit 1; }
	@test -f local.settings.json || cp local.settings.sample.json local.settings.json
	. $(VENV)/bin/activate && $(PY) -m tests.localparts -- func start

clean:
	rm -rf $(VENV) node_modules .azurite .pytest_cache .ruff_cache
