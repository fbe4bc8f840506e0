"""Non-additive KPIs: targets only where they can be held, and unknown periods stay unknown.

A distinct count (customers, donors) or a user count read from a pre-aggregated source
does not add up over days: a month's 2000 customers are not 2000 / 30 a day, nor 2000 on
every day. Such a KPI gets its target at the target's grain only; its other grains get no
target (``no_target``), not a status against the whole month. And a period whose row of a
non-additive source is missing (a GA4 users month not delivered) is unknown (NULL), not 0.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from kpi.compute.periods import Calendar
from kpi.compute.tables import KpiTables
from kpi.language.catalog import Catalog
from kpi.language.loader import load_catalog
from kpi.language.models import Kpi, Reporting
from kpi.language.status import Status
from kpi.refresh import (
    refresh_comparisons,
    refresh_cubes,
    refresh_kpi_values,
    refresh_periods,
    refresh_targets,
)
from kpi.status.targets import phase_targets
from kpi.warehouse.connection import Warehouse

D = dt.date


def make_kpi(**fields) -> Kpi:
    base = {
        "id": "k",
        "name": "K",
        "description": "test KPI",
        "owner": "t@example.com",
        "unit": "count",
        "direction": "higher_is_better",
        "type": "simple",
        "measure": {"source": "s", "agg": "count_distinct", "expr": "customer_id"},
    }
    return Kpi.model_validate({**base, **fields})


def targets(first: dt.date, as_of: dt.date, *kpis: Kpi) -> dict:
    catalog = Catalog(
        reporting=Reporting(week_start="monday"),
        dimensions=[],
        sources={},
        kpis={k.id: k for k in kpis},
    )
    periods = Calendar(catalog.reporting).periods(first, as_of)
    return {(r.kpi_id, r.grain, r.period_start): r for r in phase_targets(catalog, periods)}


# ---------------------------------------------------------------------------------------------
# Phasing (kpi_targets)
# ---------------------------------------------------------------------------------------------


def test_a_distinct_count_has_its_target_at_the_targets_grain_only():
    customers = make_kpi(
        id="unique_customers",
        grains=["day", "week", "month"],
        target={"value": 2000, "grain": "month"},
        benchmark={"value": 1800, "source": "last year"},
    )
    t = targets(D(2026, 11, 1), D(2026, 11, 30), customers)
    month = t[("unique_customers", "month", D(2026, 11, 1))]
    assert (month.target, month.target_to_date) == (2000, 2000)
    assert month.benchmark_value == 1800
    assert month.phasing == "linear"
    # 176 customers on 2026-11-30 say nothing about a month's 2000: no target, no
    # benchmark on any day or week row (it used to be 2000 on each of them).
    for (_, grain, _), row in t.items():
        if grain == "month":
            continue
        assert (row.target, row.target_to_date, row.benchmark_value) == (None, None, None), row
        assert row.phasing is None, row
    assert sum(1 for key in t if key[1] == "day") == 30


def test_an_open_target_period_of_a_distinct_count_has_no_target_to_date():
    # Half of November: its customers so far cannot be held against part of 2000 (they
    # are not additive) nor against all of it (a month is not over): no target to date,
    # while the whole period's target stays known.
    customers = make_kpi(
        id="unique_customers", grains=["day", "month"], target={"value": 2000, "grain": "month"}
    )
    month = targets(D(2026, 11, 1), D(2026, 11, 15), customers)[
        ("unique_customers", "month", D(2026, 11, 1))
    ]
    assert (month.target, month.target_to_date) == (2000, None)
    # Nor does a month whose data starts on its 10th (incomplete: its first days unknown).
    month = targets(D(2026, 11, 10), D(2026, 12, 31), customers)[
        ("unique_customers", "month", D(2026, 11, 1))
    ]
    assert (month.target, month.target_to_date) == (2000, None)


def test_a_quarterly_target_of_a_distinct_count_holds_the_quarter_only():
    donors = make_kpi(
        id="donors", grains=["month", "quarter"], target={"value": 900, "grain": "quarter"}
    )
    t = targets(D(2026, 1, 1), D(2026, 3, 31), donors)
    assert t[("donors", "quarter", D(2026, 1, 1))].target == 900
    for month in (D(2026, 1, 1), D(2026, 2, 1), D(2026, 3, 1)):
        assert t[("donors", "month", month)].target is None


def test_additive_and_level_kpis_are_phased_as_before():
    # A sum is spread over days (3100 a month is 100 a day in a 31-day January); a ratio
    # keeps its target at every grain.
    orders = make_kpi(
        id="orders",
        measure={"source": "s", "agg": "count"},
        grains=["day", "month"],
        target={"value": 3100, "grain": "month"},
    )
    rate = make_kpi(
        id="rate",
        unit="percent",
        type="ratio",
        measure=None,
        numerator={"source": "s", "agg": "sum", "expr": "x"},
        denominator={"source": "s", "agg": "sum", "expr": "y"},
        grains=["day", "month"],
        target={"value": 0.02, "grain": "month"},
    )
    t = targets(D(2026, 1, 1), D(2026, 1, 31), orders, rate)
    assert t[("orders", "day", D(2026, 1, 5))].target == pytest.approx(100)
    assert t[("rate", "day", D(2026, 1, 5))].target == 0.02


# ---------------------------------------------------------------------------------------------
# In the warehouse: statuses, and a missing users month
# ---------------------------------------------------------------------------------------------

SOURCES_YAML = """\
reporting: {time_zone: UTC, week_start: monday}
dimensions: {}
sources:
  orders:
    table: raw.orders
    time: {column: ordered_on, type: date, time_zone: UTC}
    columns:
      ordered_on: {type: date}
      order_id: {type: string}
      customer_id: {type: string}
  users_monthly:
    table: raw.users_monthly
    time: {column: month, type: date, time_zone: UTC}
    grain: month
    key: [month]
    columns:
      month: {type: date}
      total_users: {type: integer, additivity: non_additive}
"""

KPIS_YAML = """\
area: test
kpis:
  - id: unique_customers
    name: Unique customers
    description: distinct customers, 3 a month
    owner: t@example.com
    unit: count
    direction: higher_is_better
    type: simple
    measure: {source: orders, agg: count_distinct, expr: customer_id}
    grains: [day, week, month]
    target: {value: 3, grain: month}
  - id: users
    name: Users
    description: users of the month, from a month-grain source
    owner: t@example.com
    unit: count
    direction: higher_is_better
    type: simple
    measure: {source: users_monthly, agg: sum, expr: total_users}
    grains: [month]
    target: {value: 100, grain: month}
"""

# January 2026 (from its 1st): customers a, b (twice), c, d -> 4 distinct, 1 a day.
# February: a, b -> 2; March: a -> 1. As of 2026-03-31, every month complete.
ORDERS = [
    (D(2026, 1, 1), "o1", "a"),
    (D(2026, 1, 6), "o2", "b"),
    (D(2026, 1, 13), "o3", "b"),
    (D(2026, 1, 20), "o4", "c"),
    (D(2026, 1, 27), "o5", "d"),
    (D(2026, 2, 10), "o6", "a"),
    (D(2026, 2, 11), "o7", "b"),
    (D(2026, 3, 2), "o8", "a"),
]
# GA4 users by month: January 120, March 90; the February row never arrived.
USERS = [(D(2026, 1, 1), 120), (D(2026, 3, 1), 90)]
AS_OF = D(2026, 3, 31)


def _load(warehouse_url: str, tmp_path: Path, use_cubes: bool) -> tuple[Warehouse, KpiTables]:
    defs = tmp_path / "defs"
    defs.mkdir(parents=True)
    (defs / "sources.yaml").write_text(SOURCES_YAML)
    (defs / "test.yaml").write_text(KPIS_YAML)
    tables = KpiTables.for_catalog(load_catalog(defs), use_cubes=use_cubes)
    wh = Warehouse(warehouse_url)
    wh.ensure_tables(tables.all_tables())
    orders = pd.DataFrame(ORDERS, columns=["ordered_on", "order_id", "customer_id"])
    wh.replace_rows(tables.raw_tables["orders"], None, orders)
    users = pd.DataFrame(USERS, columns=["month", "total_users"])
    wh.replace_rows(tables.raw_tables["users_monthly"], None, users)
    return wh, tables


@pytest.mark.parametrize("path", ["raw", "cubes", "refresh"])
def test_a_missing_month_of_a_non_additive_source_is_unknown(path, warehouse_url, tmp_path):
    wh, tables = _load(warehouse_url, tmp_path, use_cubes=path != "raw")
    try:
        refresh_periods(wh, tables, AS_OF)
        if path == "refresh":
            v = tables.values
            refresh_kpi_values(wh, tables)
            got = wh.read(sa.select(v).where(v.c.kpi_id == "users", v.c.grain == "month"))
        else:
            if path == "cubes":
                refresh_cubes(wh, tables)
            got = wh.read(tables.compiler.compile("users", "month"))
    finally:
        wh.dispose()
    rows = {
        pd.Timestamp(r.period_start).date(): (
            None if pd.isna(r.value) else r.value,
            int(r.sample_size),
        )
        for r in got.itertuples()
    }
    # February has no users row: nobody knows how many users it had (not 0), and no row
    # supports it (sample 0).
    assert rows == {D(2026, 1, 1): (120, 1), D(2026, 2, 1): (None, 0), D(2026, 3, 1): (90, 1)}


def test_statuses_of_non_additive_kpis(warehouse_url, tmp_path):
    wh, tables = _load(warehouse_url, tmp_path, use_cubes=True)
    try:
        periods = refresh_periods(wh, tables, AS_OF)
        refresh_kpi_values(wh, tables)
        refresh_targets(wh, tables, periods)
        refresh_comparisons(wh, tables)
        c = tables.comparisons
        out = wh.read(
            sa.select(
                c.c.kpi_id,
                c.c.grain,
                c.c.period_start,
                c.c.actual,
                c.c.target,
                c.c.attainment,
                c.c.status,
            )
        )
    finally:
        wh.dispose()
    out["period_start"] = [pd.Timestamp(d).date() for d in out.period_start]
    customers = out[out.kpi_id == "unique_customers"]
    # The months, against 3: January 4 / 3 on track, February 2 / 3 = 0.67 off track,
    # March 1 / 3 off track.
    months = customers[customers.grain == "month"].sort_values("period_start")
    assert months.actual.tolist() == [4, 2, 1]
    assert months.target.tolist() == [3, 3, 3]
    assert months.attainment.tolist() == pytest.approx([4 / 3, 2 / 3, 1 / 3])
    assert months.status.tolist() == [Status.on_track, Status.off_track, Status.off_track]
    # Days and weeks: no target, no attainment, no_target (was: 1 customer against 3,
    # off track, on every day with an order).
    finer = customers[customers.grain != "month"]
    assert len(finer) == 90 + 14  # 90 days, weeks of 2025-12-29 .. 2026-03-30
    assert finer.target.isna().all() and finer.attainment.isna().all()
    assert set(finer.status) == {Status.no_target}
    # Users: January 120 / 100 on track, March 90 / 100 = 0.9 at risk, February unknown
    # (not 0 users against 100, off track).
    users = out[out.kpi_id == "users"].set_index("period_start")
    assert users.loc[D(2026, 1, 1), "status"] == Status.on_track
    assert users.loc[D(2026, 3, 1), "status"] == Status.at_risk
    assert pd.isna(users.loc[D(2026, 2, 1), "actual"])
    assert users.loc[D(2026, 2, 1), "status"] == Status.insufficient_data


BAND_KPIS_YAML = """\
area: test
kpis:
  - id: customers_in_band
    name: Customers in a band
    description: distinct customers, 2 to 5 a month
    owner: t@example.com
    unit: count
    direction: within_band
    type: simple
    measure: {source: orders, agg: count_distinct, expr: customer_id}
    grains: [month]
    target: {band: {min: 2, max: 5}, grain: month}
