"""Running totals fused into the rollups' statement (kpi/compute/rollups.py,
kpi/compute/fusion.py): a running total whose grains tile its window is a running sum of
its group's join, ordered by period in each slice value. Which running totals are fused,
that their SQL compiles everywhere, and that their rows are those of the compiler's
per-KPI queries (the reference path, a range join of days to each window), in full and
incremental refreshes, on both warehouses. The hand-worked numbers are in
tests/kpi_cases/running_totals_by_fiscal_period.yaml and
tests/kpi_cases/rolling_and_quarter_to_date_by_day.yaml (run through every path).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
import yaml

from kpi.cli import DIALECTS, load_dialect
from kpi.compute.tables import KpiTables
from kpi.language.loader import load_catalog
from kpi.refresh import refresh_kpi_values, refresh_periods
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.statements import compile_select
from tests.kpi.compute.per_kpi import assert_same, per_kpi_rows, stored_rows
from tests.kpi.compute.test_fused_growths import (
    _bases_rows,
    _kpi,
    _refreshed_without,
    _source,
)

COMPUTED_AT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
# A fiscal year from April and Sunday weeks, so neither lines up with the calendar's.
REPORTING = {"time_zone": "UTC", "week_start": "sunday", "fiscal_year_start_month": 4}
ALL_GRAINS = ["day", "week", "month", "quarter", "year"]
YEAR_TO_DATE = ["day", "month", "quarter", "year"]  # the grains that tile a year


def _running(kpi_id: str, of: str, grains: list[str], dims: list, **window) -> dict:
    kpi = _kpi(kpi_id, grains, dims, type="cumulative", cumulative={"of": of, **window})
    kpi["description"] = "a running total"
    return kpi


def _case() -> dict:
    """Running totals of every window over every kind of base the rollups fuse (a sum by
    one dimension and by two at once, a ratio, an average, a maximum, a derived KPI over
    two sources), in the grains that tile each window; and one that is not fused (month
    to date by week), which the same statement computes per KPI."""
    additive = {"additivity": "additive"}
    visits = _source(
        "raw.visits",
        {"sessions": {"type": "integer", **additive}, "engaged": {"type": "integer", **additive}},
    )
    orders = _source("raw.orders", {"amount": {"type": "number", **additive}})
    sessions = SESSIONS
    amount = {"source": "orders", "agg": "sum", "expr": "amount"}
    both = ["channel", ["channel", "campaign"]]
    kpis = [
        _kpi("sessions", ALL_GRAINS, both, type="simple", measure=sessions),
        _kpi(
            "engagement",
            # By quarter too, which its month to date lacks: their joins stay apart.
            ["day", "month", "quarter"],
            ["channel"],
            type="ratio",
            numerator={"source": "visits", "agg": "sum", "expr": "engaged"},
            denominator=sessions,
        ),
        _kpi("revenue", YEAR_TO_DATE, ["channel"], type="simple", measure=amount),
        _kpi(
            "basket",
            ["day", "month", "quarter"],
            [],
            type="simple",
            measure={"source": "orders", "agg": "average", "expr": "amount"},
        ),
        _kpi(
            "largest",
            ["day"],
            [],
            type="simple",
            measure={"source": "orders", "agg": "max", "expr": "amount"},
        ),
        _kpi(
            "smallest",
            ["day"],
            ["campaign"],
            type="simple",
            measure={"source": "orders", "agg": "min", "expr": "amount"},
        ),
        _kpi("per_session", ["day"], ["channel"], type="derived", expr="revenue / sessions"),
        _kpi("sessions_by_campaign", ["day"], ["campaign"], type="simple", measure=sessions),
        _running("sessions_all_time", "sessions", ALL_GRAINS, both, window="all_time"),
        # Beside the all-time total in one join: its windows start after a quarter's or a
        # week's start, where the all-time rows of the periods ending after a late day
        # still need the join to begin.
        _running("sessions_mtd", "sessions", ["day", "month"], both, to_date="month"),
        _running("sessions_7d", "sessions", ["day"], [["channel", "campaign"]], window_days=7),
        _running("engagement_mtd", "engagement", ["day", "month"], ["channel"], to_date="month"),
        _running("basket_qtd", "basket", ["day", "month", "quarter"], [], to_date="quarter"),
        _running("revenue_ytd", "revenue", YEAR_TO_DATE, ["channel"], to_date="year"),
        _running("per_session_28d", "per_session", ["day"], ["channel"], window_days=28),
        _running("largest_90d", "largest", ["day"], [], window_days=90),
        # All-time extremes: an incremental run carries the earlier periods' in.
        _running("largest_all_time", "largest", ["day"], [], window="all_time"),
        _running("smallest_all_time", "smallest", ["day"], ["campaign"], window="all_time"),
        _running("campaign_7d", "sessions_by_campaign", ["day"], ["campaign"], window_days=7),
        # A growth in the same join as campaign_7d: the join of an incremental run starts
        # where both the growth's earlier days and the running window need it.
        _kpi(
            "campaign_vs_week",
            ["day"],
            ["campaign"],
            type="period_over_period",
            period_over_period={"of": "sessions_by_campaign", "offset": "7 days"},
        ),
        # Not fused: a week is not a part of one month.
        _running("sessions_mtd_by_week", "sessions", ["week"], ["channel"], to_date="month"),
    ]
    return {
        "dimensions": {"channel": {}, "campaign": {}},
        "sources": {"visits": visits, "orders": orders},
        "kpis": kpis,
    }


SESSIONS = {"source": "visits", "agg": "sum", "expr": "sessions"}
FUSED_RUNNING = {
    "sessions_all_time",
    "sessions_mtd",
    "sessions_7d",
    "engagement_mtd",
    "basket_qtd",
    "revenue_ytd",
    "per_session_28d",
    "largest_90d",
    "largest_all_time",
    "smallest_all_time",
    "campaign_7d",
}


def _tables_of(case: dict, folder: Path, use_cubes: bool = True) -> KpiTables:
    folder.mkdir(exist_ok=True)
    sources = {"reporting": REPORTING, **{k: case[k] for k in ("dimensions", "sources")}}
    (folder / "sources.yaml").write_text(yaml.safe_dump(sources))
    (folder / "test.yaml").write_text(yaml.safe_dump({"area": "test", "kpis": case["kpis"]}))
    return KpiTables.for_catalog(load_catalog(folder), use_cubes=use_cubes)


def _new_days(wh: Warehouse, tables: KpiTables, rows: dict, as_of: dt.date) -> None:
    """The days of ``rows`` after ``as_of`` loaded, then a daily run as of their last."""
    for name, frame in rows.items():
        table = tables.raw_tables[name]
        wh.replace_rows(table, table.c.date > as_of, frame[frame["date"] > as_of])
    refresh_periods(wh, tables, max(max(frame["date"]) for frame in rows.values()))
    refresh_kpi_values(wh, tables, computed_at=COMPUTED_AT)


def test_a_running_total_is_fused_where_its_grains_tile_its_window(tmp_path):
    tables = _tables_of(_case(), tmp_path / "defs")
    kpis = tables.catalog.kpis
    running = {k for k, kpi in kpis.items() if kpi.cumulative is not None}
    fused = {k for k in running if tables.rollups.fusable(kpis[k])}
    assert fused == FUSED_RUNNING
    # Each grain that does not tile the window keeps the KPI on the per-KPI queries.
    catalog_case = _case()
    untiled = [
        ("ytd_by_week", ["week"], {"to_date": "year"}),
        ("qtd_by_day_and_week", ["day", "week"], {"to_date": "quarter"}),
        ("rolling_by_week", ["week"], {"window_days": 7}),
        ("rolling_by_day_and_month", ["day", "month"], {"window_days": 28}),
    ]
    catalog_case["kpis"] += [
        _running(kpi_id, "sessions", grains, [], **window) for kpi_id, grains, window in untiled
    ]
    more = _tables_of(catalog_case, tmp_path / "more")
    for kpi_id, *_ in untiled:
        assert not more.rollups.fusable(more.catalog.kpis[kpi_id]), kpi_id
    # In a sparse slice, all time and to date are fused (their rows are runs of periods
    # without gaps, kpi.compute.sparse_running); a rolling window's rows may have gaps.
    sparse_case = _case()
    sparse_case["dimensions"]["campaign"] = {"sparse": True}
    sparse = _tables_of(sparse_case, tmp_path / "sparse")
    fused_sparse = {k for k in running if sparse.rollups.fusable(sparse.catalog.kpis[k])}
    assert fused_sparse == FUSED_RUNNING - {"sessions_7d", "campaign_7d"}
    # A running total reported by months only keeps its slice in the daily cube: the
    # comparisons evaluate its compared windows (running windows ending on a day) from days.
    month_case = _case()
    month_case["kpis"] = [
        _kpi("campaign_sessions", ["month"], ["campaign"], type="simple", measure=SESSIONS),
        _running("campaign_ytd", "campaign_sessions", ["month"], ["campaign"], to_date="year"),
    ]
    by_month = _tables_of(month_case, tmp_path / "by_month")
    assert by_month.rollups.fusable(by_month.catalog.kpis["campaign_ytd"])
    assert by_month.compiler.cubes.covers("visits", ("campaign",))
    # A running total's compared windows are running windows: not the compared windows'
    # sums, which the comparisons' shared statement evaluates for its base KPIs.
    windows = tables.compared_windows
    assert windows.covers(kpis["sessions"])
    assert not any(windows.covers(kpis[k]) for k in running)


def test_fused_running_totals_compile_for_every_dialect(tmp_path):
    tables = _tables_of(_case(), tmp_path / "defs")
    since = sa.bindparam("since", dt.date(2024, 3, 20), type_=sa.Date())
    for dialect in DIALECTS:
        compiled_dialect, _ = load_dialect(dialect)
        select = tables.rollups.values_select(sorted(FUSED_RUNNING), COMPUTED_AT, since)
        # As the refresh compiles it: the frames are integers, not parameters.
        sql = compile_select(compiled_dialect, select).sql.replace("`", "").replace('"', "")
        assert "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW" in sql, dialect
        assert "ROWS BETWEEN 6 PRECEDING AND CURRENT ROW" in sql, dialect
        assert "ROWS BETWEEN 89 PRECEDING AND CURRENT ROW" in sql, dialect
        assert "year_to_date_start" in sql and "quarter_to_date_start" in sql, dialect
        # Each KPI's rows are those of the periods ending on or after the run's first day;
        # each join starts at the first period those need (or their to-date windows), and
        # an all-time sum carries the parts of the periods before in.
        assert len(re.findall(r"rollups_\d+\.period_end >= ", sql)) == len(FUSED_RUNNING)
        assert "p.period_start >= (SELECT min(" in sql, dialect
        assert "least(" in sql.lower() and ".period_start < (SELECT min(" in sql, dialect


def test_fused_running_totals_have_the_rows_of_the_per_kpi_queries(warehouse_url, tmp_path):
    """In a full refresh, then in incremental ones (a day held back arriving late, a
    revised day, new days across the end of a month and of the fiscal year's first
    month), the fused statement writes the rows the compiler's per-KPI queries give."""
    case = _case()
    tables = _tables_of(case, tmp_path / "defs")
    raw = _tables_of(case, tmp_path / "defs", use_cubes=False)
    first, as_of = dt.date(2024, 1, 1), dt.date(2024, 4, 28)
    rows = _bases_rows(first, as_of)
    late = dt.date(2024, 2, 29)
    wh = Warehouse(warehouse_url)
    try:
        _refreshed_without(wh, tables, rows, late, as_of)
        assert_same(stored_rows(wh, tables), per_kpi_rows(wh, raw, COMPUTED_AT), "full")
        # The held-back day arrives, and 1 April's orders are revised.
        for name, frame in rows.items():
            table = tables.raw_tables[name]
            wh.replace_rows(table, table.c.date == late, frame[frame["date"] == late])
        orders = tables.raw_tables["orders"]
        revised = _bases_rows(dt.date(2024, 4, 1), dt.date(2024, 4, 1), scale=3.0)["orders"]
        wh.replace_rows(orders, orders.c.date == dt.date(2024, 4, 1), revised)
        refresh_kpi_values(wh, tables, computed_at=COMPUTED_AT)
        assert_same(stored_rows(wh, tables), per_kpi_rows(wh, raw, COMPUTED_AT), "revised")
        # 1 February's orders revised (before c2's first day, 10 February: its all-time
        # rows from then on have nothing before the join's first period nor in it).
        day = dt.date(2024, 2, 1)
        revised = _bases_rows(first, day, scale=0.5)["orders"]
        wh.replace_rows(orders, orders.c.date == day, revised[revised["date"] == day])
        refresh_kpi_values(wh, tables, computed_at=COMPUTED_AT)
        assert_same(stored_rows(wh, tables), per_kpi_rows(wh, raw, COMPUTED_AT), "early")
        # Four new days, into May.
        _new_days(wh, tables, _bases_rows(first, dt.date(2024, 5, 2)), as_of)
        stored = stored_rows(wh, tables)
        assert_same(stored, per_kpi_rows(wh, raw, COMPUTED_AT), "new days")
        assert len([k for k in stored if k[0] in FUSED_RUNNING]) > 1000
    finally:
        wh.dispose()


