"""``kpi.compute.periods.Calendar``: period boundaries and comparison windows, worked out by hand.

Weekday anchors used below: 2026-01-01 is a Thursday, 2026-01-05 a Monday, 2026-03-09 a
Monday, 2024-02-29 a Thursday.
"""

from __future__ import annotations

import datetime as dt

import pytest

from kpi.compute.periods import Calendar, day_periods
from kpi.language.models import Grain, Reporting

D = dt.date


def cal(week_start="monday", fiscal=1) -> Calendar:
    return Calendar(Reporting(week_start=week_start, fiscal_year_start_month=fiscal))


def period(calendar, grain, start, first_day, as_of):
    """The one period of ``grain`` starting at ``start`` among calendar.periods(...)."""
    found = [
        p for p in calendar.periods(first_day, as_of, [Grain(grain)]) if p.period_start == start
    ]
    assert len(found) == 1, found
    return found[0]


# ---------------------------------------------------------------------------------------------
# start_of / end_of
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "week_start", "expected"),
    [
        # Thu 2026-01-01: back 3 days to Mon 2025-12-29, back 4 days to Sun 2025-12-28.
        (D(2026, 1, 1), "monday", D(2025, 12, 29)),
        (D(2026, 1, 1), "sunday", D(2025, 12, 28)),
        # Sun 2026-01-04 ends the Monday week of 12-29 but starts its own Sunday week.
        (D(2026, 1, 4), "monday", D(2025, 12, 29)),
        (D(2026, 1, 4), "sunday", D(2026, 1, 4)),
        # Mon 2026-01-05 starts a Monday week; in Sunday weeks it belongs to Sun 01-04.
        (D(2026, 1, 5), "monday", D(2026, 1, 5)),
        (D(2026, 1, 5), "sunday", D(2026, 1, 4)),
        # Sat 2026-01-10 in Saturday weeks starts its own week; Fri 01-09 goes back to 01-03.
        (D(2026, 1, 10), "saturday", D(2026, 1, 10)),
        (D(2026, 1, 9), "saturday", D(2026, 1, 3)),
    ],
)
def test_week_start(day, week_start, expected):
    c = cal(week_start)
    assert c.start_of(day, Grain.week) == expected
    assert c.end_of(expected, Grain.week) == expected + dt.timedelta(days=6)


@pytest.mark.parametrize(
    ("day", "start", "end"),
    [
        (D(2026, 1, 31), D(2026, 1, 1), D(2026, 1, 31)),
        (D(2026, 2, 15), D(2026, 2, 1), D(2026, 2, 28)),  # 2026 is not a leap year
        (D(2024, 2, 29), D(2024, 2, 1), D(2024, 2, 29)),  # 2024 is
        (D(2100, 2, 10), D(2100, 2, 1), D(2100, 2, 28)),  # divisible by 100, not by 400
        (D(2000, 2, 10), D(2000, 2, 1), D(2000, 2, 29)),  # divisible by 400
        (D(2025, 12, 31), D(2025, 12, 1), D(2025, 12, 31)),
    ],
)
def test_month_start_and_end(day, start, end):
    c = cal()
    assert c.start_of(day, "month") == start
    assert c.end_of(start, "month") == end


@pytest.mark.parametrize(
    ("fiscal", "day", "q_start", "q_end", "y_start", "y_end"),
    [
        # Calendar year: Q2 is Apr..Jun.
        (1, D(2026, 5, 15), D(2026, 4, 1), D(2026, 6, 30), D(2026, 1, 1), D(2026, 12, 31)),
        # Fiscal year from April: 2026-03-15 is in Q4 (Jan..Mar) of FY Apr 2025 .. Mar 2026.
        (4, D(2026, 3, 15), D(2026, 1, 1), D(2026, 3, 31), D(2025, 4, 1), D(2026, 3, 31)),
        # ...and 2026-04-01 starts FY 2026/27 and its Q1.
        (4, D(2026, 4, 1), D(2026, 4, 1), D(2026, 6, 30), D(2026, 4, 1), D(2027, 3, 31)),
        # Fiscal year from July: January is 6 months in (Q3 = Jan..Mar), year from 2025-07-01.
        (7, D(2026, 1, 10), D(2026, 1, 1), D(2026, 3, 31), D(2025, 7, 1), D(2026, 6, 30)),
        # December in a July fiscal year: 5 months in -> Q2 = Oct..Dec.
        (7, D(2026, 12, 31), D(2026, 10, 1), D(2026, 12, 31), D(2026, 7, 1), D(2027, 6, 30)),
        # Fiscal year from February: quarters Feb-Apr, May-Jul, Aug-Oct, Nov-Jan, so
        # 2026-01-15 is in Q4 = 2025-11-01 .. 2026-01-31 of FY Feb 2025 .. Jan 2026.
        (2, D(2026, 1, 15), D(2025, 11, 1), D(2026, 1, 31), D(2025, 2, 1), D(2026, 1, 31)),
    ],
)
def test_fiscal_quarter_and_year(fiscal, day, q_start, q_end, y_start, y_end):
    c = cal(fiscal=fiscal)
    assert c.start_of(day, "quarter") == q_start
    assert c.end_of(q_start, "quarter") == q_end
    assert c.start_of(day, "year") == y_start
    assert c.end_of(y_start, "year") == y_end


