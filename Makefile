# The two commands: `make run` starts the service, `make test` runs the whole test suite.
# Both set up .venv themselves; README.md describes the configuration they read.

PYTHON ?= python3.11
VENV ?= .venv
PORT ?= 8000
PYTEST_ARGS ?=

PY := $(VENV)/bin/python
MANAGE := $(PY) manage.py
# pip runs again only when pyproject.toml is newer than these stamps.
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test
# Folders compilemessages must not walk into: .venv holds Django's own catalogues.
SKIP_DIRS := .venv var .git node_modules build

.DEFAULT_GOAL := help
.PHONY: help run test lint venv

help:
	@echo "make run    set up everything and start web, the workers and beat at http://127.0.0.1:$(PORT)/"
	@echo "make test   run the whole test suite (PYTEST_ARGS=... is passed to pytest)"
	@echo "make lint   ruff check, ruff format --check, mypy, lint-imports (the layers of the apps)"
	@echo "make venv   create .venv with the project and its test tools (make test and make lint do this too)"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP_RUN): pyproject.toml | $(PY)
	$(PY) -m pip install -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[test]'
	touch $@

venv: $(STAMP_TEST)

# Compiles every locale/ folder's .po files. $(1) is what a missing msgfmt means: warn or fail.
define compile_messages
	@if ! command -v msgfmt >/dev/null 2>&1; then \
		echo "WARNING: msgfmt (GNU gettext) not found, translations not compiled; install it: apt-get install -y gettext" >&2; \
		$(if $(filter fail,$(1)),exit 1,true); \
	elif [ -z "$$(find . $(foreach d,$(SKIP_DIRS),-path ./$(d) -prune -o) -type d -name locale -print)" ]; then \
		echo "No locale/ folders yet: no translations to compile."; \
	else \
		echo "$(MANAGE) compilemessages"; \
		$(MANAGE) compilemessages -v 0 $(foreach d,$(SKIP_DIRS),--ignore=$(d)); \
	fi
endef

# Development defaults: DEBUG generates throwaway secrets; without DATABASE_URL and REDIS_URL the
# settings use SQLite in var/ and a filesystem Celery broker.
run: export DEBUG ?= 1
run: export PORT := $(PORT)
run: $(STAMP_RUN)
	$(call compile_messages,warn)
	mkdir -p "$${DATA_DIR:-var}"
	$(MANAGE) migrate --noinput
	$(MANAGE) collectstatic --noinput -v 0
	$(MANAGE) demo_load
	@echo
	@echo "==> Registry running at http://127.0.0.1:$(PORT)/  (web, worker, worker_long and beat; Ctrl-C stops all)"
	@echo
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/honcho start -f Procfile --port $(PORT)

# Tests of translated messages need the compiled catalogues, so a missing msgfmt is an error here.
test: export REGISTRY_TESTING := 1
test: $(STAMP_TEST)
	$(call compile_messages,fail)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# mypy's Django plugin loads the settings, which need REGISTRY_TESTING (or DEBUG) to run without secrets.
lint: export REGISTRY_TESTING := 1
lint: $(STAMP_TEST)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports
