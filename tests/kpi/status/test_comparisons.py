"""``kpi.status.comparisons``: status rules, target phasing, SQL status agreeing with Python."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from kpi.compute.periods import Calendar
from kpi.compute.tables import KpiTables
from kpi.language.catalog import Catalog
from kpi.language.facts import scales_with_days
from kpi.language.loader import load_catalog
from kpi.language.models import Kpi, Reporting
from kpi.language.status import Status
from kpi.publication.catalog_tables import _insert_missing
from kpi.refresh import (
    refresh_catalog,
    refresh_comparisons,
    refresh_kpi_values,
    refresh_periods,
    refresh_targets,
)
from kpi.status.judgement import status_of
from kpi.status.targets import last_year_day, phase_targets
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
        (101, 100, Status.on_track),  # 1.01
        (100, 100, Status.on_track),  # exactly 1.0
        (99.99, 100, Status.at_risk),  # 0.9999
        (90, 100, Status.at_risk),  # exactly 0.9
        (89.99, 100, Status.off_track),  # 0.8999
        (0, 100, Status.off_track),  # 0.0
        (-5, 100, Status.off_track),
    ],
)
def test_higher_is_better(actual, target, expected):
    assert status_of(HIGHER, actual, target) == expected


@pytest.mark.parametrize(
    ("actual", "target", "expected"),
    [
        # Attainment = target / actual.
        (40, 50, Status.on_track),  # 1.25: below target is good
        (50, 50, Status.on_track),  # 1.0
        (50.01, 50, Status.at_risk),  # 0.9998
        (50, 45, Status.at_risk),  # 45 / 50 = 0.9 exactly
        (50.01, 45, Status.off_track),  # 0.8998
        (100, 45, Status.off_track),  # 0.45
    ],
)
def test_lower_is_better(actual, target, expected):
    assert status_of(LOWER, actual, target) == expected


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        # Band 30..40 with off_track_below 0.8: inside (edges included) is 1.0.
        (35, Status.on_track),
        (30, Status.on_track),
        (40, Status.on_track),
        (29.99, Status.at_risk),  # 29.99 / 30 = 0.9997
        (24, Status.at_risk),  # 24 / 30 = 0.8 exactly
        (23.99, Status.off_track),  # 0.7997
        (40.01, Status.at_risk),  # 40 / 40.01 = 0.99975
        (50, Status.at_risk),  # 40 / 50 = 0.8 exactly
        (50.01, Status.off_track),  # 0.7998
        (0, Status.off_track),  # 0 / 30
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
        (100, Status.on_track),  # 1.0
        (95, Status.on_track),  # 0.95 exactly: at_risk_below 0.95 -> on track
        (94.99, Status.at_risk),
        (85, Status.at_risk),  # 0.85 exactly
        (84.99, Status.off_track),
    ],
)
def test_custom_thresholds(actual, expected):
    kpi = make_kpi(thresholds={"at_risk_below": 0.95, "off_track_below": 0.85})
    assert status_of(kpi, actual, 100) == expected


def test_min_sample_size_gives_insufficient_data():
    kpi = make_kpi(min_sample_size=30)
    # 0.99 would be on track with a 0.85 target, but 29 answers are not evidence.
    assert status_of(kpi, 0.99, 0.85, sample_size=29) == Status.insufficient_data
    assert status_of(kpi, 0.99, 0.85, sample_size=None) == Status.insufficient_data
    assert status_of(kpi, 0.99, 0.85, sample_size=0) == Status.insufficient_data
    assert status_of(kpi, 0.99, 0.85, sample_size=30) == Status.on_track  # exactly the minimum
    assert status_of(kpi, 0.5, 0.85, sample_size=31) == Status.off_track  # 0.588
    # Small samples win over a missing target: nothing to say either way.
    assert status_of(kpi, 0.99, None, sample_size=3) == Status.insufficient_data
    # Without a minimum the sample size does not matter.
    assert status_of(HIGHER, 0.99, 0.85, sample_size=1) == Status.on_track


def test_no_target_and_no_value():
    assert status_of(HIGHER, 10, None) == Status.no_target
    assert status_of(LOWER, 10, None) == Status.no_target
    # A band KPI without a band has no target even when a value is passed.
    assert status_of(BAND, 10, 10) == Status.no_target
    # No value: insufficient data, with or without a target.
    assert status_of(HIGHER, None, 100) == Status.insufficient_data
    assert status_of(HIGHER, None, None) == Status.insufficient_data
    assert status_of(BAND, None, None, band=(1, 2)) == Status.insufficient_data


def test_zero_target_for_higher_is_better_is_not_a_division_error():
    # actual / 0 has no attainment.
    assert status_of(HIGHER, 5, 0) == Status.insufficient_data


def test_zero_actual_lower_is_better_is_on_track():
    assert status_of(LOWER, 0, 50) == Status.on_track


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
# Seasonal phasing
# ---------------------------------------------------------------------------------------------


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


# Last year's daily values of `sales`. A 2026 day is shaped by the same weekday 52 weeks
# (364 days) earlier, so each 2026 month reads a 2025 span one day later than its dates:
#   January 2026 (Thu 01-01 .. Sat 01-31) <- 2025-01-02 .. 2025-02-01: not known at all.
#   February 2026 (Sun 02-01 .. Sat 02-28) <- 2025-02-02 .. 2025-03-01: 10, 20, 30, 40 on
#     Sun 2025-02-02 .. Wed 02-05 (for 2026-02-01 .. 04), then 0: fully known, sum 100.
#   March 2026 <- 2025-03-02 .. 2025-04-01: all zero (known, adds up to nothing).
#   April 2026 <- 2025-04-02 .. 2025-05-01: 5 a day, but 2025-04-15 (for 2026-04-14) is missing.
HISTORY = {
    **{d: 0.0 for d in _days(D(2025, 2, 2), D(2025, 3, 1))},
    D(2025, 2, 2): 10.0,
    D(2025, 2, 3): 20.0,
    D(2025, 2, 4): 30.0,
    D(2025, 2, 5): 40.0,
    **{d: 0.0 for d in _days(D(2025, 3, 2), D(2025, 4, 1))},
    **{d: 5.0 for d in _days(D(2025, 4, 2), D(2025, 5, 1)) if d != D(2025, 4, 15)},
}
SEASONAL_SALES = make_kpi(
    id="sales",
    grains=["day", "week", "month"],
    target={"value": 200, "grain": "month", "phasing": "seasonal"},
)


def test_seasonal_phasing_follows_last_years_days():
    t = {
        (r.grain, r.period_start): r
        for r in phase_targets(
            catalog_of(SEASONAL_SALES),
            Calendar(Reporting()).periods(D(2026, 1, 1), D(2026, 4, 30)),
            {"sales": HISTORY},
        )
    }
    # 200 for February over last year's 10, 20, 30, 40 (of 100) on 2025-02-02 .. 05, 364 days
    # before 2026-02-01 .. 04: 200 * 10 / 100 = 20, then 40, 60, 80, then 0.
    assert [t[("day", D(2026, 2, d))].target for d in (1, 2, 3, 4, 5)] == [
        pytest.approx(20),
        pytest.approx(40),
        pytest.approx(60),
        pytest.approx(80),
        0,
    ]
    assert {t[("day", d)].phasing for d in _days(D(2026, 2, 1), D(2026, 2, 28))} == {"seasonal"}
    assert t[("month", D(2026, 2, 1))].target == pytest.approx(200)
    assert t[("month", D(2026, 2, 1))].phasing == "seasonal"
    # A week sums its days: Mon 02-02 .. Sun 02-08 = 40 + 60 + 80 + 4 * 0 = 180.
    assert t[("week", D(2026, 2, 2))].target == pytest.approx(180)
    assert t[("week", D(2026, 2, 2))].phasing == "seasonal"
    # 2025-01-02 .. 02-01 is unknown: January 2026 is spread linearly, 200 / 31 a day, and
    # says so.
    assert t[("day", D(2026, 1, 10))].target == pytest.approx(200 / 31)
    assert t[("month", D(2026, 1, 1))].target == pytest.approx(200)
    assert t[("month", D(2026, 1, 1))].phasing == "seasonal_fallback_linear"
    # Week Mon 01-26 .. Sun 02-01 spans both: 6 * 200 / 31 (linear) + 20 (seasonal)
    # = 38.7097 + 20 = 58.7097, marked as a fallback because part of it is linear.
    week = t[("week", D(2026, 1, 26))]
    assert week.target == pytest.approx(6 * 200 / 31 + 20)
    assert week.phasing == "seasonal_fallback_linear"
    # March's last year (2025-03-02 .. 04-01) adds up to zero and April's (2025-04-02 .. 05-01)
    # misses 2025-04-15: both spread linearly, 200 / 31 and 200 / 30 a day.
    assert t[("day", D(2026, 3, 3))].target == pytest.approx(200 / 31)
    assert t[("day", D(2026, 4, 2))].target == pytest.approx(200 / 30)
    assert t[("day", D(2026, 4, 14))].target == pytest.approx(200 / 30)  # the missing day's
    for month in (3, 4):
        assert t[("month", D(2026, month, 1))].phasing == "seasonal_fallback_linear"


def test_seasonal_targets_follow_last_years_weekdays():
    # Last year every Saturday sold 10 and every other day 1. March 2026 (Sun 03-01 .. Tue
    # 03-31) is shaped by Sun 2025-03-02 .. Tue 2025-04-01 (364 days back): 4 Saturdays
    # (2025-03-08, 15, 22, 29) at 10 and 27 other days at 1, 40 + 27 = 67. A target of 670
    # gives a Saturday 670 * 10 / 67 = 100 and any other day 670 * 1 / 67 = 10.
    # (The same calendar dates, 2025-03-01 .. 31, would put the Saturdays' 10 on the 2026
    # Sundays 03-01, 08, 15, 22, 29: 2025-03-01 is a Saturday, 2026-03-01 a Sunday.)
    history = {d: 10.0 if d.weekday() == 5 else 1.0 for d in _days(D(2025, 3, 1), D(2025, 4, 1))}
    kpi = make_kpi(
        id="sales",
        grains=["day", "week", "month"],
        target={"value": 670, "grain": "month", "phasing": "seasonal"},
    )
    periods = Calendar(Reporting()).periods(D(2026, 3, 1), D(2026, 3, 31))
    t = {
        (r.grain, r.period_start): r
        for r in phase_targets(catalog_of(kpi), periods, {"sales": history})
    }
    saturdays = [D(2026, 3, d) for d in (7, 14, 21, 28)]
    sundays = [D(2026, 3, d) for d in (1, 8, 15, 22, 29)]
    assert all(day.weekday() == 5 for day in saturdays)
    assert all(day.weekday() == 6 for day in sundays)
    assert [t[("day", day)].target for day in saturdays] == [pytest.approx(100)] * 4
    assert [t[("day", day)].target for day in sundays] == [pytest.approx(10)] * 5
    assert t[("day", D(2026, 3, 31))].target == pytest.approx(10)  # Tuesday <- Tue 2025-04-01
    assert t[("month", D(2026, 3, 1))].target == pytest.approx(670)  # 4 * 100 + 27 * 10
    assert t[("month", D(2026, 3, 1))].phasing == "seasonal"
    # Week Mon 03-02 .. Sun 03-08: Monday to Friday 5 * 10, Saturday 100, Sunday 10 = 160.
    assert t[("week", D(2026, 3, 2))].target == pytest.approx(160)


def test_seasonal_open_period_target_to_date_is_the_elapsed_days_shares():
    periods = Calendar(Reporting()).periods(D(2026, 1, 1), D(2026, 2, 3))
    rows = phase_targets(catalog_of(SEASONAL_SALES), periods, {"sales": HISTORY})
    t = {(r.grain, r.period_start): r for r in rows}
    # February open at 02-03: 20 + 40 + 60 = 120 of 200.
    feb = t[("month", D(2026, 2, 1))]
    assert (feb.target, feb.target_to_date) == (pytest.approx(200), pytest.approx(120))
    # Open week 02-02 .. 02-03: 40 + 60 = 100 of 180.
    week = t[("week", D(2026, 2, 2))]
    assert (week.target, week.target_to_date) == (pytest.approx(180), pytest.approx(100))


def test_seasonal_without_history_falls_back_to_linear_and_says_so():
    periods = Calendar(Reporting()).periods(D(2026, 2, 1), D(2026, 2, 28))
    rows = phase_targets(catalog_of(SEASONAL_SALES), periods)
    assert {r.phasing for r in rows} == {"seasonal_fallback_linear"}
    day = next(r for r in rows if r.grain == "day")
    assert day.target == pytest.approx(200 / 28)


def test_seasonal_running_total_takes_its_base_kpis_shape():
    mtd = make_kpi(
        id="sales_mtd",
        type="cumulative",
        measure=None,
        cumulative={"of": "sales", "to_date": "month"},
        grains=["day", "month"],
        target={"value": 200, "grain": "month", "phasing": "seasonal"},
    )
    periods = Calendar(Reporting()).periods(D(2026, 2, 1), D(2026, 2, 28))
    t = {
        (r.kpi_id, r.grain, r.period_start): r
        for r in phase_targets(catalog_of(SEASONAL_SALES, mtd), periods, {"sales": HISTORY})
    }
    # Month to date at 02-03: the base's shares 20 + 40 + 60 = 120.
    assert t[("sales_mtd", "day", D(2026, 2, 3))].target == pytest.approx(120)
    assert t[("sales_mtd", "day", D(2026, 2, 3))].phasing == "seasonal"


def test_linear_and_per_period_rows_say_how_they_were_phased():
    linear = make_kpi(id="a", grains=["month"], target={"value": 1, "grain": "month"})
    given = make_kpi(
        id="b",
        grains=["month"],
        target={"phasing": "per_period", "per_period": {"2026-01-01": 5}, "grain": "month"},
    )
    benchmark_only = make_kpi(id="c", grains=["month"], benchmark={"value": 1, "source": "a study"})
    t = targets_by(catalog_of(linear, given, benchmark_only), D(2026, 1, 1), D(2026, 1, 31))
    assert t[("a", "month", D(2026, 1, 1))].phasing == "linear"
    assert t[("b", "month", D(2026, 1, 1))].phasing == "per_period"
    assert t[("c", "month", D(2026, 1, 1))].phasing is None


def test_last_year_day_is_the_same_weekday_52_weeks_back():
    # 364 days back, like a day's or a week's last_year (Calendar.same_period_last_year), so
    # no day needs a special case: 2027-03-01 .. 2028-02-29 is 365 days (2028 is a leap
    # year), so 2028-02-29 - 365 days = 2027-03-01 and - 364 days = 2027-03-02, both Tuesdays.
    # 2026-03-01 (Sunday) - 364 days = 2025-03-02 (Sunday).
    calendar = Calendar(Reporting())
    for day, expected in ((D(2028, 2, 29), D(2027, 3, 2)), (D(2026, 3, 1), D(2025, 3, 2))):
        assert last_year_day(day) == expected
        assert expected.weekday() == day.weekday()
        assert calendar.same_period_last_year(day, "day") == expected


def test_goal_columns_by_hand():
    # 2900 a month with a deadline on 03-31: the goal runs 01-01 .. 03-31 and adds up to
    # 3 * 2900 = 8700. The share of it planned by a day is the target phased from 01-01
    # through that day, over 8700. A level KPI's goal is its target at the deadline.
    gifts = make_kpi(
        id="gifts",
        grains=["day", "month"],
        target={"value": 2900, "grain": "month", "deadline": "2026-03-31"},
    )
    # 3100 a month: the goal is 3 * 3100 = 9300, January's plan exactly a third of it.
    sessions = make_kpi(
        id="sessions",
        grains=["day", "month"],
        target={"value": 3100, "grain": "month", "deadline": "2026-03-31"},
    )
    given = make_kpi(
        id="given",
        grains=["day", "month"],
        target={
            "grain": "month",
            "phasing": "per_period",
            "per_period": {"2026-01-01": 1000, "2026-02-01": 2000, "2026-03-01": 3000},
            "deadline": "2026-03-31",
        },
    )
    # A band without a value: the goal is 3 * 2900 .. 3 * 3100 = 8700 .. 9300, and the pace
    # follows the band phased like a target (its upper edge).
    spend = make_kpi(
        id="spend",
        direction="within_band",
        grains=["day", "month"],
        target={"band": {"min": 2900, "max": 3100}, "grain": "month", "deadline": "2026-03-31"},
    )
    rate = make_kpi(
        id="rate",
        unit="percent",
        type="ratio",
        measure=None,
        numerator={"source": "s", "agg": "sum", "expr": "x"},
        denominator={"source": "s", "agg": "sum", "expr": "y"},
        grains=["month"],
        target={"value": 0.5, "grain": "month", "deadline": "2026-03-31"},
    )
    catalog = catalog_of(gifts, sessions, given, spend, rate)
    t = targets_by(catalog, D(2025, 12, 1), D(2026, 2, 3))
    jan = t[("gifts", "month", D(2026, 1, 1))]
    assert (jan.goal_start, jan.goal_deadline) == (D(2026, 1, 1), D(2026, 3, 31))
    assert jan.goal_target == pytest.approx(8700)
    # 01-01 .. 01-31: all of January's 2900 of 8700 = 1/3 (not 31 of the 90 days).
    assert jan.goal_elapsed_share == pytest.approx(2900 / 8700)
    assert jan.goal_elapsed_share == pytest.approx(1 / 3)
    assert jan.goal_projection == "run_rate"
    # The open February is as of 02-03: 2900 + 3 of February's 28 days (3 / 28 * 2900) of
    # 8700 = (1 + 3/28) / 3 = 31 / 84.
    feb = t[("gifts", "month", D(2026, 2, 1))]
    assert feb.goal_elapsed_share == pytest.approx((2900 + 3 / 28 * 2900) / 8700)
    assert feb.goal_elapsed_share == pytest.approx(31 / 84)
    # Day 01-10: 10 days at 2900 / 31 = 29000 / 31 of 8700 = 10 / 93.
    assert t[("gifts", "day", D(2026, 1, 10))].goal_elapsed_share == pytest.approx(10 / 93)
    # On plan projects to the goal: January's 3100 against 3100 of 9300 (1/3) is 9300 at the
    # deadline, where 31 of 90 days would have made it 3100 * 90 / 31 = 9000.
    on_plan = t[("sessions", "month", D(2026, 1, 1))]
    assert on_plan.goal_target == pytest.approx(9300)
    assert 3100 / on_plan.goal_elapsed_share == pytest.approx(9300)
    # Per period: the goal is 1000 + 2000 + 3000 = 6000; by 01-31 1000 of it (1/6), by 02-03
    # 1000 + 3/28 * 2000 = 1000 + 1500/7 = 8500/7, of 6000 = 8500 / 42000 = 17/84.
    assert t[("given", "month", D(2026, 1, 1))].goal_target == pytest.approx(6000)
    assert t[("given", "month", D(2026, 1, 1))].goal_elapsed_share == pytest.approx(1 / 6)
    assert t[("given", "month", D(2026, 2, 1))].goal_elapsed_share == pytest.approx(17 / 84)
    assert t[("given", "month", D(2026, 2, 1))].goal_projection == "run_rate"
    # The band: by 01-31 3100 of 9300 = 1/3 (as 2900 of 8700), not 31 of 90 days.
    band = t[("spend", "month", D(2026, 1, 1))]
    assert band.goal_target is None
    assert (band.goal_band_min, band.goal_band_max) == (pytest.approx(8700), pytest.approx(9300))
    assert band.goal_elapsed_share == pytest.approx(1 / 3)
    # December 2025 ends before the goal starts: no goal columns.
    dec = t[("gifts", "month", D(2025, 12, 1))]
    assert (dec.goal_deadline, dec.goal_target, dec.goal_projection) == (None, None, None)
    level = t[("rate", "month", D(2026, 1, 1))]
    assert (level.goal_target, level.goal_elapsed_share) == (0.5, None)
    assert level.goal_projection == "current_value"


def test_seasonal_goal_share_follows_the_phased_target():
    # With the fiscal year from February, a goal due 2026-02-28 runs 02-01 .. 02-28 and one
    # due 2026-03-31 runs 02-01 .. 03-31. HISTORY shapes February (20, 40, 60, 80 of 200 on
    # 02-01 .. 04) and spreads March evenly (its last year adds up to zero): 200 / 31 a day.
    feb_goal = make_kpi(
        id="feb_goal",
        grains=["day", "month"],
        target={"value": 200, "grain": "month", "phasing": "seasonal", "deadline": "2026-02-28"},
    )
    mar_goal = make_kpi(
        id="mar_goal",
        grains=["day", "month"],
        target={"value": 200, "grain": "month", "phasing": "seasonal", "deadline": "2026-03-31"},
    )
    catalog = catalog_of(feb_goal, mar_goal, fiscal_year_start_month=2)
    periods = Calendar(catalog.reporting).periods(D(2026, 2, 1), D(2026, 3, 10))
    rows = phase_targets(catalog, periods, {"feb_goal": HISTORY, "mar_goal": HISTORY})
    t = {(r.kpi_id, r.grain, r.period_start): r for r in rows}
    # Fully seasonal: the goal is 200; by 02-01 20 of it (0.1), by 02-03 20 + 40 + 60 = 120
    # (0.6), by 02-28 all of it.
    day1 = t[("feb_goal", "day", D(2026, 2, 1))]
    assert (day1.goal_start, day1.goal_target) == (D(2026, 2, 1), pytest.approx(200))
    assert day1.goal_elapsed_share == pytest.approx(0.1)
    assert day1.goal_projection == "seasonal"
    assert t[("feb_goal", "day", D(2026, 2, 3))].goal_elapsed_share == pytest.approx(0.6)
    assert t[("feb_goal", "month", D(2026, 2, 1))].goal_elapsed_share == pytest.approx(1)
    # March fell back to linear: 200 + 200 = 400, and every row says the projection is
    # partly a run rate. By 02-03: 120 / 400 = 0.3; by 03-10: (200 + 10 * 200 / 31) / 400.
    for day, share in ((D(2026, 2, 3), 0.3), (D(2026, 3, 10), (200 + 10 * 200 / 31) / 400)):
        row = t[("mar_goal", "day", day)]
        assert row.goal_target == pytest.approx(400)
        assert row.goal_elapsed_share == pytest.approx(share)
        assert row.goal_projection == "seasonal_fallback_run_rate"
    assert t[("mar_goal", "month", D(2026, 2, 1))].goal_elapsed_share == pytest.approx(0.5)


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
        D(2026, 1, 1): Status.on_track,
        D(2026, 1, 2): Status.at_risk,
        D(2026, 1, 3): Status.at_risk,
        D(2026, 1, 4): Status.off_track,
        D(2026, 1, 5): Status.off_track,
        D(2026, 1, 6): Status.off_track,
    }
    # January is open at 01-06: 454 sessions (100+95+90+89+80+0) against the to-date
    # target 6 * 100 = 600 -> 0.757 -> off track (not against 3100 for the whole month).
    _, out, _ = compared
    jan = out[(out.kpi_id == "sessions") & (out.grain == "month") & out.channel.isna()]
    assert jan.actual.tolist() == [454]
    assert jan.target.tolist() == [pytest.approx(600)]
    assert jan.attainment.tolist() == [pytest.approx(454 / 600)]
    assert jan.status.tolist() == [Status.off_track]
    # Its pace is judged against the whole month: cost's 610 in 6 days projects to
    # 610 * 31 / 6 = 3151.7, inside the month's band 100..200 a day = 3100..6200 (not the
    # band to date, 600..1200; and not the actual 610 itself) -> on pace.
    cost_jan = out[(out.kpi_id == "cost") & (out.grain == "month") & out.channel.isna()]
    assert cost_jan.projected.tolist() == [pytest.approx(610 * 31 / 6)]
    assert cost_jan.on_pace.tolist() == [True]
    # Slices get no target: no_target, and their previous period still works.
    a = out[(out.kpi_id == "sessions") & (out.grain == "day") & (out.channel == "a")]
    assert set(a.status) == {Status.no_target}
    # CPA, target 10: 100/10 = 10 on track; 100/9 = 11.1 -> 0.9 at risk; 250/10 = 25 -> 0.4
    # off track; 160/8 = 20 -> 0.5; 01-06: 0/0 -> NULL; 01-04: 0/5 = 0 beats any target.
    cpa = _status_table(compared, "cost_per_conversion")
    assert cpa == {
        D(2026, 1, 1): Status.on_track,
        D(2026, 1, 2): Status.at_risk,
        D(2026, 1, 3): Status.off_track,
        D(2026, 1, 4): Status.on_track,
        D(2026, 1, 5): Status.off_track,
        D(2026, 1, 6): Status.insufficient_data,
    }
    # cost, band 100..200 a day, off track below 0.8: 100 in, 100 in, 250 -> 200/250 = 0.8
    # at risk, 0 -> off, 160 in, 0 -> off.
    assert _status_table(compared, "cost") == {
        D(2026, 1, 1): Status.on_track,
        D(2026, 1, 2): Status.on_track,
        D(2026, 1, 3): Status.at_risk,
        D(2026, 1, 4): Status.off_track,
        D(2026, 1, 5): Status.on_track,
        D(2026, 1, 6): Status.off_track,
    }
    # conversions: no target; 01-01 has two rows (a and b), the others one or none.
    assert _status_table(compared, "conversions") == {
        D(2026, 1, 1): Status.no_target,
        D(2026, 1, 2): Status.insufficient_data,
        D(2026, 1, 3): Status.insufficient_data,
        D(2026, 1, 4): Status.insufficient_data,
        D(2026, 1, 5): Status.insufficient_data,
        D(2026, 1, 6): Status.insufficient_data,
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
    assert _status_table(compared, "cost_per_conversion")[D(2026, 1, 4)] == Status.on_track


# ---------------------------------------------------------------------------------------------
# Seasonal targets and goal pace in the warehouse (DuckDB and PostgreSQL)
# ---------------------------------------------------------------------------------------------

GOAL_KPIS_YAML = """\
area: test
kpis:
  - id: sales
    name: Sales
    description: sessions, seasonal target of 200 a month, goal by 2026-02-28
    owner: t@example.com
    unit: count
    direction: higher_is_better
    type: simple
    measure: {source: daily, agg: sum, expr: sessions}
    grains: [day, week, month]
    target: {value: 200, grain: month, phasing: seasonal, deadline: 2026-02-28}
  - id: gifts
    name: Gifts
    description: conversions, linear target of 2900 a month, goal by 2026-03-31
    owner: t@example.com
    unit: count
    direction: higher_is_better
    type: simple
    measure: {source: daily, agg: sum, expr: conversions}
    grains: [day, week, month]
    target: {value: 2900, grain: month, deadline: 2026-03-31}
  - id: gifts_paced
    name: Gifts paced
    description: conversions, linear target of 1300 a month, no goal
    owner: t@example.com
    unit: count
    direction: higher_is_better
    type: simple
    measure: {source: daily, agg: sum, expr: conversions}
    grains: [month]
    target: {value: 1300, grain: month}
  - id: sales_quarterly
    name: Sales by quarter
    description: sessions, seasonal target of 300 for Q1 2026, the goal by 2026-03-31
    owner: t@example.com
    unit: count
    direction: higher_is_better
    type: simple
    measure: {source: daily, agg: sum, expr: sessions}
    grains: [day, month, quarter]
    target: {value: 300, grain: quarter, phasing: seasonal, deadline: 2026-03-31}
  - id: spend
    name: Spend
    description: cost, at most 27000 a month, the goal by 2026-03-31
    owner: t@example.com
    unit: currency
    direction: lower_is_better
    type: simple
    measure: {source: daily, agg: sum, expr: cost}
    grains: [day, week, month]
    target: {value: 27000, grain: month, deadline: 2026-03-31}
  - id: cost_per_gift
    name: Cost per gift
    description: a rate with a goal of at most 10 by 2026-03-31
    owner: t@example.com
    unit: currency
    direction: lower_is_better
    type: ratio
    numerator: {source: daily, agg: sum, expr: cost}
    denominator: {source: daily, agg: sum, expr: conversions}
    grains: [day, month]
    target: {value: 10, grain: month, deadline: 2026-03-31}