def test_a_long_source_name_keeps_its_running_columns_apart(warehouse_url, tmp_path):
    """The fused join names a source's columns by the source's position: named after a
    source of 60 characters, two running windows' columns ran past PostgreSQL's 63 bytes
    and were cut to one name (an ambiguous column, the refresh failed)."""
    case = _case()
    long_name = "google_analytics_sessions_by_landing_page_and_device_category"
    assert len(long_name) > 60
    case["sources"] = {long_name: case["sources"]["visits"], "orders": case["sources"]["orders"]}
    for kpi in case["kpis"]:
        for role in ("measure", "numerator", "denominator"):
            if kpi.get(role, {}).get("source") == "visits":
                # A copy: the measures are shared with the other tests' cases.
                kpi[role] = {**kpi[role], "source": long_name}
    case["kpis"] += [
        _running("sessions_28d", "sessions", ["day"], ["channel"], window_days=28),
        _running("sessions_90d", "sessions", ["day"], ["channel"], window_days=90),
    ]
    tables = _tables_of(case, tmp_path / "defs")
    raw = _tables_of(case, tmp_path / "defs", use_cubes=False)
    assert tables.rollups.fusable(tables.catalog.kpis["sessions_28d"])
    rows = _bases_rows(dt.date(2024, 1, 1), dt.date(2024, 2, 15))
    wh = Warehouse(warehouse_url)
    try:
        wh.ensure_tables(tables.all_tables())
        wh.replace_rows(tables.raw_tables[long_name], None, rows["visits"])
        wh.replace_rows(tables.raw_tables["orders"], None, rows["orders"])
        refresh_periods(wh, tables, dt.date(2024, 2, 15))
        refresh_kpi_values(wh, tables, computed_at=COMPUTED_AT)
        assert_same(stored_rows(wh, tables), per_kpi_rows(wh, raw, COMPUTED_AT))
    finally:
        wh.dispose()


