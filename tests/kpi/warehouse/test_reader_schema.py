"""The readers' schema holds only what a BI user reads: the engine's working tables (cubes,
rollups, the day map, incremental bookkeeping) live in `kpi_work`, and an upgraded
warehouse loses the copies an older version left in `kpi`. Read with plain clients
(duckdb, psycopg), as a BI tool would, not through SQLAlchemy."""

from __future__ import annotations

import datetime as dt

import duckdb
import psycopg
import pytest
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
from kpi.warehouse.schema import kpi_alerts_table

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


def _query(url: str, query: str, *params) -> list[tuple]:
    """``query`` through the plain client a BI tool would use (duckdb / psycopg)."""
    if url.startswith("duckdb"):
        with duckdb.connect(sa.make_url(url).database, read_only=True) as conn:
            return conn.execute(query.replace("%s", "?"), list(params)).fetchall()
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        return conn.execute(query, list(params)).fetchall()


def _objects(url: str, schema: str) -> set[str]:
    query = "SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
    return {r[0] for r in _query(url, query, schema)}


def _comments(url: str) -> dict[tuple[str, str | None], str | None]:
    """(object, column or None) -> comment, for every table and view of `kpi`."""
    if url.startswith("duckdb"):
        columns = _query(
            url,
            "SELECT table_name, column_name, comment FROM duckdb_columns() "
            "WHERE schema_name = 'kpi'",
        )
        objects = _query(
            url,
            "SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'kpi' "
            "UNION ALL SELECT view_name, comment FROM duckdb_views() WHERE schema_name = 'kpi'",
        )
    else:
        columns = _query(
            url,
            "SELECT table_name, column_name, col_description("
            "(quote_ident(table_schema) || '.' || quote_ident(table_name))::regclass, "
            "ordinal_position) FROM information_schema.columns WHERE table_schema = 'kpi'",
        )
        objects = _query(
            url,
            "SELECT table_name, obj_description((quote_ident(table_schema) || '.' || "
            "quote_ident(table_name))::regclass, 'pg_class') FROM information_schema.tables "
            "WHERE table_schema = 'kpi'",
        )
    found = {(t, c): m for t, c, m in columns}
    found.update({(t, None): m for t, m in objects})
    return found


def _computed_warehouse(url: str) -> None:
    """March 2026 of GA4 traffic, every day 100 sessions of which 60 engaged, computed
    through the scorecard view as of 2 April (March is the latest complete month)."""
    tables = KpiTables.for_catalog(load_catalog(), use_cubes=True)
    wh = Warehouse(url)
    # kpi_alerts is made by the alerts step (kpi.monitoring): made here, as it is read.
    wh.ensure_tables([*tables.all_tables(), kpi_alerts_table(tables.compiler.metadata)])
    march = [dt.date(2026, 3, 1) + dt.timedelta(days=i) for i in range(31)]
    rows = [
        {**LOADED, "property_id": "1", "date": d, "sessions": 100, "engaged_sessions": 60}
        for d in march
    ]
    with wh.transaction() as conn:
        conn.execute(tables.raw_tables["ga4_traffic"].insert(), rows)
    refresh_catalog(wh, tables)
    refresh_periods(wh, tables, dt.date(2026, 4, 2))
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
    # The period rollups are CTEs of the kpi_values statement (kpi.compute.rollups).
    assert not {t for t in work if t.startswith("rollup_")}, work


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
        # And a rollup table in the working schema, from before the rollups were CTEs.
        conn.execute(sa.text("CREATE SCHEMA IF NOT EXISTS kpi_work"))
        conn.execute(sa.text("CREATE TABLE kpi_work.rollup_ga4_traffic (x INTEGER)"))
        # A scorecard view of another shape: PostgreSQL cannot CREATE OR REPLACE it.
        conn.execute(sa.text("CREATE VIEW kpi.kpi_scorecard AS SELECT 1 AS kpi_id"))
    wh.dispose()
    _computed_warehouse(warehouse_url)
    assert _objects(warehouse_url, "kpi") <= READERS
    assert "rollup_ga4_traffic" not in _objects(warehouse_url, "kpi_work")


def test_every_column_of_every_reader_object_has_a_comment(warehouse_url):
    _computed_warehouse(warehouse_url)
    comments = _comments(warehouse_url)
    objects = {t for t, _ in comments}
    assert {"kpi_values", "kpi_comparisons", "kpi_scorecard", "periods", "kpi_alerts"} <= objects
    missing = sorted(f"{t}.{c or '(table)'}" for (t, c), m in comments.items() if not m)
    assert not missing, f"reader objects without a comment: {missing}"
    assert "on_track" in comments[("kpi_comparisons", "status")]
    assert comments[("kpi_scorecard", "status")] == comments[("kpi_comparisons", "status")]


