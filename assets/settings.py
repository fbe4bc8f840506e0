"""What the assets need from the code location's settings (:mod:`resources.settings`)."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import sqlalchemy as sa

from kpi.language.catalog import Catalog
from kpi.language.loader import load_catalog
from resources.settings import settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The pool of every step that opens a DuckDB warehouse. DuckDB lets one process at a time
# open a file for writing, and a run keeps its warehouse connection for the whole run, so
# the instance limits the pool per *run* (``granularity: run``, limit 1; see
# deploy/dagster.yaml and deploy/dagster.dev.yaml): runs of any launch path (UI, backfill,
# schedule, sensor) queue instead of failing on DuckDB's file lock.
DUCKDB_POOL = "duckdb_warehouse"


def definitions_dir() -> Path:
    """The definitions folder (``KPI_DEFINITIONS_DIR``, else the shipped ``kpi_definitions/``)."""
    return settings().definitions_dir


@cache
def catalog() -> Catalog:
    """The KPI catalog; invalid definitions raise here, so the code location fails to load."""
    return load_catalog(definitions_dir())


def history_start() -> str:
    """First day of the daily partitions (``KPI_HISTORY_START``, ISO date)."""
    return settings().history_start.isoformat()


def lookback_days() -> int:
    """Days the daily run re-pulls, ending yesterday (``GA4_LOOKBACK_DAYS``, default 3)."""
    return settings().lookback_days


def suites_dir() -> Path:
    return definitions_dir() / "quality"


def source_code_version(source: str) -> str:
    """A code version for a raw asset: changes when its declaration in sources.yaml does."""
    spec = catalog().sources[source]
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:12]


def warehouse_kind() -> str:
    """The warehouse as a Dagster kind (its icon in the UI): duckdb, postgres, bigquery..."""
    backend = sa.make_url(settings().warehouse_url).get_backend_name()
    return {"postgresql": "postgres"}.get(backend, backend)


def warehouse_pool(otherwise: str | None = None) -> str | None:
    """The concurrency pool of a step that opens the warehouse: :data:`DUCKDB_POOL` on
    DuckDB (one writer process per file), else ``otherwise`` (a server warehouse takes
    many writers; its writes lock the tables they replace, kpi.warehouse.locks)."""
    return DUCKDB_POOL if warehouse_kind() == "duckdb" else otherwise
