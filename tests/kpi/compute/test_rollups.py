"""The refresh path: daily cubes, period rollups and the fused statement
(kpi/compute/rollups.py).

The numbers of this path are checked elsewhere, against hand-worked rows (tests/kpi_cases,
path "refresh"), against a pandas reference on random data
(tests/kpi/compute/test_kpi_properties.py) and against the self-contained queries on the
whole shipped catalogue after a real run (tests/e2e/test_pipeline.py). This file checks its
shape: which KPIs it takes, what the cubes store, and that its SQL compiles for every
dialect.
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
from kpi.compute.changes import statement_fingerprint
from kpi.compute.tables import KpiTables
from kpi.language.loader import load_catalog
from kpi.language.models import Agg, KpiType
from kpi.refresh import CUBES, refresh_kpi_values, refresh_periods
from kpi.warehouse.connection import Warehouse

COMPUTED_AT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CASES = Path(__file__).resolve().parents[2] / "kpi_cases"


@pytest.fixture(scope="module")
def tables() -> KpiTables:
    return KpiTables.for_catalog(load_catalog(), use_cubes=True)


def test_plain_kpis_are_fused_and_the_others_are_not(tables):
    catalog = tables.catalog
    fused = {k for k, kpi in catalog.kpis.items() if tables.rollups.fusable(kpi)}
    # Sums, ratios and derived KPIs over them: one statement.
    assert {"sessions", "conversion_rate", "roas", "bounce_rate", "average_order_value"} <= fused
    # Running windows, growths and distinct counts need days or rows, not period sums (but
    # a growth by day over a fixed shift, which the shipped catalogue has none of, and a
    # running total in grains that tile its window: the shipped month to date is reported
    # by week too, which a month does not tile; tests/kpi/compute/test_fused_*.py).
    for kpi_id, kpi in catalog.kpis.items():
        needs_days = kpi.type in (KpiType.cumulative, KpiType.period_over_period) or any(
            m.agg in (Agg.count_distinct, Agg.last) for _, m in kpi.measures
        )
        if needs_days:
            assert kpi_id not in fused, kpi_id
    assert "revenue_month_to_date" not in fused
    assert "revenue_growth_mom" not in fused
    assert len(fused) >= 20, sorted(fused)


def test_a_filter_on_a_cube_dimension_reads_the_unfiltered_column(tables):
    # ROAS and CPA read paid revenue and paid transactions: `channel in (...)` is applied to
    # cube rows, so the GA4 scan sums revenue and transactions once, not twice.
    compiler = tables.compiler
    read = compiler.cubes.measures["ga4_traffic"]
    stored = compiler.cubes.stored["ga4_traffic"]
    assert any(f and "channel" in f for _, f in read)
    assert all(f is None for _, f in stored), stored
    assert len(stored) < len(read)
    columns = {c.name for c in compiler.cubes.tables["ga4_traffic"].columns}
    # Only the parts some KPI needs: sums need no min or max (their non-null count is the
    # sample size).
    assert not {c for c in columns if c.endswith(("_low", "_high"))}, columns


def test_a_filter_on_a_raw_column_is_applied_while_scanning(tables):
    compiler = tables.compiler
    stored = compiler.cubes.stored["survey_answers"]
    assert (None, "csat_score >= 4") in stored
    j = stored.index((None, "csat_score >= 4"))
    assert f"s{j}_n" in compiler.cubes.tables["survey_answers"].c


@pytest.mark.parametrize("dialect", DIALECTS)
def test_refresh_statements_compile_for_every_dialect(tables, dialect):
    compiled_dialect, _ = load_dialect(dialect)
    compiler, rollups = tables.compiler, tables.rollups
    fused = [k for k, kpi in tables.catalog.kpis.items() if rollups.fusable(kpi)]

    def sql(statement) -> str:
        compiled = statement.compile(
            dialect=compiled_dialect, compile_kwargs={"literal_binds": True}
        )
        return str(compiled).replace("`", "").replace('"', "")

    for statement in [compiler.cubes.select(s) for s in compiler.cubes.tables] + [
        rollups.rollup_select(s) for s in compiler.cubes.tables
    ]:
        assert sql(statement).lstrip().startswith("SELECT")
    # The fused KPIs go in as one INSERT whose shared joins are CTEs: BigQuery and Snowflake
    # want them after INSERT INTO, DuckDB and PostgreSQL before it.
    select = rollups.values_select(fused, COMPUTED_AT)
    names = [c.name for c in select.selected_columns]
    insert = sql(tables.values.insert().from_select(names, select)).lstrip()
    first = "INSERT" if dialect in ("bigquery", "snowflake") else "WITH"
    assert insert.startswith(first), insert[:200]

    def shared_join(kpi_id: str) -> str:
        after = insert.split(f"'{kpi_id}' AS kpi_id", 1)[1]
        return re.search(r"FROM (rollups_\d+)", after).group(1)

    # GA4 KPIs by channel and device share one join; GA4 over ad spend another.
    assert shared_join("sessions") == shared_join("conversion_rate") == shared_join("revenue")
    assert shared_join("roas") == shared_join("cost_per_acquisition") != shared_join("sessions")
    for cte in set(re.findall(r"(rollups_\d+) AS", insert)):
        assert insert.count(f"{cte} AS") == 1, cte  # each join is defined once
    assert "'roas' AS kpi_id" in insert


def _two_dimension_case() -> dict:
    return yaml.safe_load((CASES / "two_dimension_slice.yaml").read_text())


def _tables_of(case: dict, folder) -> KpiTables:
    """The tables of a case's definitions (tests/kpi_cases), written to ``folder``."""
    folder.mkdir()
    sources = {k: case[k] for k in ("dimensions", "sources")}
    sources["reporting"] = {"time_zone": "UTC"}
    (folder / "sources.yaml").write_text(yaml.safe_dump(sources))
    (folder / "test.yaml").write_text(yaml.safe_dump({"area": "test", "kpis": case["kpis"]}))
    return KpiTables.for_catalog(load_catalog(folder), use_cubes=True)


