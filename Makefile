# Two commands on a fresh machine: `make run` (the console on SQLite with demo data) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
checksum = $(shell cat $(1) | cksum | cut -d' ' -f1)
# One .venv serves both sets. Each set has a stamp named after the content of the files it was installed from,
# so editing either file (or pyproject.toml) reinstalls exactly what changed; the dev set builds on the runtime set.
RUNTIME_STAMP := $(VENV)/.installed-runtime-$(call checksum,requirements.txt pyproject.toml)
DEV_STAMP := $(VENV)/.installed-dev-$(call checksum,requirements.txt requirements-dev.txt pyproject.toml)

.PHONY: run test install install-runtime image-smoke bench clean

$(RUNTIME_STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

$(DEV_STAMP): $(RUNTIME_STAMP) requirements-dev.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@rm -f $(VENV)/.installed-dev-*
	@touch $@

install-runtime: $(RUNTIME_STAMP)

install: $(DEV_STAMP)

run: install-runtime
	@bash scripts/run.sh

# The suite includes tests/deploy: hadolint on the Dockerfile, compose.yaml against the Compose schema, image-smoke.
test: install
	@bash scripts/ensure-chromium.sh
	$(BIN)/python -m pytest -n 2 -q

# Replays the Dockerfile's steps without a container engine (also run by `make test`, on the same PostgreSQL).
image-smoke: install
	$(BIN)/python scripts/image-smoke --postgres $${TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/postgres}

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var
