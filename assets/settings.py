"""What the assets need from the code location's settings (:mod:`resources.settings`)."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from kpi.language.catalog import Catalog
from kpi.language.loader import load_catalog
from resources.settings import settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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