"""


def test_an_open_month_of_a_distinct_count_within_a_band_has_no_band_yet(warehouse_url, tmp_path):
    """As a distinct count with a target value: half of March's customers cannot be held to
    part of the band, nor to all of it. The whole month's band stays in kpi_targets (for
    the pace), and the status says no_target, not a verdict against it."""
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "sources.yaml").write_text(SOURCES_YAML)
    (defs / "test.yaml").write_text(BAND_KPIS_YAML)
    tables = KpiTables.for_catalog(load_catalog(defs), use_cubes=True)
    wh = Warehouse(warehouse_url)
    try:
        wh.ensure_tables(tables.all_tables())
        orders = pd.DataFrame(ORDERS, columns=["ordered_on", "order_id", "customer_id"])
        wh.replace_rows(tables.raw_tables["orders"], None, orders)
        periods = refresh_periods(wh, tables, D(2026, 3, 15))
        refresh_kpi_values(wh, tables)
        refresh_targets(wh, tables, periods)
        refresh_comparisons(wh, tables)
        t, c = tables.targets, tables.comparisons
        band = wh.rows(
            sa.select(t.c.band_min, t.c.band_max, t.c.band_min_full, t.c.band_max_full).where(
                t.c.period_start == D(2026, 3, 1)
            )
        )
        statuses = dict(wh.rows(sa.select(c.c.period_start, c.c.status)))
    finally:
        wh.dispose()
    assert band == [(None, None, 2, 5)]
    # January 4 and February 2 customers, within 2..5; March (1 so far) not judged yet.
    statuses = {pd.Timestamp(k).date(): v for k, v in statuses.items()}
    assert statuses == {
        D(2026, 1, 1): Status.on_track,
        D(2026, 2, 1): Status.on_track,
        D(2026, 3, 1): Status.no_target,
    }