def test_reader_tables_with_a_non_null_key_have_a_primary_key(warehouse_url):
    _computed_warehouse(warehouse_url)
    if warehouse_url.startswith("duckdb"):
        query = (
            "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
            "WHERE schema_name = 'kpi' AND constraint_type = 'PRIMARY KEY'"
        )
        keys = {t: list(c) for t, c in _query(warehouse_url, query)}
    else:
        query = (
            "SELECT tc.table_name, array_agg(k.column_name::text ORDER BY k.ordinal_position) "
            "FROM information_schema.table_constraints tc JOIN "
            "information_schema.key_column_usage k USING (constraint_schema, constraint_name) "
            "WHERE tc.table_schema = 'kpi' AND tc.constraint_type = 'PRIMARY KEY' "
            "GROUP BY tc.table_name"
        )
        keys = {t: list(c) for t, c in _query(warehouse_url, query)}
    assert keys == {
        "periods": ["grain", "period_start"],
        "kpi_targets": ["kpi_id", "grain", "period_start"],
        "kpi_catalog": ["kpi_id"],
        "kpi_changes": ["kpi_id", "definition_version"],
        "kpi_anomalies": ["kpi_id", "period_start"],
    }


def test_an_older_reader_table_gets_its_comments_and_primary_key(warehouse_url):
    # kpi_catalog as an older version made it: no comments, no primary key.
    wh = Warehouse(warehouse_url)
    with wh.transaction() as conn:
        conn.execute(sa.text("CREATE SCHEMA IF NOT EXISTS kpi"))
        conn.execute(sa.text("CREATE TABLE kpi.kpi_catalog (kpi_id VARCHAR NOT NULL)"))
        conn.execute(sa.text("INSERT INTO kpi.kpi_catalog VALUES ('sessions')"))
    wh.dispose()
    _computed_warehouse(warehouse_url)
    comments = _comments(warehouse_url)
    assert comments[("kpi_catalog", "kpi_id")] == "KPI id"
    assert comments[("kpi_catalog", None)].startswith("KPI definitions")
    with pytest.raises(Exception, match=r"(?i)duplicate|unique|primary key"):
        wh = Warehouse(warehouse_url)
        try:
            with wh.transaction() as conn:
                conn.execute(
                    sa.text(
                        "INSERT INTO kpi.kpi_catalog (kpi_id, name, area, owner, "
                        "unit, direction, kpi_type, formula, grains, definition_version) "
                        "SELECT kpi_id, name, area, owner, unit, direction, kpi_type, formula, "
                        "grains, definition_version FROM kpi.kpi_catalog"
                    )
                )
        finally:
            wh.dispose()


def test_the_scorecard_view_says_how_to_show_and_judge_each_kpi(warehouse_url):
    """Worked by hand from kpi_definitions/marketing.yaml for March 2026: sessions (higher
    is better, target 120,000 a month, thresholds 1.0 / 0.9) and bounce rate (lower is
    better, target 38%, thresholds 1.0 / 0.95)."""
    _computed_warehouse(warehouse_url)
    columns = (
        "kpi_id, period_start, actual, status, unit, currency, display_format, "
        "on_track_min, on_track_max, at_risk_min, at_risk_max"
    )
    rows = _query(
        warehouse_url,
        f"SELECT {columns} FROM kpi.kpi_scorecard WHERE kpi_id IN ('sessions', 'bounce_rate')",
    )
    card = {r[0]: r[1:] for r in rows}
    march = dt.date(2026, 3, 1)
    # 31 days x 100 sessions = 3,100: far below 108,000 (120,000 x 0.9), so off track.
    assert card["sessions"][:6] == (march, 3100.0, "off_track", "count", None, "#,##0")
    assert card["sessions"][6:] == (pytest.approx(120000.0), None, pytest.approx(108000.0), None)
    # 40% of sessions bounce: above 38% / 1.0 = 38% (on track up to) but not above
    # 38% / 0.95 = 40% (at risk up to), so at risk.
    assert card["bounce_rate"][:6] == (
        march,
        pytest.approx(0.4),
        "at_risk",
        "percent",
        None,
        "0.0%",
    )
    assert card["bounce_rate"][6:] == (None, pytest.approx(0.38), None, pytest.approx(0.4))


def _inside(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low - 1e-9) and (high is None or value <= high + 1e-9)


def test_every_scorecard_status_agrees_with_its_ranges(warehouse_url):
    """The ranges restate the status rule: a reader applying them gets the stored status."""
    _computed_warehouse(warehouse_url)
    rows = _query(
        warehouse_url,
        "SELECT kpi_id, direction, actual, status, on_track_min, on_track_max, at_risk_min, "
        "at_risk_max FROM kpi.kpi_scorecard WHERE status IN ('on_track', 'at_risk', 'off_track')",
    )
    judged = 0
    for kpi_id, direction, actual, status, *bounds in rows:
        if all(b is None for b in bounds):
            continue  # a growth KPI: judged on levels
        expected = (
            "on_track"
            if _inside(actual, bounds[0], bounds[1])
            else "at_risk"
            if _inside(actual, bounds[2], bounds[3])
            else "off_track"
        )
        assert status == expected, (kpi_id, direction, actual, bounds)
        judged += 1
    assert judged >= 3
