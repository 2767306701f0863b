# Two commands set everything up on a fresh machine with Python 3.11 and pip:
#   make run    install into .venv, migrate, serve on http://localhost:8000/ (PORT, HOST), print a demo account
#   make test   install into .venv and run the test suite (what needs PostgreSQL, Redis, Chromium or LDAP is skipped:
#               make test-pg runs everything, as CI does)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install install-ldap run test test-pg lint worker beat check-deploy

$(BIN)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

install: $(BIN)/.installed

# The optional directory extra (LDAP / Active Directory passwords and sync): python-ldap builds against libldap2-dev
# and libsasl2-dev, so it is not part of a plain install. .ci/run installs the headers and calls this.
$(BIN)/.installed-ldap: requirements-ldap.txt $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -r requirements-ldap.txt
	touch $@

install-ldap: $(BIN)/.installed-ldap

# make run serves on http://localhost:8000/; PORT=8001 make run (or HOST=...) picks another address. Texts and calls
# are printed in this terminal (the development console gateway) unless PHONE_GATEWAY says otherwise.
HOST ?= localhost
PORT ?= 8000
RUN_ENV = DEBUG=$${DEBUG:-true} SITE_URL=$${SITE_URL:-http://localhost:$(PORT)} \
	PHONE_GATEWAY=$${PHONE_GATEWAY:-devices.gateways.ConsoleGateway}

run: install
	$(RUN_ENV) $(BIN)/python manage.py migrate --noinput
	$(RUN_ENV) $(BIN)/python manage.py run_demo $(HOST):$(PORT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The whole suite as CI runs it: real PostgreSQL (an owner and an app role), Redis, Celery workers, Chromium, slapd,
# radclient; starts what is down and installs what is missing from Debian (so: on Debian, as root). PYTEST_ARGS narrows it.
test-pg:
	bash .ci/run

# ruff (the rules, and the one code format); mypy with django-stubs (pyproject.toml: every app checked, the services and the VPN strictly); and no model
# change without its migration, asked of the default SQLite settings so that no database is needed.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	env -u DATABASE_URL $(BIN)/python manage.py makemigrations --check --dry-run

worker: install
	$(BIN)/celery -A config worker --loglevel=INFO

beat: install
	$(BIN)/celery -A config beat --loglevel=INFO

# The example file's placeholders are refused by a deploy check (identity.E105): generated values stand in for them.
# There is no database here, so DATABASE_URL is dropped and the role check says it was skipped (identity.I106). On
# the server, `manage.py check --deploy` with the site's own environment connects and checks the role (identity.E106).
check-deploy: install
	set -e; env_file=$$(mktemp); trap 'rm -f "$$env_file"' EXIT; \
	password=$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(16))'); \
	sed "s/replace-me/$$password/g" config/production.env.example > "$$env_file"; \
	set -a; . "$$env_file"; set +a; \
	SECRET_KEY=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))'); \
	AUDIT_CHECKPOINT_KEY=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))'); \
	FACTOR_ENCRYPTION_KEYS=$$($(BIN)/python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'); \
	export SECRET_KEY AUDIT_CHECKPOINT_KEY FACTOR_ENCRYPTION_KEYS; \
	unset DATABASE_URL; \
	$(BIN)/python manage.py check --deploy --fail-level WARNING; \
	$(BIN)/python manage.py check --deploy --fail-level WARNING --settings config.settings_api