def test_leap_year_days_in_period():
    # 2024 has 366 days; Feb 2024 has 29; Q1 2024 = 31 + 29 + 31 = 91; 2025 has 365.
    periods = cal().periods(D(2024, 1, 1), D(2025, 12, 31))
    by = {(p.grain, p.period_start): p for p in periods}
    assert by[("year", D(2024, 1, 1))].days_in_period == 366
    assert by[("year", D(2025, 1, 1))].days_in_period == 365
    assert by[("month", D(2024, 2, 1))].days_in_period == 29
    assert by[("month", D(2025, 2, 1))].days_in_period == 28
    assert by[("quarter", D(2024, 1, 1))].days_in_period == 91
    assert by[("day", D(2024, 2, 29))].period_end == D(2024, 2, 29)


# ---------------------------------------------------------------------------------------------
# periods(): which periods, completeness, window ends
# ---------------------------------------------------------------------------------------------


def test_period_counts_per_grain():
    # 2026-01-01 (Thu) .. 2026-03-10 (Tue): 31 + 28 + 10 = 69 days; Monday weeks from
    # 2025-12-29 to 2026-03-09 = 11 weeks; 3 months; 1 quarter; 1 year.
    periods = cal().periods(D(2026, 1, 1), D(2026, 3, 10))
    counts = {g: sum(p.grain == g for p in periods) for g in ("day", "week", "month")}
    assert counts == {"day": 69, "week": 11, "month": 3}
    assert len(periods) == 69 + 11 + 3 + 1 + 1
    weeks = [p.period_start for p in periods if p.grain == "week"]
    assert weeks[0] == D(2025, 12, 29) and weeks[-1] == D(2026, 3, 9)


def test_table_rows_by_hand():
    # 2026-01-01 .. 2026-03-10, Monday weeks: 69 + 11 + 3 + 1 + 1 periods. The day map holds
    # each grain's days from the start of its first period: 69 days, 72 from Monday
    # 2025-12-29, and 69 for the month, the quarter and the year (all start on 1 January).
    assert cal().table_rows(D(2026, 1, 1), D(2026, 3, 10)) == (85, 69 + 72 + 69 * 3)


@pytest.mark.parametrize("week_start", ["monday", "sunday", "saturday"])
@pytest.mark.parametrize("fiscal", [1, 2, 4, 10])
@pytest.mark.parametrize(
    "first,as_of",
    [
        (D(2023, 4, 7), D(2025, 12, 31)),
        (D(2024, 2, 29), D(2025, 3, 1)),
        (D(2026, 1, 1), D(2026, 1, 1)),
        (D(2025, 12, 28), D(2026, 1, 4)),
        (D(2019, 1, 31), D(2026, 12, 31)),
        (D(2026, 1, 5), D(2026, 1, 1)),  # no data through as_of: nothing
    ],
)
def test_table_rows_count_what_periods_build(week_start, fiscal, first, as_of):
    # The stamp of an unchanged calendar is made from these counts without building a period.
    calendar = cal(week_start=week_start, fiscal=fiscal)
    periods = calendar.periods(first, as_of)
    assert calendar.table_rows(first, as_of) == (len(periods), len(day_periods(periods)["day"]))


@pytest.mark.parametrize("week_start", ["monday", "sunday"])
@pytest.mark.parametrize("fiscal", [1, 4])
def test_a_days_own_previous_and_last_year_windows_are_one_day(week_start, fiscal):
    # The compiler joins a day's earlier day by equality on the window's start
    # (KpiCompiler._window_join), which is right only while each such window is one day.
    calendar = cal(week_start=week_start, fiscal=fiscal)
    days = [p for p in calendar.periods(D(2023, 1, 1), D(2025, 3, 31)) if p.grain == "day"]
    assert len(days) == 821
    for p in days:
        assert p.period_start == p.period_end == p.window_end, p
        assert p.prev_period_start == p.prev_window_end, p
        assert p.ly_period_start == p.ly_window_end, p


@pytest.mark.parametrize("ending_from", [D(2024, 2, 29), D(2025, 3, 31), D(2025, 6, 1)])
def test_periods_ending_from_are_those_ending_on_or_after_it(ending_from):
    # What a refresh rewrites when only the as-of date moved: built alone, the same periods.
    calendar = cal(week_start="sunday", fiscal=4)
    first, as_of = D(2024, 1, 10), D(2025, 6, 1)
    every = calendar.periods(first, as_of)
    recent = calendar.periods(first, as_of, ending_from=ending_from)
    assert recent == [p for p in every if p.period_end >= ending_from]
    assert {p.grain for p in recent} == {"day", "week", "month", "quarter", "year"}


def test_is_complete_period_and_window_end():
    c = cal()
    first, as_of = D(2026, 1, 7), D(2026, 3, 10)  # data from Wed 01-07 through Tue 03-10
    # January started before the first day of data: not complete, though it has ended.
    jan = period(c, "month", D(2026, 1, 1), first, as_of)
    assert (jan.is_complete_period, jan.window_end, jan.elapsed_days) == (False, D(2026, 1, 31), 31)
    # February lies wholly inside the data: complete.
    feb = period(c, "month", D(2026, 2, 1), first, as_of)
    assert (feb.is_complete_period, feb.window_end, feb.elapsed_days) == (True, D(2026, 2, 28), 28)
    # March is open at the as-of date: 10 days elapsed of 31.
    mar = period(c, "month", D(2026, 3, 1), first, as_of)
    assert mar.is_complete_period is False
    assert (mar.period_end, mar.window_end, mar.elapsed_days) == (D(2026, 3, 31), as_of, 10)
    assert mar.days_in_period == 31
    # Week of Mon 01-05 starts before Wed 01-07: not complete. Week of 01-12 is complete.
    assert period(c, "week", D(2026, 1, 5), first, as_of).is_complete_period is False
    assert period(c, "week", D(2026, 1, 12), first, as_of).is_complete_period is True
    # Week of Mon 03-09 is open: window_end is the as-of Tuesday, 2 days elapsed.
    open_week = period(c, "week", D(2026, 3, 9), first, as_of)
    assert (open_week.is_complete_period, open_week.window_end) == (False, as_of)
    assert open_week.elapsed_days == 2
    # Day periods: the first day of data and the as-of day are both complete days.
    assert period(c, "day", first, first, as_of).is_complete_period is True
    assert period(c, "day", as_of, first, as_of).is_complete_period is True


def test_period_ending_on_as_of_is_complete():
    # as_of = 2026-02-28, the last day of February: February is closed and complete.
    feb = period(cal(), "month", D(2026, 2, 1), D(2026, 2, 1), D(2026, 2, 28))
    assert feb.is_complete_period is True
    assert feb.window_end == D(2026, 2, 28)
    # Its previous-period window is the whole of January (closed period: full length).
    assert (feb.prev_period_start, feb.prev_window_end) == (D(2026, 1, 1), D(2026, 1, 31))


# ---------------------------------------------------------------------------------------------
# Comparison windows: previous period, last year (to-date alignment)
# ---------------------------------------------------------------------------------------------


def test_open_month_compares_same_days_of_previous_month():
    # Nov 1..27 is open at as_of 11-27 (27 days elapsed) -> Oct 1..27.
    nov = period(cal(), "month", D(2026, 11, 1), D(2026, 10, 1), D(2026, 11, 27))
    assert nov.elapsed_days == 27
    assert (nov.prev_period_start, nov.prev_window_end) == (D(2026, 10, 1), D(2026, 10, 27))
    # Last year: Nov 1..27 2025.
    assert (nov.ly_period_start, nov.ly_window_end) == (D(2025, 11, 1), D(2025, 11, 27))


def test_complete_month_compares_whole_previous_month():
    # February (28 days) is complete at as_of 03-10: compare with all 31 days of January.
    feb = period(cal(), "month", D(2026, 2, 1), D(2026, 1, 1), D(2026, 3, 10))
    assert (feb.prev_period_start, feb.prev_window_end) == (D(2026, 1, 1), D(2026, 1, 31))
    # Complete March compares with the whole of February.
    mar = period(cal(), "month", D(2026, 3, 1), D(2026, 1, 1), D(2026, 4, 2))
    assert (mar.prev_period_start, mar.prev_window_end) == (D(2026, 2, 1), D(2026, 2, 28))


def test_open_month_longer_than_previous_is_capped_at_previous_month_end():
    # March 1..30 open (30 days) vs February: Feb 1 + 29 days = Mar 2, capped at Feb 28.
    mar = period(cal(), "month", D(2026, 3, 1), D(2026, 2, 1), D(2026, 3, 30))
    assert mar.prev_window_end == D(2026, 2, 28)


def test_open_week_compares_same_weekdays_of_previous_week():
    # Week Mon 03-09 open at Wed 03-11 (3 days) -> previous Mon 03-02 .. Wed 03-04.
    wk = period(cal(), "week", D(2026, 3, 9), D(2026, 3, 1), D(2026, 3, 11))
    assert wk.elapsed_days == 3
    assert (wk.prev_period_start, wk.prev_window_end) == (D(2026, 3, 2), D(2026, 3, 4))
    # Last year: 364 days back = Mon 2025-03-10 (also a Monday) .. Wed 2025-03-12.
    assert (wk.ly_period_start, wk.ly_window_end) == (D(2025, 3, 10), D(2025, 3, 12))
    assert wk.ly_period_start.weekday() == 0
    # A closed week compares with the full previous week.
    closed = period(cal(), "week", D(2026, 3, 2), D(2026, 3, 1), D(2026, 3, 11))
    assert (closed.prev_period_start, closed.prev_window_end) == (D(2026, 2, 23), D(2026, 3, 1))


def test_open_quarter_compares_same_days_of_previous_quarter():
    # Q1 2026 open at 02-15: 31 + 15 = 46 days -> Oct 1 2025 + 45 days = Nov 15 2025.
    q = period(cal(), "quarter", D(2026, 1, 1), D(2026, 1, 1), D(2026, 2, 15))
    assert q.elapsed_days == 46
    assert (q.prev_period_start, q.prev_window_end) == (D(2025, 10, 1), D(2025, 11, 15))


@pytest.mark.parametrize(
    ("grain", "start", "ly_start"),
    [
        # Days and weeks shift by 52 weeks = 364 days (same weekday).
        ("day", D(2026, 3, 10), D(2025, 3, 11)),
        # 2024-02-29 - 365 days = 2023-03-01 (no Feb 29 in 2023), so -364 = 2023-03-02.
        ("day", D(2024, 2, 29), D(2023, 3, 2)),
        # 2025-03-01 - 364 days: 2024 was leap, so 2024-03-02 (-365 = 03-01, +1).
        ("day", D(2025, 3, 1), D(2024, 3, 2)),
        ("week", D(2026, 1, 5), D(2025, 1, 6)),  # Monday -> Monday
        # Months, quarters and years shift by 12 months.
        ("month", D(2024, 2, 1), D(2023, 2, 1)),
        ("quarter", D(2026, 4, 1), D(2025, 4, 1)),
        ("year", D(2026, 1, 1), D(2025, 1, 1)),
    ],
)
def test_same_period_last_year(grain, start, ly_start):
    c = cal()
    assert c.same_period_last_year(start, grain) == ly_start
    if grain in ("day", "week"):
        assert (start - ly_start).days == 364
        assert start.weekday() == ly_start.weekday()


def test_leap_february_last_year_windows():
    c = cal()
    # Complete Feb 2025 (28 days) vs all of Feb 2024 (29 days).
    feb25 = period(c, "month", D(2025, 2, 1), D(2025, 1, 1), D(2025, 3, 5))
    assert (feb25.ly_period_start, feb25.ly_window_end) == (D(2024, 2, 1), D(2024, 2, 29))
    # Open Feb 2024 at 02-28 (28 days elapsed) vs Feb 1..28 2023 (all of it).
    feb24 = period(c, "month", D(2024, 2, 1), D(2024, 1, 1), D(2024, 2, 28))
    assert feb24.is_complete_period is False
    assert (feb24.ly_period_start, feb24.ly_window_end) == (D(2023, 2, 1), D(2023, 2, 28))
    # Complete Feb 2024 (as_of the leap day) vs all of Jan 2024 and all of Feb 2023.
    feb24c = period(c, "month", D(2024, 2, 1), D(2024, 1, 1), D(2024, 2, 29))
    assert feb24c.is_complete_period is True
    assert feb24c.prev_window_end == D(2024, 1, 31)
    assert feb24c.ly_window_end == D(2023, 2, 28)


