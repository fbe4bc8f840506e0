"""Jobs."""

from __future__ import annotations

import os

import sqlalchemy as sa
from dagster import AssetSelection, define_asset_job

from resources.settings import settings

DUCKDB_WRITER_TAG = "marketing_kpis/duckdb_writer"


def writer_tags(warehouse_url: str) -> dict[str, str]:
    """Runs writing one DuckDB file carry its path, so the run queue lets one at a time."""
    url = sa.make_url(warehouse_url)
    if not url.drivername.startswith("duckdb"):
        return {}
    return {DUCKDB_WRITER_TAG: os.path.abspath(url.database or ":memory:")}


# Everything, raw to scorecard. Raw assets are partitioned by day; the KPI tables are
# recomputed whole in the warehouse after every load (they are cheap SQL).
marketing_kpis_job = define_asset_job(
    "marketing_kpis_job",
    selection=AssetSelection.all(),
    description="Extract GA4 and landing files for the run's days, validate them, and "
    "recompute the KPI tables and the scorecard.",
    tags=writer_tags(settings().warehouse_url),
)
