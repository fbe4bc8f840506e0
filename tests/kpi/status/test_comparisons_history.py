"""``kpi_comparisons``: history before the first day of data, to-date KPIs against the same
span last year, the direction-aware ``variance_favourable``, and period-over-period KPIs.

Every number is worked by hand from the rows below, on DuckDB and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math

import pandas as pd
import pytest
import sqlalchemy as sa

from kpi.compute.tables import KpiTables
from kpi.language.loader import load_catalog
from kpi.language.models import Kpi
from kpi.language.status import Status
from kpi.refresh import (
    refresh_catalog,
    refresh_comparisons,
    refresh_kpi_values,
    refresh_periods,
    refresh_scorecard_view,
    refresh_targets,
)
from kpi.status.comparisons import comparison_select
from kpi.status.judgement import status_of
from kpi.warehouse.connection import Warehouse

D = dt.date

SOURCES_YAML = """\
reporting: {time_zone: UTC, week_start: monday}
dimensions:
  channel: {description: channel}
sources:
  daily:
    table: raw.daily
    time: {column: date, type: date, time_zone: UTC}
    columns:
      date: {type: date}
      channel: {type: string}
      sessions: {type: integer, additivity: additive}
      cost: {type: number, additivity: additive}
      conversions: {type: integer, additivity: additive}
    dimensions:
      channel: {column: channel}
  orders:
    table: raw.orders
    time: {column: date, type: date, time_zone: UTC}
    columns:
      date: {type: date}
      revenue: {type: number, additivity: additive}
"""

KPIS_YAML = """\
area: test
kpis:
  - id: sessions
    name: Sessions
    description: sum of daily sessions; daily's data starts 2025-03-10
    owner: t@example.com
    unit: count
    direction: higher_is_better
    type: simple
    measure: {source: daily, agg: sum, expr: sessions}
    dimensions: [channel]
    grains: [day, month]
    target: {value: 3100, grain: month}
  - id: cpa
    name: CPA
    description: cost per conversion, lower is better
    owner: t@example.com
    unit: currency
    direction: lower_is_better
    type: ratio
    numerator: {source: daily, agg: sum, expr: cost}
    denominator: {source: daily, agg: sum, expr: conversions}
    grains: [month]
    target: {value: 10, grain: month}
  - id: cpa_band
    name: CPA in a band
    description: cost per conversion, within 8 .. 12
    owner: t@example.com
    unit: currency
    direction: within_band
    type: ratio
    numerator: {source: daily, agg: sum, expr: cost}
    denominator: {source: daily, agg: sum, expr: conversions}
    grains: [month]
    target: {band: {min: 8, max: 12}, grain: month}
  - id: revenue
    name: Revenue
    description: sum of order revenue; orders' data starts 2025-01-01
    owner: t@example.com
    unit: currency
    direction: higher_is_better
    type: simple
    measure: {source: orders, agg: sum, expr: revenue}
    grains: [day, week, month]
  - id: revenue_mtd
    name: Revenue month to date
    description: running total of revenue within the month
    owner: t@example.com
    unit: currency
    direction: higher_is_better
    type: cumulative
    cumulative: {of: revenue, to_date: month}
    grains: [day, week, month]
  - id: revenue_qtd
    name: Revenue quarter to date
    description: running total within the quarter, by week only (no stored day rows)
    owner: t@example.com
    unit: currency
    direction: higher_is_better
    type: cumulative
    cumulative: {of: revenue, to_date: quarter}
    grains: [week]
  - id: revenue_ytd
    name: Revenue year to date
    description: running total within the year
    owner: t@example.com
    unit: currency
    direction: higher_is_better
    type: cumulative
    cumulative: {of: revenue, to_date: year}
    grains: [day, month]
  - id: revenue_growth
    name: Revenue growth
    description: month over month, higher is better, target +5%
    owner: t@example.com
    unit: percent
    direction: higher_is_better
    type: period_over_period
    period_over_period: {of: revenue, offset: previous_period}
    grains: [month]
    target: {value: 0.05, grain: month}
  - id: sessions_growth
    name: Sessions growth
    description: month over month; daily's first month (March 2025) is partly covered
    owner: t@example.com
    unit: percent
    direction: higher_is_better
    type: period_over_period
    period_over_period: {of: sessions, offset: previous_period}
    grains: [month]
    target: {value: 0.05, grain: month}
  - id: revenue_growth_low
    name: Revenue growth (lower is better)
    description: the same growth, read the other way, target at most +5%
    owner: t@example.com
    unit: percent
    direction: lower_is_better
    type: period_over_period
    period_over_period: {of: revenue, offset: previous_period}
    grains: [month]
    target: {value: 0.05, grain: month}