def test_a_dense_slice_by_two_dimensions_is_fused_with_its_rollup_rows(tmp_path):
    # Revenue by channel and by (channel, device), revenue per session by (channel,
    # device): both fused (tests/kpi_cases/two_dimension_slice.yaml checks their numbers on
    # this path). Each rollup holds the total and exactly the slices they read, in the
    # grains they read.
    tables = _tables_of(_two_dimension_case(), tmp_path / "defs")
    rollups = tables.rollups
    assert all(rollups.fusable(k) for k in tables.catalog.kpis.values())
    assert rollups.grains["orders"] == {
        (): {"day", "month"},
        ("channel",): {"day", "month"},
        ("channel", "device"): {"day", "month"},
    }
    # Sessions are read by (channel, device) only: no rollup rows by channel alone.
    assert rollups.grains["visits"] == {
        (): {"day", "month"},
        ("channel", "device"): {"day", "month"},
    }
    columns = [c.name for c in rollups.rollup_select("orders").selected_columns]
    assert columns[:5] == ["grain", "period_start", "slice", "v_channel", "v_device"]


def _sparse_case() -> dict:
    return yaml.safe_load((CASES / "sparse_slices.yaml").read_text())


def test_a_sparse_slice_of_a_function_of_period_sums_is_fused(tmp_path):
    # Campaign is sparse (tests/kpi_cases/sparse_slices.yaml checks the numbers on every
    # path): sums, the ratio over two sources and the growth by day over a fixed shift are
    # fused; the running total and the growth over the previous period need their days.
    tables = _tables_of(_sparse_case(), tmp_path / "defs")
    kpis, rollups = tables.catalog.kpis, tables.rollups
    fused = {k for k, kpi in kpis.items() if rollups.fusable(kpi)}
    assert fused == {"revenue", "revenue_per_session", "revenue_vs_1_day", "signups"}
    # A signups slice only months and years read is kept by month, as a dense one would be.
    assert tables.compiler.cubes.month_dims["signups"] == ["channel", "campaign"]
    assert rollups.grains["signups"] == {
        (): {"month", "year"},
        ("campaign", "channel"): {"month", "year"},
    }
    # The dense slice (channel) crosses the periods with its values; the sparse ones take
    # their rows from the rollups of the sources read, as a union over the two sources of
    # the ratio (a combination with data in both is one row).
    sql = str(rollups.values_select(["revenue_per_session"], COMPUTED_AT).compile())
    assert "rollups_0_rows" in sql
    assert sql.count("rollups_0_present_orders") >= 2 and "rollups_0_present_visits" in sql
    assert re.search(r"rollups_0_present_orders\.slice = ", sql), sql
    # Their compared windows stay on the comparison statements: no row compares with most
    # periods x values of a sparse slice.
    assert not any(tables.compared_windows.covers(kpis[k]) for k in fused - {"signups"})


@pytest.mark.parametrize("dialect", DIALECTS)
def test_sparse_fused_statements_compile_for_every_dialect(tmp_path, dialect):
    tables = _tables_of(_sparse_case(), tmp_path / "defs")
    compiled_dialect, _ = load_dialect(dialect)
    fused = [k for k, kpi in tables.catalog.kpis.items() if tables.rollups.fusable(kpi)]
    select = tables.rollups.values_select(fused, COMPUTED_AT, since=dt.date(2026, 1, 2))
    names = [c.name for c in select.selected_columns]
    insert = tables.values.insert().from_select(names, select)
    sql = str(insert.compile(dialect=compiled_dialect, compile_kwargs={"literal_binds": True}))
    assert "INSERT" in sql and "UNION" in sql, sql[:200]


