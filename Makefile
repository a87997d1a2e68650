# Tocsin: `make run` serves with an embedded PostgreSQL and demo data; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format openapi bench clean

EXAMPLE_PLUGIN := examples/tocsin-notifier-example
EXAMPLE_STAMP := $(VENV)/.example-plugin

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The tests install the example notifier plugin, because one of them pages through it.
$(EXAMPLE_STAMP): $(STAMP) $(EXAMPLE_PLUGIN)/pyproject.toml
	$(BIN)/pip install --quiet -e $(EXAMPLE_PLUGIN)
	touch $(EXAMPLE_STAMP)

# Serve on 127.0.0.1:8080 (TOCSIN_HOST, TOCSIN_PORT). With TOCSIN_DATABASE_URL unset, an
# embedded PostgreSQL keeps its data in TOCSIN_DATA_DIR (default ./.tocsin).
run: $(STAMP)
	$(BIN)/tocsin serve --demo

# Starts the local PostgreSQL if it is down, installs Debian's prometheus-alertmanager when
# missing (as root), then runs every test; see scripts/prepare-tests.
test: $(STAMP) $(EXAMPLE_STAMP)
	. scripts/prepare-tests && $(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check app tests bench examples migrations/env.py
	$(BIN)/ruff format --check app tests bench examples migrations/env.py
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format app tests bench examples migrations/env.py
	$(BIN)/ruff check --fix app tests bench examples migrations/env.py

openapi: $(STAMP)
	$(BIN)/tocsin openapi --output openapi.yaml

# The load generator is wrk (Debian package); as root it is installed when missing, and
# without it the benchmark falls back to a slower Python client.
bench: $(STAMP)
	@if ! command -v wrk >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "bench: installing wrk" >&2; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null) \
			|| echo "bench: could not install wrk; using the httpx client" >&2; \
	fi
	. scripts/prepare-tests && $(BIN)/python -m bench.ingest $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .tocsin-test