"""

# (date, channel, sessions, cost, conversions): the first day of daily is 2025-03-10.
DAILY = [
    (D(2025, 3, 10), "a", 5, 0.0, 0),
    (D(2025, 12, 2), "a", 7, 20.0, 2),
    (D(2026, 2, 15), "a", 11, 10.0, 2),
    (D(2026, 3, 9), "a", 13, 30.0, 2),
    (D(2026, 11, 20), "a", 3, 24.0, 2),
    (D(2026, 12, 1), "a", 17, 0.0, 0),
]
# (date, revenue): the first day of orders, and of all data, is 2025-01-01. By month:
# 2025: Jan 100, Oct 60, Nov 90, Dec 1000; 2026: Aug 16, Sep 440, Oct 550, Nov 500, Dec 0.
ORDERS = [
    (D(2025, 1, 1), 100.0),
    (D(2025, 10, 10), 60.0),
    (D(2025, 11, 2), 20.0),
    (D(2025, 11, 29), 30.0),
    (D(2025, 11, 30), 40.0),
    (D(2025, 12, 1), 1000.0),
    (D(2026, 8, 30), 7.0),
    (D(2026, 8, 31), 9.0),
    (D(2026, 9, 15), 440.0),
    (D(2026, 10, 15), 50.0),
    (D(2026, 10, 31), 500.0),
    (D(2026, 11, 10), 200.0),
    (D(2026, 11, 30), 300.0),
]
AS_OF = D(2026, 12, 3)
NOW = dt.datetime(2026, 12, 4, 6, tzinfo=dt.UTC)


def _null(value) -> bool:
    return value is None or pd.isna(value)


def _day(value) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


@pytest.fixture
def compared(request, tmp_path, warehouse_url):
    """kpi_comparisons (every row, keyed by kpi, grain, period and channel) and the
    scorecard view, after a refresh in pipeline order with cubes, as the pipeline runs it
    (or, parametrized with False, straight from the raw tables)."""
    use_cubes = getattr(request, "param", True)
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "sources.yaml").write_text(SOURCES_YAML)
    (tmp_path / "defs" / "test.yaml").write_text(KPIS_YAML)
    catalog = load_catalog(tmp_path / "defs")
    tables = KpiTables.for_catalog(catalog, use_cubes=use_cubes)
    wh = Warehouse(warehouse_url)
    try:
        wh.ensure_tables(tables.all_tables())
        daily = pd.DataFrame(DAILY, columns=["date", "channel", "sessions", "cost", "conversions"])
        wh.replace_rows(tables.raw_tables["daily"], None, daily)
        orders = pd.DataFrame(ORDERS, columns=["date", "revenue"])
        wh.replace_rows(tables.raw_tables["orders"], None, orders)
        refresh_catalog(wh, tables)
        periods = refresh_periods(wh, tables, AS_OF)
        refresh_kpi_values(wh, tables)
        refresh_targets(wh, tables, periods)
        refresh_comparisons(wh, tables)
        view = refresh_scorecard_view(wh, tables)
        out = wh.read(tables.comparisons.select())
        scorecard = wh.read(sa.text(f"select * from {view}"))
    finally:
        wh.dispose()
    keys = ["kpi_id", "grain", "period_start", "channel"]
    assert len(out) == len(out[keys].drop_duplicates()), "duplicated kpi_comparisons rows"
    rows = {
        (r.kpi_id, r.grain, _day(r.period_start), None if _null(r.channel) else r.channel): r
        for r in out.itertuples()
    }
    return rows, scorecard


def test_history_before_the_first_day_of_data_is_null_not_zero(compared):
    c, _ = compared
    # February 2025 lies wholly before daily's first day (2025-03-10), though after the
    # first day of all data (orders, 2025-01-01): its stored sessions row says 0, but
    # February 2026 is compared with no history, and shows no change.
    feb = c[("sessions", "month", D(2026, 2, 1), None)]
    assert feb.actual == 11
    assert _null(feb.last_year)
    assert _null(feb.change_ly_abs) and _null(feb.change_ly_rel)
    assert _null(feb.last_year_definition_version)
    assert feb.previous == 0  # January 2026 is known, and had no sessions
    # March 2025 is only partly covered (from the 10th): its 5 sessions are not March's.
    mar = c[("sessions", "month", D(2026, 3, 1), None)]
    assert (mar.actual, mar.previous, mar.change_abs) == (13, 11, 2)
    assert _null(mar.last_year) and _null(mar.change_ly_abs)
    # The first month has no previous (February 2025, before the data), nor has April 2025
    # (its previous, March 2025, is partly covered).
    assert _null(c[("sessions", "month", D(2025, 3, 1), None)].previous)
    assert _null(c[("sessions", "month", D(2025, 4, 1), None)].previous)
    # The open December 2026 (1-3) against 1-3 December 2025, wholly covered: 17 vs 7.
    dec = c[("sessions", "month", D(2026, 12, 1), None)]
    assert (dec.actual, dec.last_year, dec.change_ly_abs, dec.previous) == (17, 7, 10, 0)
    # Days: 2026-03-09 against 2025-03-10 (364 days back, the first day): 13 vs 5;
    # 2026-03-08 against 2025-03-09, before the data: no history, also for the slice.
    assert c[("sessions", "day", D(2026, 3, 9), None)].last_year == 5
    assert _null(c[("sessions", "day", D(2026, 3, 8), None)].last_year)
    assert _null(c[("sessions", "day", D(2026, 3, 8), "a")].last_year)
    first = c[("sessions", "day", D(2025, 3, 10), None)]
    assert first.actual == 5
    assert _null(first.previous) and _null(first.change_abs) and _null(first.change_rel)
    assert c[("sessions", "day", D(2025, 3, 11), None)].previous == 5
    # A running total before the data: revenue month to date on 2025-01-15 against
    # 1-15 January 2024.
    assert _null(c[("revenue_mtd", "day", D(2025, 1, 15), None)].last_year)


@pytest.mark.parametrize("compared", [False], indirect=True, ids=["raw_tables"])
def test_history_before_the_first_day_without_cubes(compared):
    # The first day of each source read from the raw table rather than from its cube.
    test_history_before_the_first_day_of_data_is_null_not_zero(compared)
    test_to_date_kpis_compare_with_the_same_span_last_year(compared)


def test_to_date_kpis_compare_with_the_same_span_last_year(compared):
    c, _ = compared
    # Month to date on 2026-11-30 (the whole of November 2026: 200 + 300) against 1-30
    # November 2025 (20 + 30 + 40), not against 2025-12-01 (364 days back: 1000); and, the
    # month being complete that day, against the whole of October 2026 (50 + 500).
    nov30 = c[("revenue_mtd", "day", D(2026, 11, 30), None)]
    assert (nov30.actual, nov30.last_year, nov30.previous) == (500, 90, 550)
    assert nov30.change_ly_abs == 410
    # 2026-11-29: 1-29 November (200) against 1-29 November 2025 (20 + 30) and 1-29
    # October 2026 (50).
    nov29 = c[("revenue_mtd", "day", D(2026, 11, 29), None)]
    assert (nov29.actual, nov29.last_year, nov29.previous) == (200, 50, 50)
    # The week of 2026-11-23 .. 29 ends on the 29th: the same spans.
    week = c[("revenue_mtd", "week", D(2026, 11, 23), None)]
    assert (week.actual, week.last_year, week.previous) == (200, 50, 50)
    # The as-of day, 2026-12-03: 1-3 December 2026 (0) against 1-3 December 2025 (1000)
    # and 1-3 November 2026 (0).
    dec3 = c[("revenue_mtd", "day", D(2026, 12, 3), None)]
    assert (dec3.actual, dec3.last_year, dec3.previous) == (0, 1000, 0)
    # The month row is unchanged: November against November 2025 and October.
    month = c[("revenue_mtd", "month", D(2026, 11, 1), None)]
    assert (month.actual, month.last_year, month.previous) == (500, 90, 550)
    # Year to date on 2026-11-30 (7 + 9 + 440 + 50 + 500 + 200 + 300) against 1 January ..
    # 30 November 2025 (100 + 60 + 20 + 30 + 40), not against 2025-12-01's 1250; the
    # previous year to date is the same span.
    ytd = c[("revenue_ytd", "day", D(2026, 11, 30), None)]
    assert (ytd.actual, ytd.last_year, ytd.previous) == (1506, 250, 250)
    # Quarter to date by week (no stored day rows: evaluated from the sources): the week
    # ending 2026-11-29 holds 1 October .. 29 November (50 + 500 + 200), against 1 October ..
    # 29 November 2025 (60 + 20 + 30) and the previous quarter's same 60 days, 1 July ..
    # 29 August 2026 (nothing: 30 and 31 August are beyond them).
    qtd = c[("revenue_qtd", "week", D(2026, 11, 23), None)]
    assert (qtd.actual, qtd.last_year, qtd.previous) == (750, 110, 0)
    assert qtd.last_year_definition_version == qtd.definition_version


def test_variance_favourable_is_positive_when_better(compared):
    c, scorecard = compared
    # CPA, lower is better, target 10: February 5 (better), March 15 (worse), November 12.
    for month, actual, variance in ((2, 5, -5), (3, 15, 5), (11, 12, 2)):
        row = c[("cpa", "month", D(2026, month, 1), None)]
        assert (row.actual, row.variance) == (pytest.approx(actual), pytest.approx(variance))
        assert row.variance_favourable == pytest.approx(-variance)
    # Sessions, higher is better: March 2026, 13 against 3100.
    assert c[("sessions", "month", D(2026, 3, 1), None)].variance_favourable == pytest.approx(-3087)
    # A band of 8 .. 12: inside is 0, outside the distance to the nearer edge, negative.
    band = {
        m: c[("cpa_band", "month", m, None)].variance_favourable
        for m in (D(2025, 12, 1), D(2026, 2, 1), D(2026, 3, 1), D(2026, 11, 1))
    }
    assert band == {
        D(2025, 12, 1): 0,
        D(2026, 2, 1): pytest.approx(-3),
        D(2026, 3, 1): pytest.approx(-3),
        D(2026, 11, 1): 0,
    }
    # No target: no variance either way.
    assert _null(c[("revenue", "month", D(2026, 11, 1), None)].variance_favourable)
    # The scorecard (latest complete month, November 2026) shows it.
    card = {r.kpi_id: r for r in scorecard.itertuples()}
    assert card["cpa"].variance_favourable == pytest.approx(-2)
    assert card["sessions"].variance_favourable == pytest.approx(3 - 3100)


def test_period_over_period_kpis_get_history_and_points_attainment(compared, tmp_path):
    c, _ = compared
    # November 2026: (500 - 550) / 550 = -1/11, against October's growth (550 - 440) / 440
    # = 0.25 and November 2025's (90 - 60) / 60 = 0.5, read from kpi_values.
    nov = c[("revenue_growth", "month", D(2026, 11, 1), None)]
    assert nov.actual == pytest.approx(-1 / 11)
    assert (nov.previous, nov.last_year) == (pytest.approx(0.25), pytest.approx(0.5))
    assert nov.change_abs == pytest.approx(-1 / 11 - 0.25)
    assert nov.previous_definition_version == nov.definition_version
    # Attainment is the difference in growth points, not a ratio (-1.82 = -182%):
    # -1/11 - 0.05. Status compares the levels the growths reach: (1 - 1/11) / 1.05 = 0.866
    # is below the off-track threshold of 0.9.
    assert nov.attainment == pytest.approx(-1 / 11 - 0.05)
    assert nov.variance_favourable == pytest.approx(-1 / 11 - 0.05)
    assert nov.status == Status.off_track
    # October: 0.25 against 0.05 is 20 points ahead (not 500%): 1.25 / 1.05 on track.
    oct_ = c[("revenue_growth", "month", D(2026, 10, 1), None)]
    assert oct_.attainment == pytest.approx(0.20)
    assert oct_.status == Status.on_track
    assert oct_.previous == pytest.approx((440 - 16) / 16)
    assert _null(oct_.last_year)  # October 2025 over September 2025's 0: undefined
    # Lower is better: the same growths read the other way round. November's fall is
    # 0.05 + 1/11 points better than the target (1.05 / (10/11) = 1.155: on track);
    # October's rise is 20 points worse (1.05 / 1.25 = 0.84: off track).
    low_nov = c[("revenue_growth_low", "month", D(2026, 11, 1), None)]
    assert low_nov.attainment == pytest.approx(0.05 + 1 / 11)
    assert low_nov.variance_favourable == pytest.approx(0.05 + 1 / 11)
    assert low_nov.status == Status.on_track
    low_oct = c[("revenue_growth_low", "month", D(2026, 10, 1), None)]
    assert low_oct.attainment == pytest.approx(-0.20)
    assert low_oct.status == Status.off_track
    # April 2025 over the partly covered March 2025 (from the 10th): (0 - 5) / 5 = -1 in
    # kpi_values, but no growth to judge: no attainment, insufficient data (not off track).
    apr = c[("sessions_growth", "month", D(2025, 4, 1), None)]
    assert apr.actual == -1
    assert _null(apr.attainment) and _null(apr.variance_favourable)
    assert apr.status == Status.insufficient_data
    # March 2026 over February: (13 - 11) / 11, 13.2 points above +5%.
    mar = c[("sessions_growth", "month", D(2026, 3, 1), None)]
    assert mar.attainment == pytest.approx(2 / 11 - 0.05)
    assert mar.status == Status.on_track
    # The SQL status is the Python rule's, wherever there is a growth to judge.
    kpis = load_catalog(tmp_path / "defs").kpis
    judged = [(k, r) for k, r in c.items() if "growth" in k[0] and not _null(r.attainment)]
    assert len(judged) >= 6
    for (kpi_id, *_), r in judged:
        assert r.status == status_of(kpis[kpi_id], r.actual, r.target), r
    # No four-digit percentages anywhere: every attainment of a growth KPI is in points.
    growth = [r for k, r in c.items() if "growth" in k[0]]
    assert all(_null(r.attainment) or abs(r.attainment) < 30 for r in growth)


def _growth_kpi(direction: str, thresholds: dict | None = None) -> Kpi:
    fields = {
        "id": "g",
        "name": "G",
        "description": "growth",
        "owner": "t@example.com",
        "unit": "percent",
        "direction": direction,
        "type": "period_over_period",
        "period_over_period": {"of": "base"},
    }
    if thresholds:
        fields["thresholds"] = thresholds
    return Kpi.model_validate(fields)


@pytest.mark.parametrize(
    ("direction", "actual", "expected"),
    [
        # Levels reached: (1 + actual) / (1 + target), target +5%.
        ("higher_is_better", 0.05, Status.on_track),  # 1.0
        ("higher_is_better", -0.04, Status.at_risk),  # 0.96 / 1.05 = 0.914
        ("higher_is_better", -0.06, Status.off_track),  # 0.94 / 1.05 = 0.895
        ("lower_is_better", -0.04, Status.on_track),  # 1.05 / 0.96 = 1.09
        ("lower_is_better", 0.15, Status.at_risk),  # 1.05 / 1.15 = 0.913
        ("lower_is_better", 0.17, Status.off_track),  # 1.05 / 1.17 = 0.897
        ("lower_is_better", -1.0, Status.on_track),  # nothing left of what is to be kept low
    ],
)
def test_status_of_a_growth_kpi_compares_the_levels_it_reaches(direction, actual, expected):
    kpi = _growth_kpi(direction)
    assert status_of(kpi, actual, 0.05) == expected


def test_status_of_a_growth_kpi_within_a_band():
    kpi = _growth_kpi("within_band")
    # Band -2% .. +2%: inside on track; +5% reaches 1.05 against at most 1.02: 0.971.
    assert status_of(kpi, 0.0, None, band=(-0.02, 0.02)) == Status.on_track
    assert status_of(kpi, 0.05, None, band=(-0.02, 0.02)) == Status.at_risk
    assert math.isclose(1.02 / 1.05, 0.9714, abs_tol=1e-4)


@pytest.mark.parametrize("dialect", ["bigquery", "snowflake"])
def test_comparisons_compile_for_other_warehouses(tmp_path, dialect):
    # The to-date spans' day arithmetic has a BigQuery form (DATE_ADD / DATE_DIFF).
    pytest.importorskip("sqlalchemy_bigquery" if dialect == "bigquery" else "snowflake")
    from sqlalchemy.dialects import registry

    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "sources.yaml").write_text(SOURCES_YAML)
    (tmp_path / "defs" / "test.yaml").write_text(KPIS_YAML)
    tables = KpiTables.for_catalog(load_catalog(tmp_path / "defs"))
    kpi = tables.catalog.kpis["revenue_mtd"]
    select = comparison_select(
        tables.compiler, kpi, "day", [()], tables.values, tables.targets, NOW, tables.changes
    )
    sql = str(select.compile(dialect=registry.load(dialect)()))
    if dialect == "bigquery":
        assert "DATE_ADD(" in sql and "DATE_DIFF(" in sql
    else:
        assert "AS INTEGER)" in sql


@pytest.mark.parametrize("dialect", ["bigquery", "snowflake"])
def test_every_shipped_comparison_statement_compiles_for_other_warehouses(dialect):
    # These warehouses run one statement per slice (kpi.refresh); the statement of all
    # slices, with its null-safe slice joins (kpi.compute.history.same_value), renders too.
    pytest.importorskip("sqlalchemy_bigquery" if dialect == "bigquery" else "snowflake")
    from sqlalchemy.dialects import registry

    tables = KpiTables.for_catalog(load_catalog(), use_cubes=True)
    compiled, fused = 0, 0
    for kpi in tables.catalog.kpis.values():
        slices = tables.compiler.slices(kpi)
        groups = [slices, *([[dims] for dims in slices] if len(slices) > 1 else [])]
        for grain, group in itertools.product(kpi.grains, groups):
            select = comparison_select(
                tables.compiler,
                kpi,
                str(grain),
                group,
                tables.values,
                tables.targets,
                NOW,
                tables.changes,
                since=dt.date(2026, 3, 1),
            )
            sql = str(select.compile(dialect=registry.load(dialect)()))
            compiled += 1
            if len(group) > 1:
                fused += 1
                assert "coalesce(" in sql.lower() and "IS NULL) = (" in sql
    # Every KPI, grain and slice alone (161), and the KPIs and grains of several slices whole.
    assert compiled == 161 + fused and fused > 50