def test_a_rollup_slice_is_summed_in_the_grains_read_only(tmp_path):
    case = _two_dimension_case()
    for kpi in case["kpis"]:
        kpi["grains"] = ["month"]
    case["kpis"][0]["dimensions"] = [["device", "channel"]]  # either order is one slice
    tables = _tables_of(case, tmp_path / "month")
    assert tables.rollups.grains["orders"] == {(): {"month"}, ("channel", "device"): {"month"}}
    sql = str(
        tables.rollups.rollup_select("orders").compile(compile_kwargs={"literal_binds": True})
    )
    assert sql.count("IN ('month')") == 2, sql
    # One shared join per set of sources read with the same slices: orders alone (revenue)
    # and orders with visits (revenue per session).
    fused = list(tables.catalog.kpis)
    insert = str(tables.rollups.values_select(fused, COMPUTED_AT).compile())
    assert len(set(re.findall(r"(rollups_\d+) AS", insert))) == 2  # orders; orders + visits


def _month_grained_case() -> dict:
    return yaml.safe_load((CASES / "month_grained_slices.yaml").read_text())


def test_a_slice_only_month_grained_kpis_read_is_kept_by_month(tmp_path):
    # Campaign revenue by (channel, campaign) in months, fiscal quarters and years: the
    # daily cube keeps the channel (revenue by day reads it) and not the campaign; the
    # monthly cube keeps both, and the rollup sums that slice from it
    # (tests/kpi_cases/month_grained_slices.yaml checks the numbers).
    tables = _tables_of(_month_grained_case(), tmp_path / "defs")
    cubes = tables.compiler.cubes
    assert cubes.dims["orders"] == ["channel"]
    assert cubes.month_dims["orders"] == ["channel", "campaign"]
    month = cubes.month_tables["orders"]
    assert month.name == "month_cube_orders"
    assert "checksum" not in month.c  # the day checksums come from the daily cube
    assert cubes.table_with("orders", ("channel",)) is cubes.tables["orders"]
    assert cubes.table_with("orders", ("campaign", "channel")) is month
    sql = str(
        tables.rollups.rollup_select("orders").compile(compile_kwargs={"literal_binds": True})
    )
    reads = {
        re.search(r"'([a-z,]*)' AS slice", branch).group(1): (
            "month_cube_orders" if "month_cube_orders" in branch else "cube_orders"
        )
        for branch in sql.split("UNION ALL")
    }
    assert reads == {
        "": "cube_orders",
        "channel": "cube_orders",
        "campaign,channel": "month_cube_orders",
        "campaign": "month_cube_orders",
    }
    columns = [c.name for c in tables.rollups.rollup_select("orders").selected_columns]
    assert columns[:5] == ["grain", "period_start", "slice", "v_channel", "v_campaign"]


def test_a_monthly_cube_keeps_the_daily_dimensions_its_filters_read(tmp_path):
    # Paid revenue by campaign alone: its filter (channel = 'paid') is applied to cube rows,
    # as the daily cube keeps the channel; the monthly cube must keep it too.
    case = _month_grained_case()
    case["kpis"] = [
        k for k in case["kpis"] if k["id"] in ("revenue_by_day", "paid_campaign_revenue")
    ]
    cubes = _tables_of(case, tmp_path / "filter").compiler.cubes
    assert cubes.reads[("orders", ("revenue", "channel = 'paid'"))] == (0, "channel = 'paid'")
    assert cubes.month_dims["orders"] == ["channel", "campaign"]


def test_a_slice_also_read_by_day_or_week_stays_in_the_daily_cube(tmp_path):
    case = _month_grained_case()
    for kpi in case["kpis"]:
        if kpi["id"] == "paid_campaign_revenue":
            kpi["grains"] = ["week", "quarter"]  # weeks are not whole months
    cubes = _tables_of(case, tmp_path / "week").compiler.cubes
    # Campaign is now a daily dimension, and so (channel, campaign) is in the daily cube.
    assert cubes.dims["orders"] == ["channel", "campaign"]
    assert cubes.month_tables == {} and cubes.month_dims == {}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_monthly_cube_statements_compile_for_every_dialect(tmp_path, dialect):
    tables = _tables_of(_month_grained_case(), tmp_path / "defs")
    compiled_dialect, _ = load_dialect(dialect)
    cubes = tables.compiler.cubes
    for statement in (
        cubes.month_select("orders", tables.compiler.day_periods),
        tables.rollups.rollup_select("orders"),
    ):
        sql = str(
            statement.compile(dialect=compiled_dialect, compile_kwargs={"literal_binds": True})
        )
        assert sql.lstrip().startswith("SELECT"), sql[:200]
        assert "day_periods" in sql


