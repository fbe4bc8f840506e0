# One entry point for people. `make run` and `make test` are the two commands in the README.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_URL ?= postgresql://postgres@127.0.0.1:5432/test
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home

.PHONY: run day test test-fast dev backfill lint format bench bench-kpi-daily bench-day bench-peer clean

$(STAMP): pyproject.toml
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $(STAMP)

## run: demo data -> DuckDB (data/warehouse.duckdb) -> scorecard in the terminal
# The demo run uses an in-memory Dagster instance: storing ~5,000 per-partition events of a
# 14-month range in the SQLite instance would triple its time. `make dev` keeps history.
run: $(STAMP)
	env -u DAGSTER_HOME KPI_DEMO=1 LOG_LEVEL=$${LOG_LEVEL:-WARNING} $(BIN)/python -m demo.run

## day: rerun one day (DAY=YYYY-MM-DD) on the existing warehouse as the daily schedule would:
## the last GA4_LOOKBACK_DAYS days extracted and validated, the KPI tables recomputed where
## those days changed anything, comparisons, report (FULL_REFRESH=1: recompute everything)
day: $(STAMP)
	@test -n "$(DAY)" || { echo "usage: make day DAY=YYYY-MM-DD [FULL_REFRESH=1]"; exit 2; }
	env -u DAGSTER_HOME $(BIN)/python -m demo.day --day $(DAY) --log-level $${LOG_LEVEL:-WARNING} $(if $(FULL_REFRESH),--full-refresh)

# Tests run in parallel, one pytest-xdist worker per core (TEST_WORKERS=1 for a serial run).
# loadgroup: tests are spread one by one, except those sharing an expensive module fixture
# (tests/conftest.py groups them), which stay on one worker.
TEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)
PYTEST_PARALLEL = -n $(TEST_WORKERS) --dist loadgroup

## test: the whole suite, PostgreSQL tests included (starts PostgreSQL when it is down)
test: $(STAMP)
	@bash scripts/ensure_postgres.sh "$(PG_URL)"
	KPI_TEST_POSTGRES_URL="$(PG_URL)" $(BIN)/python -m pytest $(PYTEST_PARALLEL) --durations=15 $(PYTEST_ARGS)

## test-fast: the quick loop: DuckDB only, without the tests marked slow (whole-job runs,
## subprocesses); `make test` (and CI) runs everything, PostgreSQL included
test-fast: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) -m "not slow and not postgres" $(PYTEST_ARGS)

## dev: the Dagster UI (dg dev) on http://127.0.0.1:$(PORT) with the living demo: the dev
## instance in data/dagster_home records the demo's first run (once), then the UI opens on it
PORT ?= 3000
dev: $(STAMP)
	KPI_DEMO=1 $(BIN)/python -m demo.dev --port $(PORT)

## backfill: an asset backfill of FROM..TO (YYYY-MM-DD) in the instance's queue, in runs of
## at most 31 days (the daemon of `make dev` or `dagster-daemon run` carries it out)
backfill: $(STAMP)
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make backfill FROM=YYYY-MM-DD TO=YYYY-MM-DD"; exit 2; }
	$(BIN)/python -m pipelines.backfill --from $(FROM) --to $(TO)

## bench: KPI SQL on 10M generated rows against hand-written DuckDB and pandas (bench/README.md)
bench: $(STAMP)
	$(BIN)/python bench/kpi_bench.py $(BENCH_ARGS)

## bench-kpi-daily: daily runs (one new day each) on the 10M-row bench file, against the floor
bench-kpi-daily: $(STAMP)
	$(BIN)/python bench/kpi_daily.py $(BENCH_ARGS)

## bench-day: one new day on a 60- and a 425-day demo warehouse, DuckDB and PostgreSQL
bench-day: $(STAMP)
	@bash scripts/ensure_postgres.sh "$(PG_URL)"
	$(BIN)/python bench/daily_bench.py --pg-url "$(PG_URL)" $(BENCH_ARGS)

## bench-peer: MetricFlow's benchmark shape and question sets against hand-written floors
bench-peer: $(STAMP)
	$(BIN)/python bench/peer_bench.py $(BENCH_ARGS)

## lint: ruff check and format check
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf data/warehouse.duckdb* data/landing data/dagster_home data/reports data/quality data/cache
