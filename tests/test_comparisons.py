"""``kpi.comparisons``: status rules, target phasing, and the SQL status agreeing with Python."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from kpi.catalog import Catalog, load_catalog
from kpi.comparisons import (
    AT_RISK,
    INSUFFICIENT_DATA,
    NO_TARGET,
    OFF_TRACK,
    ON_TRACK,
    phase_targets,
    scales_with_days,
    status_of,
)
from kpi.models import Kpi, Reporting
from kpi.periods import Calendar
from kpi.refresh import (
    KpiTables,
    refresh_comparisons,
    refresh_kpi_values,
    refresh_periods,
    refresh_targets,
)
from kpi.warehouse import Warehouse

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
        "measure": {"source": "s", "agg": "sum", "expr": "x"},
    }
    return Kpi.model_validate({**base, **fields})


HIGHER = make_kpi()
LOWER = make_kpi(direction="lower_is_better")
BAND = make_kpi(direction="within_band")


# ---------------------------------------------------------------------------------------------
# status_of
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actual", "target", "expected"),
    [
        # Default thresholds: on track from attainment 1.0, at risk from 0.9.
        (101, 100, ON_TRACK),  # 1.01
        (100, 100, ON_TRACK),  # exactly 1.0
        (99.99, 100, AT_RISK),  # 0.9999
        (90, 100, AT_RISK),  # exactly 0.9
        (89.99, 100, OFF_TRACK),  # 0.8999
        (0, 100, OFF_TRACK),  # 0.0
        (-5, 100, OFF_TRACK),
    ],
)
def test_higher_is_better(actual, target, expected):
    assert status_of(HIGHER, actual, target) == expected


@pytest.mark.parametrize(
    ("actual", "target", "expected"),
    [
        # Attainment = target / actual.
        (40, 50, ON_TRACK),  # 1.25: below target is good
        (50, 50, ON_TRACK),  # 1.0
        (50.01, 50, AT_RISK),  # 0.9998
        (50, 45, AT_RISK),  # 45 / 50 = 0.9 exactly
        (50.01, 45, OFF_TRACK),  # 0.8998
        (100, 45, OFF_TRACK),  # 0.45
    ],
)
def test_lower_is_better(actual, target, expected):
    assert status_of(LOWER, actual, target) == expected


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        # Band 30..40 with off_track_below 0.8: inside (edges included) is 1.0.
        (35, ON_TRACK),
        (30, ON_TRACK),
        (40, ON_TRACK),
        (29.99, AT_RISK),  # 29.99 / 30 = 0.9997
        (24, AT_RISK),  # 24 / 30 = 0.8 exactly
        (23.99, OFF_TRACK),  # 0.7997
        (40.01, AT_RISK),  # 40 / 40.01 = 0.99975
        (50, AT_RISK),  # 40 / 50 = 0.8 exactly
        (50.01, OFF_TRACK),  # 0.7998
        (0, OFF_TRACK),  # 0 / 30
    ],
)
def test_within_band(actual, expected):
    kpi = make_kpi(
        direction="within_band", thresholds={"at_risk_below": 1.0, "off_track_below": 0.8}
    )
    assert status_of(kpi, actual, None, band=(30, 40)) == expected


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        (100, ON_TRACK),  # 1.0
        (95, ON_TRACK),  # 0.95 exactly: at_risk_below 0.95 -> on track
        (94.99, AT_RISK),
        (85, AT_RISK),  # 0.85 exactly
        (84.99, OFF_TRACK),
    ],
)
def test_custom_thresholds(actual, expected):
    kpi = make_kpi(thresholds={"at_risk_below": 0.95, "off_track_below": 0.85})
    assert status_of(kpi, actual, 100) == expected


def test_min_sample_size_gives_insufficient_data():
    kpi = make_kpi(min_sample_size=30)
    # 0.99 would be on track with a 0.85 target, but 29 answers are not evidence.
    assert status_of(kpi, 0.99, 0.85, sample_size=29) == INSUFFICIENT_DATA
    assert status_of(kpi, 0.99, 0.85, sample_size=None) == INSUFFICIENT_DATA
    assert status_of(kpi, 0.99, 0.85, sample_size=0) == INSUFFICIENT_DATA
    assert status_of(kpi, 0.99, 0.85, sample_size=30) == ON_TRACK  # exactly the minimum
    assert status_of(kpi, 0.5, 0.85, sample_size=31) == OFF_TRACK  # 0.588
    # Small samples win over a missing target: nothing to say either way.
    assert status_of(kpi, 0.99, None, sample_size=3) == INSUFFICIENT_DATA
    # Without a minimum the sample size does not matter.
    assert status_of(HIGHER, 0.99, 0.85, sample_size=1) == ON_TRACK


def test_no_target_and_no_value():
    assert status_of(HIGHER, 10, None) == NO_TARGET
    assert status_of(LOWER, 10, None) == NO_TARGET
    # A band KPI without a band has no target even when a value is passed.
    assert status_of(BAND, 10, 10) == NO_TARGET
    # No value: insufficient data, with or without a target.
    assert status_of(HIGHER, None, 100) == INSUFFICIENT_DATA
    assert status_of(HIGHER, None, None) == INSUFFICIENT_DATA
    assert status_of(BAND, None, None, band=(1, 2)) == INSUFFICIENT_DATA


def test_zero_target_for_higher_is_better_is_not_a_division_error():
    # actual / 0 has no attainment.
    assert status_of(HIGHER, 5, 0) == INSUFFICIENT_DATA


def test_zero_actual_lower_is_better_is_on_track():
    assert status_of(LOWER, 0, 50) == ON_TRACK


# ---------------------------------------------------------------------------------------------
# phase_targets
# ---------------------------------------------------------------------------------------------


def catalog_of(*kpis: Kpi, **reporting) -> Catalog:
    return Catalog(
        reporting=Reporting(**reporting), dimensions=[], sources={}, kpis={k.id: k for k in kpis}
    )


def targets_by(catalog, first_day, as_of):
    periods = Calendar(catalog.reporting).periods(first_day, as_of)
    return {(r.kpi_id, r.grain, r.period_start): r for r in phase_targets(catalog, periods)}


def test_scales_with_days():
    assert scales_with_days(make_kpi()) is True
    assert scales_with_days(make_kpi(measure={"source": "s", "agg": "count"})) is True
    for agg in ("average", "count_distinct", "last", "min", "max"):
        assert scales_with_days(make_kpi(measure={"source": "s", "agg": agg, "expr": "x"})) is False
    ratio = make_kpi(
        type="ratio",
        measure=None,
        numerator={"source": "s", "agg": "sum", "expr": "x"},
        denominator={"source": "s", "agg": "sum", "expr": "y"},
    )
    assert scales_with_days(ratio) is False


def test_linear_monthly_target_spread_over_days_and_weeks():
    sessions = make_kpi(
        id="sessions",
        grains=["day", "week", "month"],
        target={"value": 3100, "grain": "month"},
    )
    t = targets_by(catalog_of(sessions), D(2026, 1, 1), D(2026, 2, 28))
    # January: 3100 / 31 = 100 a day. February: 3100 / 28 = 110.714... a day.
    assert t[("sessions", "month", D(2026, 1, 1))].target == pytest.approx(3100)
    assert t[("sessions", "month", D(2026, 2, 1))].target == pytest.approx(3100)
    assert t[("sessions", "day", D(2026, 1, 15))].target == pytest.approx(100)
    assert t[("sessions", "day", D(2026, 2, 15))].target == pytest.approx(3100 / 28)
    # Week Mon 01-05 .. Sun 01-11, all January: 7 * 100.
    assert t[("sessions", "week", D(2026, 1, 5))].target == pytest.approx(700)
    # Week Mon 01-26 .. Sun 02-01 spans two months: 6 January days (26..31) at 100 plus
    # 1 February day at 3100 / 28 = 600 + 110.7142857 = 710.7142857.
    assert t[("sessions", "week", D(2026, 1, 26))].target == pytest.approx(600 + 3100 / 28)
    assert t[("sessions", "week", D(2026, 1, 26))].target == pytest.approx(710.7142857)
    # Closed periods: target to date = whole target.
    row = t[("sessions", "week", D(2026, 1, 26))]
    assert row.target_to_date == pytest.approx(row.target)
    assert row.band_min is None and row.band_max is None and row.is_example is False


def test_partial_month_target_to_date():
    sessions = make_kpi(
        id="sessions", grains=["day", "week", "month"], target={"value": 3100, "grain": "month"}
    )
    t = targets_by(catalog_of(sessions), D(2026, 1, 1), D(2026, 1, 10))
    jan = t[("sessions", "month", D(2026, 1, 1))]
    # Open month at 01-10: whole target 3100, target to date 10 days * 100 = 1000.
    assert jan.target == pytest.approx(3100)
    assert jan.target_to_date == pytest.approx(1000)
    # Open week Mon 01-05 .. 01-10 (6 of 7 days): 700 whole, 600 to date.
    week = t[("sessions", "week", D(2026, 1, 5))]
    assert (week.target, week.target_to_date) == (pytest.approx(700), pytest.approx(600))


def test_quarterly_and_weekly_target_grains():
    # Q1 2026 = 31 + 28 + 31 = 90 days; 9000 a quarter = 100 a day.
    quarterly = make_kpi(
        id="q", grains=["day", "month", "quarter"], target={"value": 9000, "grain": "quarter"}
    )
    # 700 a week = 100 a day.
    weekly = make_kpi(
        id="w", grains=["day", "week", "month"], target={"value": 700, "grain": "week"}
    )
    t = targets_by(catalog_of(quarterly, weekly), D(2026, 1, 1), D(2026, 3, 31))
    assert t[("q", "month", D(2026, 1, 1))].target == pytest.approx(3100)
    assert t[("q", "month", D(2026, 2, 1))].target == pytest.approx(2800)
    assert t[("q", "quarter", D(2026, 1, 1))].target == pytest.approx(9000)
    assert t[("w", "month", D(2026, 2, 1))].target == pytest.approx(2800)
    assert t[("w", "day", D(2026, 2, 1))].target == pytest.approx(100)


def test_fiscal_year_target():
    # A yearly target under an April fiscal year: FY Apr 2025 .. Mar 2026 has 365 days,
    # so 36500 = 100 a day and January 2026 gets 31 * 100.
    kpi = make_kpi(id="y", grains=["month", "year"], target={"value": 36500, "grain": "year"})
    t = targets_by(catalog_of(kpi, fiscal_year_start_month=4), D(2026, 1, 1), D(2026, 1, 31))
    assert t[("y", "month", D(2026, 1, 1))].target == pytest.approx(3100)
    # The fiscal year period itself starts 2025-04-01 and carries the whole target.
    assert t[("y", "year", D(2025, 4, 1))].target == pytest.approx(36500)


def test_level_kpi_keeps_the_same_target_at_every_grain():
    rate = make_kpi(
        id="conversion_rate",
        unit="percent",
        type="ratio",
        measure=None,
        numerator={"source": "s", "agg": "sum", "expr": "x"},
        denominator={"source": "s", "agg": "sum", "expr": "y"},
        grains=["day", "week", "month"],
        target={"value": 0.02, "grain": "month"},
    )
    t = targets_by(catalog_of(rate), D(2026, 1, 1), D(2026, 2, 10))
    rows = [r for r in t.values() if r.kpi_id == "conversion_rate"]
    # 41 days + 7 weeks (Mon 12-29 .. Mon 02-09) + 2 months
    assert len(rows) == 41 + 7 + 2
    assert {r.target for r in rows} == {0.02}
    assert {r.target_to_date for r in rows} == {0.02}  # also for the open February


def test_per_period_targets():
    kpi = make_kpi(
        id="revenue",
        grains=["day", "week", "month"],
        target={
            "grain": "month",
            "phasing": "per_period",
            "per_period": {"2026-01-01": 3100, "2026-02-01": 5600},
        },
    )
    t = targets_by(catalog_of(kpi), D(2026, 1, 1), D(2026, 3, 5))
    assert t[("revenue", "month", D(2026, 1, 1))].target == pytest.approx(3100)
    assert t[("revenue", "month", D(2026, 2, 1))].target == pytest.approx(5600)
    # Days: 3100 / 31 = 100 in January, 5600 / 28 = 200 in February.
    assert t[("revenue", "day", D(2026, 2, 14))].target == pytest.approx(200)
    # Week 01-26 .. 02-01: 6 * 100 + 1 * 200 = 800.
    assert t[("revenue", "week", D(2026, 1, 26))].target == pytest.approx(800)
    # March has no value and no default: no target.
    assert t[("revenue", "month", D(2026, 3, 1))].target is None
    assert t[("revenue", "day", D(2026, 3, 1))].target is None
    # Week Mon 02-23 .. Sun 03-01 reaches into March: no complete target.
    assert t[("revenue", "week", D(2026, 2, 23))].target is None


def test_per_period_overrides_the_default_value():
    kpi = make_kpi(
        id="k",
        grains=["month"],
        target={"value": 1000, "grain": "month", "per_period": {"2026-02-01": 2800}},
    )
    t = targets_by(catalog_of(kpi), D(2026, 1, 1), D(2026, 3, 31))
    assert [t[("k", "month", D(2026, m, 1))].target for m in (1, 2, 3)] == [
        pytest.approx(1000),
        pytest.approx(2800),
        pytest.approx(1000),
    ]


def test_band_is_phased_for_additive_kpis_and_kept_for_levels():
    spend = make_kpi(
        id="spend",
        direction="within_band",
        grains=["day", "month"],
        target={"band": {"min": 31000, "max": 62000}, "grain": "month", "example": True},
    )
    share = make_kpi(
        id="share",
        direction="within_band",
        measure={"source": "s", "agg": "average", "expr": "x"},
        grains=["day", "month"],
        target={"band": {"min": 0.3, "max": 0.4}, "grain": "month"},
    )
    t = targets_by(catalog_of(spend, share), D(2026, 1, 1), D(2026, 1, 10))
    day = t[("spend", "day", D(2026, 1, 3))]
    # 31000 / 31 = 1000, 62000 / 31 = 2000 a day.
    assert (day.band_min, day.band_max) == (pytest.approx(1000), pytest.approx(2000))
    assert day.target is None and day.is_example is True
    # The open January (10 days) holds a to-date band: 10000 .. 20000.
    jan = t[("spend", "month", D(2026, 1, 1))]
    assert (jan.band_min, jan.band_max) == (pytest.approx(10000), pytest.approx(20000))
    level = t[("share", "day", D(2026, 1, 3))]
    assert (level.band_min, level.band_max) == (0.3, 0.4)


def test_kpis_without_targets_or_outside_their_grains_get_no_rows():
    no_target = make_kpi(id="a", grains=["day"])
    monthly = make_kpi(id="b", grains=["month"], target={"value": 1, "grain": "month"})
    t = targets_by(catalog_of(no_target, monthly), D(2026, 1, 1), D(2026, 1, 31))
    assert {k[0] for k in t} == {"b"}
    assert {k[1] for k in t} == {"month"}


# ---------------------------------------------------------------------------------------------
# The SQL status agrees with status_of
# ---------------------------------------------------------------------------------------------

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
"""

