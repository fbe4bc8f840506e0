"""Jobs."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

# Everything, raw to scorecard. Raw assets are partitioned by day; the KPI tables are
# recomputed in the warehouse where the run's days changed them. Runs writing a DuckDB
# warehouse queue on the assets' `duckdb_warehouse` pool (assets.settings.DUCKDB_POOL),
# whatever launched them.
marketing_kpis_job = define_asset_job(
    "marketing_kpis_job",
    selection=AssetSelection.all(),
    description="Extract GA4 and landing files for the run's days, validate them, and "
    "recompute the KPI tables and the scorecard.",
)