def _sparse_case() -> dict:
    """Campaign declared sparse; all-time and to-date totals by campaign (alone and with
    channel) over a sum, a ratio and a derived KPI over two sources, in every grain that
    tiles each window; a rolling one, which stays on the per-KPI queries."""
    case = _case()
    case["dimensions"]["campaign"] = {"sparse": True}
    by_campaign = ["campaign", ["channel", "campaign"]]
    case["kpis"] = [
        _kpi("sessions", ALL_GRAINS, by_campaign, type="simple", measure=SESSIONS),
        _kpi(
            "engagement",
            YEAR_TO_DATE,
            by_campaign,
            type="ratio",
            numerator={"source": "visits", "agg": "sum", "expr": "engaged"},
            denominator=SESSIONS,
        ),
        _kpi(
            "revenue",
            YEAR_TO_DATE,
            ["campaign"],
            type="simple",
            measure={"source": "orders", "agg": "sum", "expr": "amount"},
        ),
        _kpi(
            "per_session", ["day", "month"], ["campaign"], type="derived", expr="revenue / sessions"
        ),
        _running("sessions_all_time", "sessions", ALL_GRAINS, by_campaign, window="all_time"),
        _running("engagement_mtd", "engagement", ["day", "month"], by_campaign, to_date="month"),
        _running("engagement_ytd", "engagement", YEAR_TO_DATE, by_campaign, to_date="year"),
        _running(
            "revenue_qtd", "revenue", ["day", "month", "quarter"], ["campaign"], to_date="quarter"
        ),
        _running(
            "per_session_all_time", "per_session", ["day", "month"], ["campaign"], window="all_time"
        ),
        _running("sessions_7d", "sessions", ["day"], ["campaign"], window_days=7),
    ]
    return case