def test_moving_a_slice_between_the_cubes_changes_the_statement_fingerprint(tmp_path):
    # The cube statements are compiled once and kept under a fingerprint of the catalogue
    # and the cubes' layout (kpi.warehouse.statements): a KPI that starts reading its slice
    # by week moves the campaign into the daily cube, and no statement compiled for the
    # monthly cube may be reused.
    case = _month_grained_case()
    monthly = _tables_of(case, tmp_path / "monthly")
    for kpi in case["kpis"]:
        if kpi["id"] == "paid_campaign_revenue":
            kpi["grains"] = ["week", "quarter"]
    weekly = _tables_of(case, tmp_path / "weekly")

    def fingerprint(t: KpiTables) -> str:
        return statement_fingerprint(t.catalog, t.layout(), "duckdb+duckdb_engine")

    assert monthly.layout()["cubes"]["orders"]["month_dims"] == ["channel", "campaign"]
    assert weekly.layout()["cubes"]["orders"]["month_dims"] is None
    assert fingerprint(monthly) != fingerprint(weekly)


def test_a_refresh_keeps_and_reuses_the_monthly_cube_statement(warehouse_url, tmp_path):
    case = _month_grained_case()
    tables = _tables_of(case, tmp_path / "defs")
    spec = tables.catalog.sources["orders"]
    rows = pd.DataFrame(case["rows"]["orders"])
    rows["ordered_at"] = pd.to_datetime(rows["ordered_at"], utc=True)
    wh = Warehouse(warehouse_url)
    try:
        wh.ensure_tables(tables.all_tables())
        wh.replace_rows(tables.raw_tables["orders"], None, rows[list(spec.columns)])
        refresh_periods(wh, tables, dt.date(2026, 4, 2))
        refresh_kpi_values(wh, tables, computed_at=COMPUTED_AT)
        kept = tables.compiled_statements
        cached = sa.select(kept.c.statement_key, kept.c.compiled_at).where(kept.c.step == CUBES)
        first = dict(wh.rows(cached))
        assert "month_cube|orders" in first
        # A revised order: the next refresh runs the kept statement and sees the change.
        raw = tables.raw_tables["orders"]
        with wh.transaction() as conn:
            conn.execute(raw.update().where(raw.c.revenue == 80.0).values(revenue=81.0))
        refresh_kpi_values(wh, tables, computed_at=COMPUTED_AT + dt.timedelta(days=1))
        # Nothing compiled again; the statement of the monthly cube's rows from a month on
        # (kpi/compute/cube_upkeep.py) is compiled the first time it is needed, then kept.
        second = dict(wh.rows(cached))
        assert {k: v for k, v in second.items() if k in first} == first
        assert set(second) - set(first) == {"month_cube_since|orders"}
        with wh.transaction() as conn:
            conn.execute(raw.update().where(raw.c.revenue == 81.0).values(revenue=80.0))
        refresh_kpi_values(wh, tables, computed_at=COMPUTED_AT + dt.timedelta(days=2))
        assert dict(wh.rows(cached)) == second
        with wh.transaction() as conn:
            conn.execute(raw.update().where(raw.c.revenue == 80.0).values(revenue=81.0))
        refresh_kpi_values(wh, tables, computed_at=COMPUTED_AT + dt.timedelta(days=3))
        v = tables.values
        quarter = sa.select(v.c.value).where(
            v.c.kpi_id == "campaign_revenue",
            v.c.grain == "quarter",
            v.c.channel == "paid",
            v.c.campaign == "spring",
            v.c.period_start == dt.date(2026, 1, 1),
        )
        # _tables_of reports in UTC by calendar quarters: both paid spring orders are in Q1.
        assert wh.rows(quarter) == [(91.0,)]  # 10 + 81
        # The incremental refresh wrote the rows a full recompute writes.
        keys = [v.c.kpi_id, v.c.grain, v.c.period_start, v.c.channel, v.c.campaign]
        rows = sa.select(*keys, v.c.value, v.c.sample_size).order_by(*keys)
        incremental = wh.rows(rows)
        refresh_kpi_values(wh, tables, computed_at=COMPUTED_AT, full_refresh=True)
        assert len(incremental) > 50
        assert wh.rows(rows) == incremental
    finally:
        wh.dispose()
