"""Growths fused into the rollups' statement (kpi/compute/rollups.py,
kpi/compute/fusion.py): a growth by day over a fixed shift is a projection of its group's
join joined to itself. Which growths are fused, that their SQL compiles everywhere, and
that their rows are those of the compiler's per-KPI queries (the reference path), in full
and incremental refreshes, on both warehouses. The hand-worked numbers of a growth are in
tests/kpi_cases/growth_over_fixed_offsets.yaml (run through every path).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from kpi.cli import DIALECTS, load_dialect
from kpi.compute.tables import KpiTables
from kpi.language.loader import load_catalog
from kpi.refresh import refresh_kpi_values, refresh_periods
from kpi.warehouse.connection import Warehouse
from tests.kpi.compute.per_kpi import assert_same, per_kpi_rows, stored_rows

COMPUTED_AT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CASES = Path(__file__).resolve().parents[2] / "kpi_cases"


def _tables_of(case: dict, folder: Path, use_cubes: bool = True) -> KpiTables:
    """The tables of a case's definitions (tests/kpi_cases), written to ``folder``."""
    folder.mkdir(exist_ok=True)
    sources = {k: case[k] for k in ("dimensions", "sources")}
    sources["reporting"] = {"time_zone": "UTC"}
    (folder / "sources.yaml").write_text(yaml.safe_dump(sources))
    (folder / "test.yaml").write_text(yaml.safe_dump({"area": "test", "kpis": case["kpis"]}))
    return KpiTables.for_catalog(load_catalog(folder), use_cubes=use_cubes)


def _two_dimension_case() -> dict:
    return yaml.safe_load((CASES / "two_dimension_slice.yaml").read_text())


def _growth_case() -> dict:
    return yaml.safe_load((CASES / "growth_over_fixed_offsets.yaml").read_text())


def _growth(kpi_id: str, offset: str, grains: list[str], dims: list) -> dict:
    return {
        "id": kpi_id,
        "name": kpi_id,
        "description": "a growth",
        "owner": "t@example.com",
        "unit": "percent",
        "direction": "higher_is_better",
        "type": "period_over_period",
        "period_over_period": {"of": "revenue", "offset": offset},
        "dimensions": dims,
        "grains": grains,
    }


def test_a_growth_by_day_over_a_fixed_shift_is_fused_and_no_other_growth(tmp_path):
    # Its earlier window is one whole day, another row of the same day rollup. A week or
    # month compared over a shift or with the previous period is not: its open period is
    # compared with part of another, which no rollup row holds.
    case = _growth_case()
    case["kpis"][0]["grains"] = ["day", "week"]
    case["kpis"] += [
        _growth("by_week_7_days", "7 days", ["day", "week"], []),
        _growth("previous_day", "previous_period", ["day"], []),
        _growth("last_year", "same_period_last_year", ["day"], ["channel"]),
        _growth("also_7_days", "7 days", ["day"], ["channel"]),
    ]
    tables = _tables_of(case, tmp_path / "defs")
    fused = {k for k, kpi in tables.catalog.kpis.items() if tables.rollups.fusable(kpi)}
    assert fused == {"revenue", "revenue_vs_7_days", "revenue_vs_1_month", "also_7_days"}
    # Two growths with the same slices share one join and each joins it again under its
    # own name; a group with a growth carries the slice keys, the others do not.
    insert = str(tables.rollups.values_select(sorted(fused), COMPUTED_AT).compile())
    earlier = re.findall(r"AS (rollups_\d+_earlier_\d+)", insert)
    assert len(earlier) == len(set(earlier)) == 3, earlier
    assert "_cube_slice" in insert and "_cube_v_channel" in insert
    plain = _tables_of(_two_dimension_case(), tmp_path / "plain")
    fused_plain = list(plain.catalog.kpis)
    assert "_cube_slice" not in str(plain.rollups.values_select(fused_plain, COMPUTED_AT).compile())


