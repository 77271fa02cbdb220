# Vernacular: `make run` starts the app with its demo project, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test test-postgres test-torchaudio lint format venv

run: venv
	bash scripts/system_deps.sh run
	$(PY) manage.py migrate --noinput
	$(PY) scripts/devstack.py

test: venv
	bash scripts/system_deps.sh test
	$(PY) -m pytest

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

test-postgres: venv
	bash scripts/system_deps.sh test
	bash scripts/test_postgres.sh

test-torchaudio: venv
	bash scripts/test_torchaudio.sh