KPIS_YAML = """\
area: test
kpis:
  - id: sessions
    name: Sessions
    description: sum, higher is better, 3100 a month = 100 a day in January
    owner: t@example.com
    unit: count
    direction: higher_is_better
    type: simple
    measure: {source: daily, agg: sum, expr: sessions}
    dimensions: [channel]
    grains: [day, month]
    target: {value: 3100, grain: month}
  - id: cost_per_conversion
    name: CPA
    description: ratio, lower is better
    owner: t@example.com
    unit: currency
    direction: lower_is_better
    type: ratio
    numerator: {source: daily, agg: sum, expr: cost}
    denominator: {source: daily, agg: sum, expr: conversions}
    grains: [day, month]
    target: {value: 10, grain: month}
  - id: cost
    name: Cost
    description: sum, within a band of 3100..6200 a month = 100..200 a day
    owner: t@example.com
    unit: currency
    direction: within_band
    type: simple
    measure: {source: daily, agg: sum, expr: cost}
    grains: [day, month]
    target: {band: {min: 3100, max: 6200}, grain: month}
    thresholds: {at_risk_below: 1.0, off_track_below: 0.8}
  - id: conversions
    name: Conversions
    description: no target, minimum sample of 2 rows
    owner: t@example.com
    unit: count
    direction: higher_is_better
    type: simple
    measure: {source: daily, agg: sum, expr: conversions}
    grains: [day, month]
    min_sample_size: 2
"""