@pytest.mark.parametrize("dialect", DIALECTS)
def test_fused_growths_compile_for_every_dialect(tmp_path, dialect):
    # Incremental: each group's join reaches back from the run's first day by its growths'
    # longest shift (7 days by channel; a month, as 31 days, in total), and each row is
    # kept from that day on.
    tables = _tables_of(_growth_case(), tmp_path / "defs")
    compiled_dialect, _ = load_dialect(dialect)
    since = sa.bindparam("since", dt.date(2026, 3, 20), type_=sa.Date())
    select = tables.rollups.values_select(list(tables.catalog.kpis), COMPUTED_AT, since)
    sql = str(select.compile(dialect=compiled_dialect, compile_kwargs={"literal_binds": True}))
    sql = sql.replace("`", "").replace('"', "")
    assert sql.lstrip().startswith(("WITH", "SELECT")), sql[:200]
    shifted = {"bigquery": "DATE_ADD("}.get(dialect, "INTERVAL '-1 months'")
    assert shifted in sql
    reach = {"bigquery": "INTERVAL {} DAY"}.get(dialect, "+ {})")
    assert reach.format(-7) in sql and reach.format(-31) in sql, sql
    assert sql.count("period_end >= ") == 2 + 3  # the two joins, the three KPIs' rows


def _daily_sales(first: dt.date, days: int) -> pd.DataFrame:
    """Two channels on every day, amounts that differ from day to day and channel to
    channel, so every growth is a number and a shifted day misread shows."""
    rows = [
        {"date": first + dt.timedelta(days=i), "channel": channel, "amount": float(amount)}
        for i in range(days)
        for channel, amount in (("a", 100 + 7 * i + (i % 5) ** 2), ("b", 40 + (i * 13) % 29))
    ]
    return pd.DataFrame(rows)


def test_a_fused_growth_after_a_revised_day_has_the_rows_of_a_full_refresh(warehouse_url, tmp_path):
    """An incremental refresh from a revised day recomputes the growths of the days after
    it, which compare with days before it: the fused join reaches back to those days
    (a join cut at the revised day would compare them with nothing)."""
    case = _growth_case()
    tables = _tables_of(case, tmp_path / "defs")
    assert tables.rollups.fusable(tables.catalog.kpis["revenue_vs_1_month"])
    first, as_of = dt.date(2026, 1, 1), dt.date(2026, 3, 31)
    raw, v = tables.raw_tables["sales"], tables.values
    wh = Warehouse(warehouse_url)
    try:
        wh.ensure_tables(tables.all_tables())
        wh.replace_rows(raw, None, _daily_sales(first, (as_of - first).days + 1))
        refresh_periods(wh, tables, as_of)
        refresh_kpi_values(wh, tables, computed_at=COMPUTED_AT)
        revised = dt.date(2026, 3, 20)
        with wh.transaction() as conn:
            conn.execute(raw.update().where(raw.c.date == revised).values(amount=raw.c.amount * 3))
        later = COMPUTED_AT + dt.timedelta(days=1)
        refresh_kpi_values(wh, tables, computed_at=later)
        keys = [v.c.kpi_id, v.c.grain, v.c.period_start, v.c.channel]
        rows = sa.select(*keys, v.c.value, v.c.numerator, v.c.denominator, v.c.computed_at)
        incremental = wh.rows(rows.order_by(*keys))
        recomputed = {r[:4] for r in incremental if r[-1] == later}
        growths = {r for r in recomputed if r[0] != "revenue"}
        # Only the days from the revised one on; for each growth every such day and slice.
        assert {r[2] for r in recomputed} == {
            revised + dt.timedelta(days=i) for i in range((as_of - revised).days + 1)
        }
        assert len(growths) == 12 * 4  # 12 days: by 7 days total, a and b; by a month total
        refresh_kpi_values(wh, tables, computed_at=later, full_refresh=True)
        full = wh.rows(rows.order_by(*keys))
        assert len(full) == len(incremental) > 200
        for got, want in zip(incremental, full, strict=True):
            assert got[:4] == want[:4]
            for g, w in zip(got[4:7], want[4:7], strict=True):
                assert (g is None and w is None) or g == pytest.approx(w, rel=1e-12), got
        # The week after the revised day compares with the week before it, read back.
        day = sa.select(v.c.value, v.c.denominator).where(
            v.c.kpi_id == "revenue_vs_7_days",
            v.c.channel.is_(None),
            v.c.period_start == revised + dt.timedelta(days=3),
        )
        [(value, before)] = wh.rows(day)
        i = (revised - first).days - 4  # the day 7 days before, as _daily_sales made it
        assert before == (100 + 7 * i + (i % 5) ** 2) + (40 + (i * 13) % 29)
        assert value is not None
    finally:
        wh.dispose()