"""
GOAL_AS_OF = D(2026, 2, 3)


def _goal_rows() -> list[tuple]:
    """(date, channel, sessions, cost, conversions), worked out in the tests below.

    sessions: 0 on 2025-01-01 (the first day of data, so every day from there is known, and
    zero unless given), 10, 20, 30, 40 on Sun 2025-02-02 .. Wed 02-05 (364 days before Sun
    2026-02-01 .. Wed 02-04); 100 on 2026-01-15; 5, 10, 15 on 2026-02-01 .. 03. Seasonal
    shapes read 364 days back: January 2026 <- 2025-01-02 .. 02-01, known and all zero;
    February 2026 <- 2025-02-02 .. 03-01, 10, 20, 30, 40 then zeros (100); Q1 2026 <-
    2025-01-02 .. 04-01, the same 100; December 2025 <- 2024-12-02 .. 2025-01-01, unknown.
    conversions and cost: 100 gifts for 900 a day in January 2026, 50 for 600 a day since.
    """
    rows = [(D(2025, 1, 1), "a", 0, 0.0, 0)]
    rows += [(D(2025, 2, d + 1), "a", 10 * d, 0.0, 0) for d in (1, 2, 3, 4)]
    for day in _days(D(2026, 1, 1), D(2026, 1, 31)):
        rows.append((day, "a", 100 if day.day == 15 else 0, 900.0, 100))
    rows += [(D(2026, 2, d), "a", 5 * d, 600.0, 50) for d in (1, 2, 3)]
    return rows


def _refresh_all(folder, url: str, rows: list[tuple], as_of: dt.date, now=None) -> KpiTables:
    """Load ``rows`` into ``raw.daily`` and refresh every KPI table, in pipeline order."""
    catalog = load_catalog(folder)
    tables = KpiTables.for_catalog(catalog)
    wh = Warehouse(url)
    try:
        wh.ensure_tables(tables.all_tables())
        frame = pd.DataFrame(rows, columns=["date", "channel", "sessions", "cost", "conversions"])
        wh.replace_rows(tables.raw_tables["daily"], None, frame)
        refresh_catalog(wh, tables, now)
        periods = refresh_periods(wh, tables, as_of)
        refresh_kpi_values(wh, tables)
        refresh_targets(wh, tables, periods)
        refresh_comparisons(wh, tables)
    finally:
        wh.dispose()
    return tables


def _read_totals(url: str, tables: KpiTables) -> dict:
    """The total rows of kpi_comparisons by (kpi_id, grain, period_start), once no row of the
    table (totals or slices) is found twice: a dict by key would hide a fan-out."""
    wh = Warehouse(url)
    try:
        out = wh.read(tables.comparisons.select())
    finally:
        wh.dispose()
    keys = ["kpi_id", "grain", "period_start", *tables.catalog.dimensions]
    assert len(out) == len(out[keys].drop_duplicates()), "duplicated kpi_comparisons rows"
    totals = out[out[tables.catalog.dimensions].isna().all(axis=1)]
    return {(r.kpi_id, r.grain, _day(r.period_start)): r for r in totals.itertuples()}


def _false(value) -> bool:
    """False itself, not NULL: "not recomputed" is a statement, not a missing value."""
    return value is not None and not pd.isna(value) and not value


def _day(value) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


@pytest.fixture
def goal_comparisons(tmp_path, warehouse_url):
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "sources.yaml").write_text(SOURCES_YAML)
    (tmp_path / "defs" / "test.yaml").write_text(GOAL_KPIS_YAML)
    tables = _refresh_all(tmp_path / "defs", warehouse_url, _goal_rows(), GOAL_AS_OF)
    return _read_totals(warehouse_url, tables)


def test_seasonal_targets_from_last_years_values_in_the_warehouse(goal_comparisons):
    c = goal_comparisons
    # February 2026 over 2025-02-02 .. 05's 10, 20, 30, 40 (of 100): 20, 40, 60, 80 a day.
    # 2026-02-02 (Monday) takes Monday 2025-02-03's 20: 200 * 20 / 100 = 40, the same day its
    # own last_year compares with (364 days back).
    day = c[("sales", "day", D(2026, 2, 2))]
    assert day.target == pytest.approx(40)
    assert day.last_year == 20
    assert day.phasing == "seasonal"
    # The open February at 02-03: 30 sessions against 20 + 40 + 60 = 120 to date, of 200.
    feb = c[("sales", "month", D(2026, 2, 1))]
    assert (feb.actual, feb.target, feb.target_full_period) == (
        30,
        pytest.approx(120),
        pytest.approx(200),
    )
    assert feb.phasing == "seasonal"
    # Its pace follows last year's shape, not the days: 30 * 200 / 120 = 50 (not
    # 30 * 28 / 3 = 280), short of 200.
    assert feb.projected == pytest.approx(50)
    assert not feb.on_pace
    # The open week 02-02 .. 02-08: 10 + 15 = 25 against 40 + 60 = 100, of 40 + 60 + 80 = 180.
    week = c[("sales", "week", D(2026, 2, 2))]
    assert (week.actual, week.target, week.target_full_period) == (
        25,
        pytest.approx(100),
        pytest.approx(180),
    )
    # January 2026's last year (2025-01-02 .. 02-01) is known but adds up to zero; December
    # 2025's (2024-12-02 .. 2025-01-01) is mostly before the data: both months fall back to
    # linear, and their rows say so.
    for month in (D(2026, 1, 1), D(2025, 12, 1)):
        assert c[("sales", "month", month)].phasing == "seasonal_fallback_linear"
    assert c[("sales", "day", D(2026, 1, 15))].target == pytest.approx(200 / 31)
    # Linear KPIs say so, and keep the day-rate pace.
    gifts_feb = c[("gifts", "month", D(2026, 2, 1))]
    assert gifts_feb.phasing == "linear"
    assert gifts_feb.projected == pytest.approx(150 * 28 / 3)  # 50 a day, 3 of 28 days
    # Pace holds the projection against the whole month: 1400 of 2900 -> not on pace (against
    # the target to date, 2900 * 3 / 28 = 310.7, it would be). Lower is better: spend's
    # 3 * 600 = 1800 projects to 16800 <= 27000 -> on pace (not against 27000 * 3 / 28).
    assert _false(gifts_feb.on_pace)
    spend_feb = c[("spend", "month", D(2026, 2, 1))]
    assert spend_feb.projected == pytest.approx(16800)
    assert spend_feb.on_pace
    # Status judges the target to date: gifts_paced's open February is 150 against
    # 1300 * 3 / 28 = 139.3 -> on track (against the whole month's 1300: off track).
    paced = c[("gifts_paced", "month", D(2026, 2, 1))]
    assert (paced.actual, paced.target) == (150, pytest.approx(1300 * 3 / 28))
    assert paced.status == Status.on_track


def test_goal_pace_projects_to_the_deadline(goal_comparisons):
    c = goal_comparisons
    # gifts: 2900 a month, deadline 03-31: the goal is 01-01 .. 03-31, 3 * 2900 = 8700. The
    # projection is the actual since 01-01 over the share of the goal planned by then.
    # January (closed): 31 * 100 = 3100 against 2900 of 8700 planned (1/3) -> 3100 * 3 = 9300
    # >= 8700.
    jan = c[("gifts", "month", D(2026, 1, 1))]
    assert (jan.goal_start, jan.goal_deadline) == (D(2026, 1, 1), D(2026, 3, 31))
    assert jan.goal_target_value == pytest.approx(8700)
    assert jan.goal_actual_to_date == pytest.approx(3100)
    assert jan.goal_projected_value == pytest.approx(9300)
    assert jan.goal_projection == "run_rate"
    assert jan.goal_will_reach
    # February, open at 02-03: 3100 + 3 * 50 = 3250 against 2900 + 3/28 * 2900 planned, of
    # 8700: (1 + 3/28) / 3 = 31/84 -> 3250 * 84 / 31 = 273000 / 31 = 8806.45 >= 8700.
    feb = c[("gifts", "month", D(2026, 2, 1))]
    assert feb.goal_actual_to_date == pytest.approx(3250)
    assert feb.goal_projected_value == pytest.approx(273000 / 31)
    assert feb.goal_will_reach
    # Day 02-02: 3100 + 2 * 50 = 3200 against (2900 + 2/28 * 2900) / 8700 = (15/14) / 3 = 5/14
    # -> 3200 * 14 / 5 = 8960.
    day = c[("gifts", "day", D(2026, 2, 2))]
    assert (day.goal_actual_to_date, day.goal_projected_value) == (3200, pytest.approx(8960))
    assert day.goal_projection == "run_rate" and day.goal_will_reach
    # The week Mon 2025-12-29 .. Sun 2026-01-04 is as of 01-04: 4 * 100 = 400 against
    # 4 * 2900/31 of 8700 = 4/93 -> 400 * 93 / 4 = 9300.
    week = c[("gifts", "week", D(2025, 12, 29))]
    assert week.goal_projected_value == pytest.approx(9300)
    # December 2025 ends before the goal starts: no goal columns.
    dec = c[("gifts", "month", D(2025, 12, 1))]
    assert pd.isna(dec.goal_deadline) and pd.isna(dec.goal_projected_value)
    assert pd.isna(dec.goal_will_reach)

    # spend, lower is better: 27000 a month, the goal 3 * 27000 = 81000 at most by 03-31.
    # January: 31 * 900 = 27900 against 27000 of 81000 planned (1/3) -> 83700 > 81000: will
    # not reach. (31 of 90 days would have said 27900 * 90 / 31 = 81000, exactly on goal.)
    jan = c[("spend", "month", D(2026, 1, 1))]
    assert (jan.goal_target_value, jan.goal_actual_to_date) == (pytest.approx(81000), 27900)
    assert jan.goal_projected_value == pytest.approx(83700)
    assert jan.goal_projection == "run_rate"
    assert _false(jan.goal_will_reach)
    # February at 02-03: 27900 + 3 * 600 = 29700 against 31/84 of the goal -> 29700 * 84 / 31
    # = 2494800 / 31 = 80477.42 <= 81000: will reach.
    feb = c[("spend", "month", D(2026, 2, 1))]
    assert feb.goal_actual_to_date == 29700
    assert feb.goal_projected_value == pytest.approx(2494800 / 31)
    assert feb.goal_will_reach

    # sales, seasonal, deadline 02-28: the goal is 01-01 .. 02-28, 200 + 200 = 400. January
    # has no last-year shape (its last year adds up to zero) and is spread by days, so every
    # row of the goal says seasonal_fallback_run_rate. February as of 02-03: 100 + 5 + 10 +
    # 15 = 130 against 200 + 20 + 40 + 60 = 320 of 400 planned (0.8) -> 162.5 < 400.
    feb = c[("sales", "month", D(2026, 2, 1))]
    assert feb.goal_target_value == pytest.approx(400)
    assert feb.goal_actual_to_date == pytest.approx(130)
    assert feb.goal_projected_value == pytest.approx(162.5)
    assert feb.goal_projection == "seasonal_fallback_run_rate"
    assert _false(feb.goal_will_reach)
    # January: 100 against January's 200 of 400 (1/2) -> 200.
    jan = c[("sales", "month", D(2026, 1, 1))]
    assert jan.goal_projected_value == pytest.approx(200)
    assert jan.goal_projection == "seasonal_fallback_run_rate"
    # Day 02-02: 100 + 5 + 10 = 115 against 200 + 20 + 40 = 260 of 400 (0.65) -> 176.92.
    day = c[("sales", "day", D(2026, 2, 2))]
    assert day.goal_projected_value == pytest.approx(115 / 0.65)

    # sales_quarterly, seasonal by quarter: 300 for Q1 2026, shaped by 2025-01-02 .. 04-01
    # (fully known: 10, 20, 30, 40 on 2025-02-02 .. 05, else 0; 100): 30, 60, 90, 120 on
    # 2026-02-01 .. 04, 0 on every other day. The goal is 300, all of it seasonal.
    # February as of 02-03: 130 against 30 + 60 + 90 = 180 of 300 (0.6) -> 130 / 0.6 = 216.67.
    for grain, start in (("month", D(2026, 2, 1)), ("quarter", D(2026, 1, 1))):
        row = c[("sales_quarterly", grain, start)]
        assert row.goal_target_value == pytest.approx(300)
        assert row.goal_actual_to_date == 130
        assert row.goal_projected_value == pytest.approx(130 / 0.6)
        assert row.goal_projection == "seasonal"
        assert _false(row.goal_will_reach)
    # January: 100 so far, but nothing of the goal planned yet (share 0): no pace to
    # project, so no projection and no verdict.
    jan = c[("sales_quarterly", "month", D(2026, 1, 1))]
    assert jan.goal_actual_to_date == 100 and jan.goal_projection == "seasonal"
    assert pd.isna(jan.goal_projected_value) and pd.isna(jan.goal_will_reach)

    # cost_per_gift, a rate (lower is better), goal 10: its projection is its current value.
    # January: 900 / 100 = 9 <= 10 -> will reach; February: 600 / 50 = 12 -> will not.
    jan = c[("cost_per_gift", "month", D(2026, 1, 1))]
    assert (jan.goal_projected_value, jan.goal_target_value) == (9, 10)
    assert jan.goal_projection == "current_value" and pd.isna(jan.goal_actual_to_date)
    assert jan.goal_will_reach
    feb = c[("cost_per_gift", "month", D(2026, 2, 1))]
    assert feb.goal_projected_value == 12 and not feb.goal_will_reach


# ---------------------------------------------------------------------------------------------
# History recomputed after a definition change
# ---------------------------------------------------------------------------------------------

CHANGE_KPIS_YAML = """\
area: test
kpis:
  - id: visits
    name: Visits
    description: sessions, later without channel b
    owner: t@example.com
    unit: count
    direction: higher_is_better
    type: simple
    measure: {{source: daily, agg: sum, expr: sessions{filter}}}
    grains: [day, month]