# ---------------------------------------------------------------------------------------------
# To-date and rolling starts
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fiscal", "mtd", "qtd", "ytd"),
    [
        # Window end 2026-05-20. Calendar year: Q2 from 04-01, year from 01-01.
        (1, D(2026, 5, 1), D(2026, 4, 1), D(2026, 1, 1)),
        # April fiscal year: Q1 and the year both start 2026-04-01.
        (4, D(2026, 5, 1), D(2026, 4, 1), D(2026, 4, 1)),
        # July fiscal year: May is 10 months in -> Q4 = Apr..Jun, year from 2025-07-01.
        (7, D(2026, 5, 1), D(2026, 4, 1), D(2025, 7, 1)),
    ],
)
def test_to_date_starts(fiscal, mtd, qtd, ytd):
    # Open month May 2026 at as_of 05-20: window_end = 05-20.
    may = period(cal(fiscal=fiscal), "month", D(2026, 5, 1), D(2026, 1, 1), D(2026, 5, 20))
    assert may.window_end == D(2026, 5, 20)
    assert (may.month_to_date_start, may.quarter_to_date_start, may.year_to_date_start) == (
        mtd,
        qtd,
        ytd,
    )


def test_to_date_starts_follow_window_end_not_period_start():
    # Week Mon 2026-03-30 .. Sun 04-05 (closed at as_of 04-10): window_end is in April,
    # so its month-to-date and quarter-to-date windows start on 04-01.
    wk = period(cal(), "week", D(2026, 3, 30), D(2026, 3, 1), D(2026, 4, 10))
    assert wk.window_end == D(2026, 4, 5)
    assert wk.month_to_date_start == D(2026, 4, 1)
    assert wk.quarter_to_date_start == D(2026, 4, 1)
    assert wk.year_to_date_start == D(2026, 1, 1)


def test_rolling_starts():
    # Day 2026-03-10: 7 days back to 03-04 (4..10), 28 days to 02-11 (Feb 11..28 = 18 days
    # + Mar 1..10 = 10), 90 days to 2025-12-11 (Dec 11..31 = 21 + 31 + 28 + 10 = 90).
    d = period(cal(), "day", D(2026, 3, 10), D(2026, 1, 1), D(2026, 3, 10))
    assert d.rolling_7_start == D(2026, 3, 4)
    assert d.rolling_28_start == D(2026, 2, 11)
    assert d.rolling_90_start == D(2025, 12, 11)
    # An open month's rolling window ends at the as-of date, not the month end.
    mar = period(cal(), "month", D(2026, 3, 1), D(2026, 1, 1), D(2026, 3, 10))
    assert mar.rolling_7_start == D(2026, 3, 4)
    # Across the leap day: 2024-03-03 - 6 days = 2024-02-26 (Feb has 29 days).
    leap = period(cal(), "day", D(2024, 3, 3), D(2024, 2, 1), D(2024, 3, 3))
    assert leap.rolling_7_start == D(2024, 2, 26)


def test_day_period_windows():
    d = period(cal(), "day", D(2026, 3, 1), D(2026, 2, 1), D(2026, 3, 10))
    assert (d.period_end, d.window_end, d.days_in_period, d.elapsed_days) == (
        D(2026, 3, 1),
        D(2026, 3, 1),
        1,
        1,
    )
    # Previous day of March 1 is Feb 28 (2026 not leap).
    assert (d.prev_period_start, d.prev_window_end) == (D(2026, 2, 28), D(2026, 2, 28))


def test_as_row_has_every_periods_table_column():
    row = period(cal(), "day", D(2026, 3, 1), D(2026, 2, 1), D(2026, 3, 10)).as_row()
    assert row["grain"] == "day"
    assert row["period_start"] == D(2026, 3, 1)
    assert set(row) >= {"window_end", "prev_window_end", "ly_window_end", "rolling_90_start"}