def _kpi(kpi_id: str, grains: list[str], dims: list, **body) -> dict:
    return {
        "id": kpi_id,
        "name": kpi_id,
        "description": "a KPI a growth is taken of",
        "owner": "t@example.com",
        "unit": "count",
        "direction": "higher_is_better",
        "grains": grains,
        "dimensions": dims,
        **body,
    }


def _of(kpi_id: str, of: str, offset: str, dims: list) -> dict:
    growth = _growth(kpi_id, offset, ["day"], dims)
    growth["period_over_period"]["of"] = of
    return growth


def _source(table: str, measures: dict) -> dict:
    """A daily source of ``table`` by channel and campaign, with ``measures``' columns."""
    string = {"type": "string"}
    return {
        "table": table,
        "time": {"column": "date", "type": "date", "time_zone": "UTC"},
        "columns": {"date": {"type": "date"}, "channel": string, "campaign": string, **measures},
        "dimensions": {"channel": {"column": "channel"}, "campaign": {"column": "campaign"}},
    }


def _bases_case() -> dict:
    """Growths by day over every kind of base the rollups fuse: a sum by two dimensions
    at once, a ratio, an average, a filtered sum, a derived KPI over two sources; growth
    slices other than the base's; shifts of days, weeks and a month (from 31 March and 30
    March to 29 February in 2024)."""
    additive = {"additivity": "additive"}
    visits = _source(
        "raw.visits",
        {"sessions": {"type": "integer", **additive}, "engaged": {"type": "integer", **additive}},
    )
    orders = _source("raw.orders", {"amount": {"type": "number", **additive}})
    sessions = {"source": "visits", "agg": "sum", "expr": "sessions"}
    amount = {"source": "orders", "agg": "sum", "expr": "amount"}
    kpis = [
        _kpi(
            "sessions", ["day", "week"], [["channel", "campaign"]], type="simple", measure=sessions
        ),
        _kpi(
            "engagement",
            ["day"],
            ["channel"],
            type="ratio",
            numerator={"source": "visits", "agg": "sum", "expr": "engaged"},
            denominator=sessions,
        ),
        _kpi("revenue", ["day", "month"], ["channel"], type="simple", measure=amount),
        _kpi(
            "basket",
            ["day"],
            [],
            type="simple",
            measure={"source": "orders", "agg": "average", "expr": "amount"},
        ),
        _kpi(
            "paid_revenue",
            ["day"],
            [],
            type="simple",
            measure={**amount, "filter": "channel = 'paid'"},
        ),
        _kpi("per_session", ["day"], ["channel"], type="derived", expr="revenue / sessions"),
        _of("sessions_vs_7_days", "sessions", "7 days", [["channel", "campaign"], "channel"]),
        _of("engagement_vs_1_month", "engagement", "1 month", ["channel"]),
        _of("revenue_vs_2_weeks", "revenue", "2 weeks", ["campaign"]),
        _of("basket_vs_1_day", "basket", "1 day", []),
        _of("paid_vs_7_days", "paid_revenue", "7 days", []),
        _of("per_session_vs_1_month", "per_session", "1 month", ["channel"]),
    ]
    return {
        "dimensions": {"channel": {}, "campaign": {}},
        "sources": {"visits": visits, "orders": orders},
        "kpis": kpis,
    }