"""
# 10 sessions a day on channel a and 1 on channel b, 2026-01-01 .. 2026-02-28.
CHANGE_ROWS = [
    (day, channel, n, 0.0, 0)
    for day in _days(D(2026, 1, 1), D(2026, 2, 28))
    for channel, n in (("a", 10), ("b", 1))
]
FIRST_RUN = dt.datetime(2026, 1, 10, 6, tzinfo=dt.UTC)
SECOND_RUN = dt.datetime(2026, 2, 15, 6, tzinfo=dt.UTC)


def test_history_marker_follows_definition_changes(tmp_path, warehouse_url):
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "sources.yaml").write_text(SOURCES_YAML)
    (folder / "test.yaml").write_text(CHANGE_KPIS_YAML.format(filter=""))
    tables = _refresh_all(folder, warehouse_url, CHANGE_ROWS, D(2026, 1, 31), FIRST_RUN)
    old_version = tables.catalog.versions["visits"]
    c = _read_totals(warehouse_url, tables)
    jan20 = c[("visits", "day", D(2026, 1, 20))]
    # One definition so far: nothing changed, nothing restated.
    assert jan20.previous_definition_version == old_version
    assert pd.isna(jan20.definition_changed_at)
    assert _false(jan20.history_recomputed)

    # The definition changes (channel b no longer counts) before the second run, on 02-15.
    (folder / "test.yaml").write_text(CHANGE_KPIS_YAML.format(filter=", filter: channel = 'a'"))
    tables = _refresh_all(folder, warehouse_url, CHANGE_ROWS, D(2026, 2, 28), SECOND_RUN)
    new_version = tables.catalog.versions["visits"]
    assert new_version != old_version
    c = _read_totals(warehouse_url, tables)
    feb = c[("visits", "month", D(2026, 2, 1))]
    # February (280) is compared with January restated under the new definition: 310, not
    # the 341 of the first run, and January ended before the change of 02-15.
    assert (feb.actual, feb.previous) == (280, 310)
    assert feb.previous_definition_version == new_version
    assert pd.Timestamp(feb.definition_changed_at) == pd.Timestamp(SECOND_RUN)
    assert feb.history_recomputed
    # 02-20 is compared with 02-19, computed after the change: not restated.
    assert _false(c[("visits", "day", D(2026, 2, 20))].history_recomputed)
    # 02-10 is compared with 02-09, which ended before the change: restated.
    assert c[("visits", "day", D(2026, 2, 10))].history_recomputed
    # Last year is before the first day of data: nothing compared, no version.
    assert feb.last_year_definition_version is None or pd.isna(feb.last_year_definition_version)

    # History kept with the old version (as a store that does not recompute would hold it):
    # January's row as the first run computed it. February is compared with that row, with
    # its version, and the history is marked as not recomputed.
    _keep_old_month(warehouse_url, tables, D(2026, 1, 1), 341.0, old_version)
    feb = _read_totals(warehouse_url, tables)[("visits", "month", D(2026, 2, 1))]
    assert feb.previous == 341
    assert feb.previous_definition_version == old_version
    assert feb.definition_version == new_version
    assert _false(feb.history_recomputed)


def test_history_restated_is_judged_by_the_day_of_the_change_where_it_is_reported(
    tmp_path, warehouse_url
):
    """A day's history was restated when it ended before the day of the change, that day
    taken in the reporting time zone: a change at 23:30 UTC on 02-14 is made at 00:30 on
    02-15 in Copenhagen, after 02-14 ended there."""
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "sources.yaml").write_text(
        SOURCES_YAML.replace("time_zone: UTC", "time_zone: Europe/Copenhagen")
    )
    (folder / "test.yaml").write_text(CHANGE_KPIS_YAML.format(filter=""))
    _refresh_all(folder, warehouse_url, CHANGE_ROWS, D(2026, 1, 31), FIRST_RUN)
    (folder / "test.yaml").write_text(CHANGE_KPIS_YAML.format(filter=", filter: channel = 'a'"))
    change = dt.datetime(2026, 2, 14, 23, 30, tzinfo=dt.UTC)
    tables = _refresh_all(folder, warehouse_url, CHANGE_ROWS, D(2026, 2, 28), change)
    assert tables.catalog.reporting.time_zone == "Europe/Copenhagen"
    c = _read_totals(warehouse_url, tables)
    assert pd.Timestamp(c[("visits", "day", D(2026, 2, 15))].definition_changed_at) == (
        pd.Timestamp(change)
    )
    # 02-15 is compared with 02-14, which ended (in Copenhagen) before the change.
    assert c[("visits", "day", D(2026, 2, 15))].history_recomputed
    # 02-16 is compared with 02-15, the day of the change itself: it had not ended.
    assert _false(c[("visits", "day", D(2026, 2, 16))].history_recomputed)
    # Both were computed under the new definition (a change recomputes the KPI whole).
    new_version = tables.catalog.versions["visits"]
    for day in (D(2026, 2, 15), D(2026, 2, 16)):
        assert c[("visits", "day", day)].previous_definition_version == new_version


def _keep_old_month(
    url: str, tables: KpiTables, month: dt.date, value: float, version: str
) -> None:
    """Overwrite visits' total row of ``month`` as an older definition computed it (as a
    store that does not recompute would hold it), then refresh the comparisons."""
    v = tables.values
    wh = Warehouse(url)
    try:
        with wh.engine.begin() as conn:
            conn.execute(
                v.update()
                .where(
                    v.c.kpi_id == "visits",
                    v.c.grain == "month",
                    v.c.period_start == month,
                    v.c.channel.is_(None),
                )
                .values(value=value, definition_version=version)
            )
        # Written behind the refresh's back: only a full refresh of the comparisons sees it.
        refresh_comparisons(wh, tables, full_refresh=True)
    finally:
        wh.dispose()


def test_a_to_date_window_carries_the_current_definitions_version(tmp_path, warehouse_url):
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "sources.yaml").write_text(SOURCES_YAML)
    (folder / "test.yaml").write_text(CHANGE_KPIS_YAML.format(filter=""))
    tables = _refresh_all(folder, warehouse_url, CHANGE_ROWS, D(2026, 1, 31), FIRST_RUN)
    old_version = tables.catalog.versions["visits"]
    # The definition changes before the second run (02-15), which is as of 02-20.
    (folder / "test.yaml").write_text(CHANGE_KPIS_YAML.format(filter=", filter: channel = 'a'"))
    tables = _refresh_all(folder, warehouse_url, CHANGE_ROWS, D(2026, 2, 20), SECOND_RUN)
    new_version = tables.catalog.versions["visits"]
    # February is open at 02-20: 20 days * 10 = 200, compared with the same 20 days of
    # January, 01-01 .. 01-20, evaluated from the sources under the current definition
    # (20 * 10 = 200), which took over on 02-15, after 01-20: restated.
    feb = _read_totals(warehouse_url, tables)[("visits", "month", D(2026, 2, 1))]
    assert (feb.actual, feb.previous) == (200, 200)
    assert feb.previous_definition_version == new_version
    assert feb.history_recomputed

    # February's row kept with the old version (20 * 11 = 220), as a store that does not
    # recompute would hold it. The to-date January is still evaluated under the current
    # definition (200) and says so with the current version, not the row's: so it was not
    # restated under the row's (old) definition.
    _keep_old_month(warehouse_url, tables, D(2026, 2, 1), 220.0, old_version)
    feb = _read_totals(warehouse_url, tables)[("visits", "month", D(2026, 2, 1))]
    assert (feb.actual, feb.previous) == (220, 200)
    assert feb.definition_version == old_version
    assert feb.previous_definition_version == new_version
    assert _false(feb.history_recomputed)


def _comparison_count(url: str, tables: KpiTables) -> int:
    wh = Warehouse(url)
    try:
        return wh.count(tables.comparisons)
    finally:
        wh.dispose()


def test_duplicated_kpi_changes_rows_do_not_duplicate_comparisons(tmp_path, warehouse_url):
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "sources.yaml").write_text(SOURCES_YAML)
    (folder / "test.yaml").write_text(CHANGE_KPIS_YAML.format(filter=""))
    _refresh_all(folder, warehouse_url, CHANGE_ROWS, D(2026, 1, 31), FIRST_RUN)
    (folder / "test.yaml").write_text(CHANGE_KPIS_YAML.format(filter=", filter: channel = 'a'"))
    tables = _refresh_all(folder, warehouse_url, CHANGE_ROWS, D(2026, 2, 28), SECOND_RUN)
    new_version = tables.catalog.versions["visits"]
    # visits by day and month, totals only: 59 days (01-01 .. 02-28) + 2 months = 61 rows.
    assert _comparison_count(warehouse_url, tables) == 61

    # A kpi_changes table from before its primary key, written by two runs at once: the new
    # version twice, the second sighting a day later.
    changes = tables.changes
    legacy = sa.Table(
        changes.name,
        sa.MetaData(),
        *[sa.Column(c.name, c.type, nullable=c.nullable) for c in changes.columns],
        schema=changes.schema,
    )
    wh = Warehouse(warehouse_url)
    try:
        rows = wh.read(changes.select()).to_dict("records")
        assert len(rows) == 2  # the old and the new version
        with wh.engine.begin() as conn:
            changes.drop(conn)
            legacy.create(conn)
            twice = next(r for r in rows if r["definition_version"] == new_version)
            later = SECOND_RUN + dt.timedelta(days=1)
            conn.execute(legacy.insert(), [*rows, {**twice, "first_seen_at": later}])
        refresh_comparisons(wh, tables)
    finally:
        wh.dispose()
    assert _comparison_count(warehouse_url, tables) == 61
    feb = _read_totals(warehouse_url, tables)[("visits", "month", D(2026, 2, 1))]
    # The earliest sighting of the new version is when it took over.
    assert pd.Timestamp(feb.definition_changed_at) == pd.Timestamp(SECOND_RUN)
    assert feb.history_recomputed


def test_kpi_changes_holds_each_version_once(tmp_path, warehouse_url):
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "sources.yaml").write_text(SOURCES_YAML)
    (folder / "test.yaml").write_text(CHANGE_KPIS_YAML.format(filter=""))
    tables = _refresh_all(folder, warehouse_url, CHANGE_ROWS, D(2026, 1, 31), FIRST_RUN)
    changes, version = tables.changes, tables.catalog.versions["visits"]
    wh = Warehouse(warehouse_url)
    try:
        # A second run of the same definition records no new row, and reports no change.
        assert refresh_catalog(wh, tables, SECOND_RUN) == []
        rows = wh.read(changes.select())
        assert len(rows) == 1
        assert pd.Timestamp(rows.last_seen_at[0]) == pd.Timestamp(SECOND_RUN)
        # A run that read the table before another inserted the version (the race of two
        # runs at once) inserts nothing: the INSERT itself checks.
        row = {
            "kpi_id": "visits",
            "definition_version": version,
            "version": None,
            "changelog": None,
            "first_seen_at": SECOND_RUN,
            "last_seen_at": SECOND_RUN,
        }
        with wh.engine.begin() as conn:
            conn.execute(_insert_missing(conn, changes, row))
        assert wh.count(changes) == 1
        # And the table's primary key refuses a duplicate outright.
        with pytest.raises(sa.exc.IntegrityError), wh.engine.begin() as conn:
            conn.execute(changes.insert().values(**row))
        assert wh.count(changes) == 1
    finally:
        wh.dispose()