def _gappy_rows(first: dt.date, last: dt.date) -> dict[str, pd.DataFrame]:
    """``_bases_rows`` and a campaign c3 seen on a few days only: visits on days across
    the ends of months, of a fiscal quarter and of the fiscal year (April), orders on
    other days (its derived KPI's rows are where either source has data)."""
    rows = _bases_rows(first, last)
    visit_days = [(1, 15), (1, 31), (3, 5), (3, 31), (4, 2), (4, 20)]
    order_days = [(2, 3), (3, 5), (4, 25)]
    visits = [
        (dt.date(2024, m, d), "paid", "c3", 5 + d, d // 3)
        for m, d in visit_days
        if first <= dt.date(2024, m, d) <= last
    ]
    orders = [
        (dt.date(2024, m, d), "organic", "c3", 7.5 * m)
        for m, d in order_days
        if first <= dt.date(2024, m, d) <= last
    ]
    return {
        "visits": pd.concat([rows["visits"], pd.DataFrame(visits, columns=rows["visits"].columns)]),
        "orders": pd.concat([rows["orders"], pd.DataFrame(orders, columns=rows["orders"].columns)]),
    }


def test_sparse_running_totals_have_the_rows_of_the_per_kpi_queries(warehouse_url, tmp_path):
    """All-time and to-date totals in a sparse slice, fused: the rows (a campaign's from
    its first period with data in the window on, none before) and numbers of the per-KPI
    queries, in a full refresh and in incremental ones (a campaign's first day arriving
    late, the first day of another removed, new days into a new month)."""
    case = _sparse_case()
    tables = _tables_of(case, tmp_path / "defs")
    raw = _tables_of(case, tmp_path / "defs", use_cubes=False)
    fused = {k for k, kpi in tables.catalog.kpis.items() if tables.rollups.fusable(kpi)}
    running = {k for k, kpi in tables.catalog.kpis.items() if kpi.cumulative is not None}
    assert running - fused == {"sessions_7d"}
    first, as_of = dt.date(2024, 1, 1), dt.date(2024, 4, 28)
    rows = _gappy_rows(first, as_of)
    late = dt.date(2024, 1, 15)  # c3's first day of visits
    wh = Warehouse(warehouse_url)
    try:
        _refreshed_without(wh, tables, rows, late, as_of)
        stored = stored_rows(wh, tables)
        assert_same(stored, per_kpi_rows(wh, raw, COMPUTED_AT), "full")
        c3 = sorted(
            k[2] for k in stored if k[:2] == ("sessions_all_time", "day") and k[3:] == (None, "c3")
        )
        assert c3[0] == dt.date(2024, 1, 31) and len(c3) == (as_of - c3[0]).days + 1
        c3_mtd = {
            k[2] for k in stored if k[:2] == ("engagement_mtd", "day") and k[3:] == (None, "c3")
        }
        assert dt.date(2024, 2, 15) not in c3_mtd and dt.date(2024, 3, 4) not in c3_mtd
        assert {dt.date(2024, 3, 5), dt.date(2024, 4, 1), dt.date(2024, 4, 2)} & c3_mtd == {
            dt.date(2024, 3, 5),
            dt.date(2024, 4, 2),
        }
        # c3's first day arrives late; c2's first day (10 February) is removed.
        visits = tables.raw_tables["visits"]
        for name, frame in rows.items():
            table = tables.raw_tables[name]
            wh.replace_rows(table, table.c.date == late, frame[frame["date"] == late])
        day = dt.date(2024, 2, 10)
        kept = rows["visits"][
            (rows["visits"]["date"] == day) & (rows["visits"]["campaign"] != "c2")
        ]
        wh.replace_rows(visits, visits.c.date == day, kept)
        refresh_kpi_values(wh, tables, computed_at=COMPUTED_AT)
        assert_same(stored_rows(wh, tables), per_kpi_rows(wh, raw, COMPUTED_AT), "revised")
        # New days, into May.
        _new_days(wh, tables, _gappy_rows(first, dt.date(2024, 5, 3)), as_of)
        assert_same(stored_rows(wh, tables), per_kpi_rows(wh, raw, COMPUTED_AT), "new days")
    finally:
        wh.dispose()
