"""Settings the Dagster wiring reads once at load time, from the environment."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from kpi.language.catalog import Catalog, definitions_dir
from kpi.language.loader import load_catalog

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@cache
def catalog() -> Catalog:
    """The KPI catalog; invalid definitions raise here, so the code location fails to load."""
    return load_catalog(definitions_dir())


def history_start() -> str:
    """First day of the daily partitions (``KPI_HISTORY_START``, ISO date)."""
    return os.environ.get("KPI_HISTORY_START", "2024-01-01")


def lookback_days() -> int:
    """Days the daily run re-pulls, ending yesterday (``GA4_LOOKBACK_DAYS``, default 3)."""
    return int(os.environ.get("GA4_LOOKBACK_DAYS", "3"))


def suites_dir() -> Path:
    return definitions_dir() / "quality"


def source_code_version(source: str) -> str:
    """A code version for a raw asset: changes when its declaration in sources.yaml does."""
    import hashlib

    spec = catalog().sources[source]
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:12]
