# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
VAR ?= var
export INSPECT_ONCE_VAR := $(abspath $(VAR))

.PHONY: run test install lint web test-js clean-var

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the project's dependencies change.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

install: $(VENV)/.installed

# The tablet app (field_client/web): npm packages from the committed lockfile, bundled by esbuild into dist/,
# which the server serves at /field/. Nothing is fetched from a CDN at run time.
WEB := field_client/web
WEB_SOURCES := $(shell find $(WEB)/src $(WEB)/public -type f 2>/dev/null) $(WEB)/build.mjs $(WEB)/index.html

$(WEB)/node_modules/.package-lock.json: $(WEB)/package-lock.json
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error

$(WEB)/dist/.built: $(WEB)/node_modules/.package-lock.json $(WEB_SOURCES)
	cd $(WEB) && npm run --silent build
	@touch $@

web: $(WEB)/dist/.built

# The app's unit tests, and the protocol vectors shared with the Python engine (tests/protocol/vectors.json).
test-js: $(WEB)/node_modules/.package-lock.json
	cd $(WEB) && node --test test/

# Secrets are generated once per installation and kept (mode 600) under var/.
$(VAR)/secrets.env: | $(BIN)/python
	@mkdir -p $(VAR)
	@umask 077; $(BIN)/python -c 'import secrets; print("SECRET_KEY=" + secrets.token_urlsafe(48)); print("JWT_SIGNING_KEY=" + secrets.token_urlsafe(48))' > $@
	@echo "generated $@ (keep it; tokens and sessions are signed with it)"

run: install web $(VAR)/secrets.env
	@set -a; . "$(INSPECT_ONCE_VAR)/secrets.env"; set +a; \
	$(BIN)/flask --app server check-system && \
	$(BIN)/flask --app server init-db && \
	$(BIN)/flask --app server seed-demo --if-empty && \
	echo "" && echo "Log in: http://$${INSPECT_ONCE_HOST:-127.0.0.1}:$${INSPECT_ONCE_PORT:-5000}/review/  (supervisors, in the browser)" && \
	echo "API:    http://$${INSPECT_ONCE_HOST:-127.0.0.1}:$${INSPECT_ONCE_PORT:-5000}/api/v1/docs  (POST /api/v1/auth/token)" && \
	echo "Demo accounts (password demo-pass-2026): admin, scjg-head, scjg-supervisor, scjg-insp1 … (see README)" && \
	{ $(BIN)/flask --app server worker & worker=$$!; \
	  trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT INT TERM; \
	  $(BIN)/flask --app server serve; }

# The architecture and the lint rules are part of the suite: pyproject.toml states both.
lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: install lint web test-js
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean-var:
	rm -rf $(VAR)