# (date, channel, sessions, cost, conversions); 01-06 has no rows at all.
ROWS = [
    (D(2026, 1, 1), "a", 60, 100.0, 10),
    (D(2026, 1, 1), "b", 40, 0.0, 0),
    (D(2026, 1, 2), "a", 95, 100.0, 9),
    (D(2026, 1, 3), "a", 90, 250.0, 10),
    (D(2026, 1, 4), "a", 89, 0.0, 5),
    (D(2026, 1, 5), "a", 80, 160.0, 8),
]
AS_OF = D(2026, 1, 6)


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("compared")
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "sources.yaml").write_text(SOURCES_YAML)
    (tmp_path / "defs" / "test.yaml").write_text(KPIS_YAML)
    catalog = load_catalog(tmp_path / "defs")
    tables = KpiTables.for_catalog(catalog)
    wh = Warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    wh.ensure_tables(tables.all_tables())
    frame = pd.DataFrame(ROWS, columns=["date", "channel", "sessions", "cost", "conversions"])
    wh.replace_rows(tables.raw_tables["daily"], None, frame)
    periods = refresh_periods(wh, tables, AS_OF)
    refresh_kpi_values(wh, tables)
    refresh_targets(wh, tables, periods)
    refresh_comparisons(wh, tables)
    out = wh.read(tables.comparisons.select())
    targets = wh.read(tables.targets.select())
    wh.dispose()
    return catalog, out, targets