def _bases_rows(first: dt.date, last: dt.date, scale: float = 1.0) -> dict[str, pd.DataFrame]:
    """Visits every day on two channels and two campaigns (c2 from 10 February); orders
    on four days of five, some without an amount."""
    visits, orders = [], []
    for i in range((last - first).days + 1):
        day = first + dt.timedelta(days=i)
        for j, channel in enumerate(("paid", "organic")):
            for k, campaign in enumerate(("c1", "c2")):
                if campaign == "c2" and day < dt.date(2024, 2, 10):
                    continue
                sessions = 20 + (i * 7 + j * 5 + k * 3) % 23
                visits.append((day, channel, campaign, sessions, sessions // (2 + j + k)))
                if i % 5 != 4:
                    amount = None if (i + j + k) % 9 == 0 else scale * (10 + (i * 13 + j) % 37)
                    orders.append((day, channel, campaign, amount))
    columns = ["date", "channel", "campaign"]
    return {
        "visits": pd.DataFrame(visits, columns=[*columns, "sessions", "engaged"]),
        "orders": pd.DataFrame(orders, columns=[*columns, "amount"]),
    }


def _refreshed_without(
    wh: Warehouse, tables: KpiTables, rows: dict, held_back: dt.date, as_of: dt.date
) -> None:
    """The tables made and ``rows`` loaded but those of ``held_back`` (to arrive late),
    then the periods and a first refresh as of ``as_of``."""
    wh.ensure_tables(tables.all_tables())
    for name, frame in rows.items():
        wh.replace_rows(tables.raw_tables[name], None, frame[frame["date"] != held_back])
    refresh_periods(wh, tables, as_of)
    refresh_kpi_values(wh, tables, computed_at=COMPUTED_AT)


def test_fused_growths_have_the_rows_of_the_per_kpi_queries(warehouse_url, tmp_path):
    """On every kind of base, in a full refresh and then in incremental ones (a revised
    day, a leap day added late, new days), the fused statement writes the rows the
    compiler's per-KPI queries give."""
    case = _bases_case()
    tables = _tables_of(case, tmp_path / "defs")
    raw = _tables_of(case, tmp_path / "defs", use_cubes=False)
    growths = [k for k in tables.catalog.kpis if k.endswith(("_days", "_weeks", "_month", "_day"))]
    assert len(growths) == 6 and all(
        tables.rollups.fusable(tables.catalog.kpis[k]) for k in growths
    )
    first, as_of = dt.date(2024, 1, 1), dt.date(2024, 3, 31)
    rows = _bases_rows(first, as_of)
    leap = dt.date(2024, 2, 29)
    wh = Warehouse(warehouse_url)
    try:
        _refreshed_without(wh, tables, rows, leap, as_of)
        assert_same(stored_rows(wh, tables), per_kpi_rows(wh, raw, COMPUTED_AT))
        # The leap day arrives late, and 1 March's orders are revised.
        orders = tables.raw_tables["orders"]
        wh.replace_rows(
            orders, orders.c.date == leap, rows["orders"][rows["orders"]["date"] == leap]
        )
        revised = _bases_rows(dt.date(2024, 3, 1), dt.date(2024, 3, 1), scale=3.0)["orders"]
        wh.replace_rows(orders, orders.c.date == dt.date(2024, 3, 1), revised)
        visits = tables.raw_tables["visits"]
        wh.replace_rows(
            visits, visits.c.date == leap, rows["visits"][rows["visits"]["date"] == leap]
        )
        refresh_kpi_values(wh, tables, computed_at=COMPUTED_AT)
        assert_same(stored_rows(wh, tables), per_kpi_rows(wh, raw, COMPUTED_AT))
        # Two new days.
        later = dt.date(2024, 4, 2)
        new = _bases_rows(first, later)
        for name, frame in new.items():
            table = tables.raw_tables[name]
            wh.replace_rows(table, table.c.date > as_of, frame[frame["date"] > as_of])
        refresh_periods(wh, tables, later)
        refresh_kpi_values(wh, tables, computed_at=COMPUTED_AT)
        assert_same(stored_rows(wh, tables), per_kpi_rows(wh, raw, COMPUTED_AT))
    finally:
        wh.dispose()


@pytest.mark.parametrize("source", ["_cube_sales", "earlier_0", "earlier_1"])
def test_a_source_named_like_the_growth_join_s_columns_or_aliases(source, tmp_path):
    """The self-join reads the slice keys by name and takes an alias no source's rollup
    has: a source named with the keys' prefix, or like the alias, changes nothing."""
    case = _growth_case()
    case["sources"] = {source: case["sources"]["sales"]}
    for kpi in case["kpis"]:
        if "measure" in kpi:
            kpi["measure"]["source"] = source
    tables = _tables_of(case, tmp_path / "defs")
    rows = pd.DataFrame(case["rows"]["sales"])
    rows["date"] = pd.to_datetime(rows["date"]).dt.date
    wh = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    try:
        wh.ensure_tables(tables.all_tables())
        wh.replace_rows(tables.raw_tables[source], None, rows)
        refresh_periods(wh, tables, dt.date.fromisoformat(str(case["as_of"])))
        refresh_kpi_values(wh, tables, computed_at=COMPUTED_AT)
        v = tables.values
        day = sa.select(v.c.value, v.c.denominator).where(
            v.c.kpi_id == "revenue_vs_1_month",
            v.c.channel.is_(None),
            v.c.period_start == dt.date(2026, 3, 28),
        )
        # 28 March against 28 February (50): -1 (tests/kpi_cases/growth_over_fixed_offsets).
        assert wh.rows(day) == [(-1.0, 50.0)]
    finally:
        wh.dispose()
