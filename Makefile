# Two commands: `make run` serves everything on http://127.0.0.1:$(PORT); `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
ARGS ?=
PYTEST_ARGS ?= -n 2

.PHONY: run test lint migrate package package-lambda monitor smoke audit clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.run-deps: $(BIN)/python requirements.txt devserver/requirements.txt
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt -r devserver/requirements.txt
	touch $@

$(VENV)/.dev-deps: $(VENV)/.run-deps requirements-dev.txt
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

run: $(VENV)/.run-deps
	$(BIN)/python -m devserver --port $(PORT) $(ARGS)

test: $(VENV)/.dev-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# ruff (style, bugs, import order), mypy (strict on shared/), import-linter (pyproject.toml's contracts).
lint: $(VENV)/.dev-deps
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

migrate: $(VENV)/.run-deps
	$(BIN)/python -m migrations

# dist/<function>.zip: index.py + a copy of shared/ + requirements.txt (Yandex Cloud Functions).
package: $(BIN)/python
	$(BIN)/python -m deploy.package

# The same with the dependencies inside, as AWS Lambda needs them, except boto3/botocore (the
# runtime ships them); `make package-lambda WITH_BOTO3=1` vendors those too.
WITH_BOTO3 ?=
package-lambda: $(BIN)/python
	$(BIN)/python -m deploy.package --with-dependencies $(if $(WITH_BOTO3),--with-boto3)

# The on-call view of the tasks (DATABASE_URL); `make monitor ARGS="--watch"`.
monitor: $(VENV)/.run-deps
	$(BIN)/python -m monitor $(ARGS)

# One real 1-garment look through Replicate with the configured MODEL_PROFILE (REPLICATE_API_TOKEN;
# optionally DATABASE_URL, S3_*, CHECKER_URL): each transition, the step's time and cost.
smoke: $(VENV)/.run-deps
	$(BIN)/python -m smoke $(ARGS)

# Vulnerability audit of the runtime requirements (pip-audit, in a virtualenv of its own).
# --strict: a dependency that could not be checked is a failure, never a silent pass.
audit:
	$(PYTHON) -m venv .venv-audit
	.venv-audit/bin/pip install --disable-pip-version-check -q pip-audit==2.10.1
	.venv-audit/bin/pip-audit --strict --progress-spinner off -r requirements.txt

clean:
	rm -rf $(VENV) .venv-audit dist .pytest_cache