def _status_table(compared, kpi_id, grain="day"):
    _, out, _ = compared
    rows = out[(out.kpi_id == kpi_id) & (out.grain == grain) & out.channel.isna()]
    return {r.period_start: r.status for r in rows.itertuples()}


def test_sql_status_by_hand(compared):
    # sessions, target 100 a day: 100 on track, 95 and 90 at risk, 89 and 80 off track,
    # the empty day 01-06 is 0 -> off track.
    assert _status_table(compared, "sessions") == {
        D(2026, 1, 1): ON_TRACK,
        D(2026, 1, 2): AT_RISK,
        D(2026, 1, 3): AT_RISK,
        D(2026, 1, 4): OFF_TRACK,
        D(2026, 1, 5): OFF_TRACK,
        D(2026, 1, 6): OFF_TRACK,
    }
    # January is open at 01-06: 454 sessions (100+95+90+89+80+0) against the to-date
    # target 6 * 100 = 600 -> 0.757 -> off track (not against 3100 for the whole month).
    _, out, _ = compared
    jan = out[(out.kpi_id == "sessions") & (out.grain == "month") & out.channel.isna()]
    assert jan.actual.tolist() == [454]
    assert jan.target.tolist() == [pytest.approx(600)]
    assert jan.attainment.tolist() == [pytest.approx(454 / 600)]
    assert jan.status.tolist() == [OFF_TRACK]
    # Slices get no target: no_target, and their previous period still works.
    a = out[(out.kpi_id == "sessions") & (out.grain == "day") & (out.channel == "a")]
    assert set(a.status) == {NO_TARGET}
    # CPA, target 10: 100/10 = 10 on track; 100/9 = 11.1 -> 0.9 at risk; 250/10 = 25 -> 0.4
    # off track; 160/8 = 20 -> 0.5; 01-06: 0/0 -> NULL; 01-04: 0/5 = 0 beats any target.
    cpa = _status_table(compared, "cost_per_conversion")
    assert cpa == {
        D(2026, 1, 1): ON_TRACK,
        D(2026, 1, 2): AT_RISK,
        D(2026, 1, 3): OFF_TRACK,
        D(2026, 1, 4): ON_TRACK,
        D(2026, 1, 5): OFF_TRACK,
        D(2026, 1, 6): INSUFFICIENT_DATA,
    }
    # cost, band 100..200 a day, off track below 0.8: 100 in, 100 in, 250 -> 200/250 = 0.8
    # at risk, 0 -> off, 160 in, 0 -> off.
    assert _status_table(compared, "cost") == {
        D(2026, 1, 1): ON_TRACK,
        D(2026, 1, 2): ON_TRACK,
        D(2026, 1, 3): AT_RISK,
        D(2026, 1, 4): OFF_TRACK,
        D(2026, 1, 5): ON_TRACK,
        D(2026, 1, 6): OFF_TRACK,
    }
    # conversions: no target; 01-01 has two rows (a and b), the others one or none.
    assert _status_table(compared, "conversions") == {
        D(2026, 1, 1): NO_TARGET,
        D(2026, 1, 2): INSUFFICIENT_DATA,
        D(2026, 1, 3): INSUFFICIENT_DATA,
        D(2026, 1, 4): INSUFFICIENT_DATA,
        D(2026, 1, 5): INSUFFICIENT_DATA,
        D(2026, 1, 6): INSUFFICIENT_DATA,
    }


def test_sql_status_agrees_with_status_of(compared):
    catalog, out, targets = compared
    bands = {
        (r.kpi_id, r.grain, r.period_start): (r.band_min, r.band_max)
        for r in targets.itertuples()
        if not pd.isna(r.band_min)
    }
    checked = 0
    for r in out.itertuples():
        kpi = catalog.kpis[r.kpi_id]
        band = bands.get((r.kpi_id, r.grain, r.period_start)) if pd.isna(r.channel) else None
        expected = status_of(
            kpi,
            None if pd.isna(r.actual) else float(r.actual),
            None if pd.isna(r.target) else float(r.target),
            sample_size=None if pd.isna(r.sample_size) else int(r.sample_size),
            band=band,
        )
        assert r.status == expected, r
        checked += 1
    # 4 KPIs x (6 days + 1 month) totals, plus sessions by channel a and b.
    assert checked == 4 * 7 + 2 * 7


def test_sql_zero_actual_lower_is_better_is_on_track(compared):
    # 01-04: cost 0 / 5 conversions = CPA 0 against a target of 10.
    assert _status_table(compared, "cost_per_conversion")[D(2026, 1, 4)] == ON_TRACK
