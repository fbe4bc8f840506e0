"""The readers' schema holds only what a BI user reads: the engine's working tables (cubes,
rollups, the day map, incremental bookkeeping) live in `kpi_work`, and an upgraded
warehouse loses the copies an older version left in `kpi`. Read with plain clients
(duckdb, psycopg), as a BI tool would, not through SQLAlchemy."""

from __future__ import annotations

import datetime as dt

import duckdb
import psycopg
import sqlalchemy as sa

from kpi.compute.periods import Period
from kpi.compute.tables import KpiTables
from kpi.language.loader import load_catalog
from kpi.refresh import (
    refresh_anomalies,
    refresh_catalog,
    refresh_comparisons,
    refresh_kpi_values,
    refresh_periods,
    refresh_scorecard_view,
    refresh_targets,
)
from kpi.warehouse.connection import Warehouse

READERS = {
    "kpi_values",
    "kpi_targets",
    "kpi_comparisons",
    "kpi_anomalies",
    "kpi_alerts",
    "kpi_catalog",
    "kpi_changes",
    "periods",
    "kpi_scorecard",
}
LOADED = {"_source_file": "t.csv", "_source_line": 2, "_run_id": "t"}


def _objects(url: str, schema: str) -> set[str]:
    query = "SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
    if url.startswith("duckdb"):
        with duckdb.connect(sa.make_url(url).database, read_only=True) as conn:
            return {r[0] for r in conn.execute(query.replace("%s", "?"), [schema]).fetchall()}
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        return {r[0] for r in conn.execute(query, [schema]).fetchall()}


def _computed_warehouse(url: str) -> None:
    tables = KpiTables.for_catalog(load_catalog(), use_cubes=True)
    wh = Warehouse(url)
    wh.ensure_tables(tables.all_tables())
    with wh.transaction() as conn:
        conn.execute(
            tables.raw_tables["ga4_traffic"]
            .insert()
            .values(**LOADED, property_id="1", date=dt.date(2026, 3, 2), sessions=10)
        )
    refresh_catalog(wh, tables)
    refresh_periods(wh, tables, dt.date(2026, 3, 10))
    refresh_kpi_values(wh, tables)
    frame = wh.read(sa.select(tables.periods))
    refresh_targets(wh, tables, [Period(**row) for row in frame.to_dict("records")])
    refresh_comparisons(wh, tables)
    refresh_anomalies(wh, tables)
    refresh_scorecard_view(wh, tables)
    wh.dispose()


def test_the_readers_schema_holds_only_reader_objects(warehouse_url):
    _computed_warehouse(warehouse_url)
    readers = _objects(warehouse_url, "kpi")
    assert readers <= READERS, f"working tables in the readers' schema: {readers - READERS}"
    assert {"kpi_values", "kpi_comparisons", "kpi_scorecard", "periods"} <= readers
    work = _objects(warehouse_url, "kpi_work")
    assert {"day_periods", "source_days", "refresh_state", "cube_ga4_traffic"} <= work
    assert "rollup_ga4_traffic" in work


def test_an_upgraded_warehouse_loses_the_working_tables_left_in_the_readers_schema(
    warehouse_url,
):
    # What an older version left: its working tables in `kpi`, beside the readers' ones.
    wh = Warehouse(warehouse_url)
    with wh.transaction() as conn:
        conn.execute(sa.text("CREATE SCHEMA IF NOT EXISTS kpi"))
        for name in ("day_periods", "source_days", "refresh_state", "cube_ga4_traffic"):
            conn.execute(sa.text(f"CREATE TABLE kpi.{name} (x INTEGER)"))
        conn.execute(sa.text("CREATE TABLE kpi.rollup_ga4_traffic (x INTEGER)"))
    wh.dispose()
    _computed_warehouse(warehouse_url)
    assert _objects(warehouse_url, "kpi") <= READERS
