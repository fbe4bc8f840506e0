"""Reporting periods: the calendar arithmetic behind every KPI row.

All date logic lives here, in plain Python, and is written to the warehouse as a small
``periods`` table (one row per grain and period). The compiled SQL only joins dates to
the windows of that table, so week starts, fiscal years, to-date alignment and
same-period-last-year are computed once, tested once, and identical on every warehouse.
"""

from __future__ import annotations

import datetime as dt
import operator
from dataclasses import dataclass, fields

from kpi.language.models import GRAIN_ORDER, WEEKDAYS, Grain, Reporting

ROLLING_WINDOWS = (7, 28, 90)
# The running windows every period carries, each ending on one of its window ends.
RUNNING_WINDOWS = (
    "month_to_date_start",
    "quarter_to_date_start",
    "year_to_date_start",
    *(f"rolling_{days}_start" for days in ROLLING_WINDOWS),
    "all_time_start",  # the first day of data, whatever the window's end
)


@dataclass(frozen=True)
class Period:
    """One reporting period and the windows KPIs are evaluated over.

    ``window_end`` is the last day with data in the period: the period's end, or the
    as-of date for the open period. Comparison windows are aligned to it, so a partial
    month is compared with the same days of the previous month.
    """

    grain: str
    period_start: dt.date
    period_end: dt.date
    days_in_period: int
    is_complete_period: bool
    window_end: dt.date
    elapsed_days: int
    prev_period_start: dt.date
    prev_window_end: dt.date
    ly_period_start: dt.date
    ly_window_end: dt.date
    month_to_date_start: dt.date
    quarter_to_date_start: dt.date
    year_to_date_start: dt.date
    rolling_7_start: dt.date
    rolling_28_start: dt.date
    rolling_90_start: dt.date
    all_time_start: dt.date
    # The same running windows, ending at the comparison windows' ends, so a running total
    # can be compared with the previous period or last year like for like.
    prev_month_to_date_start: dt.date
    prev_quarter_to_date_start: dt.date
    prev_year_to_date_start: dt.date
    prev_rolling_7_start: dt.date
    prev_rolling_28_start: dt.date
    prev_rolling_90_start: dt.date
    prev_all_time_start: dt.date
    ly_month_to_date_start: dt.date
    ly_quarter_to_date_start: dt.date
    ly_year_to_date_start: dt.date
    ly_rolling_7_start: dt.date
    ly_rolling_28_start: dt.date
    ly_rolling_90_start: dt.date
    ly_all_time_start: dt.date

    def as_row(self) -> dict:
        # Not dataclasses.asdict: it deep-copies every field, and the fields are plain
        # dates and strings (3 years of periods took a third of a second).
        return dict(zip(PERIOD_COLUMNS, _period_values(self), strict=True))


PERIOD_COLUMNS = tuple(f.name for f in fields(Period))
_period_values = operator.attrgetter(*PERIOD_COLUMNS)
# The running-window fields of a Period, in the order _period fills them.
_RUNNING_FIELDS = tuple(
    prefix + name for prefix in ("", "prev_", "ly_") for name in RUNNING_WINDOWS
)
# Calendar._period builds a Period positionally: the running fields come last, in this order.
assert PERIOD_COLUMNS[-len(_RUNNING_FIELDS) :] == _RUNNING_FIELDS
_GRAINS = {g: g for g in Grain}  # a StrEnum hashes as its string: "day" finds Grain.day
_MONTHS_PER = {Grain.month: 1, Grain.quarter: 3, Grain.year: 12}
_ONE_DAY, _ONE_WEEK = dt.timedelta(days=1), dt.timedelta(days=7)
_ROLLING_BACK = {days: dt.timedelta(days=days - 1) for days in ROLLING_WINDOWS}


def _grain(grain: Grain | str) -> Grain:
    """``Grain(grain)``, by a dict lookup: the calendar asks ~10 times per period."""
    return _GRAINS.get(grain) or Grain(grain)


def period_columns(periods: list[Period]) -> dict[str, list]:
    """The periods as columns (a table's worth of them), named as the periods table's."""
    rows = [_period_values(p) for p in periods]
    return {name: [row[i] for row in rows] for i, name in enumerate(PERIOD_COLUMNS)}


class Calendar:
    """Period boundaries under a reporting configuration (week start, fiscal year)."""

    def __init__(self, reporting: Reporting):
        self.week_start = WEEKDAYS.index(reporting.week_start)
        self.fiscal_month = reporting.fiscal_year_start_month
        self._running: dict[tuple[dt.date, int], tuple[dt.date, ...]] = {}

    def start_of(self, day: dt.date, grain: Grain | str) -> dt.date:
        grain = _grain(grain)
        if grain == Grain.day:
            return day
        if grain == Grain.week:
            return day - dt.timedelta(days=(day.weekday() - self.week_start) % 7)
        if grain == Grain.month:
            return day.replace(day=1)
        months_per = 3 if grain == Grain.quarter else 12
        # Months since the fiscal year's first month, floored to the quarter or year.
        offset = (day.month - self.fiscal_month) % 12
        back = offset % months_per
        return add_months(day.replace(day=1), -back)

    def next_start(self, start: dt.date, grain: Grain | str) -> dt.date:
        grain = _grain(grain)
        if grain == Grain.day:
            return start + _ONE_DAY
        if grain == Grain.week:
            return start + _ONE_WEEK
        return add_months(start, _MONTHS_PER[grain])

    def end_of(self, start: dt.date, grain: Grain | str) -> dt.date:
        return self.next_start(start, grain) - _ONE_DAY

    def previous_start(self, start: dt.date, grain: Grain | str) -> dt.date:
        grain = _grain(grain)
        if grain == Grain.day:
            return start - _ONE_DAY
        if grain == Grain.week:
            return start - _ONE_WEEK
        return add_months(start, -_MONTHS_PER[grain])

    def same_period_last_year(self, start: dt.date, grain: Grain | str) -> dt.date:
        # Days and weeks shift by 52 weeks so that weekdays line up; the rest by 12 months.
        if _grain(grain) in (Grain.day, Grain.week):
            return start - dt.timedelta(days=364)
        return add_months(start, -12)

    def periods(
        self,
        first_day: dt.date,
        as_of: dt.date,
        grains: list[Grain] | None = None,
        ending_from: dt.date | None = None,
    ) -> list[Period]:
        """Every period of every grain that overlaps ``first_day .. as_of``; with
        ``ending_from``, only those ending on or after it (a grain's periods are contiguous:
        those starting with the one that holds that day)."""
        out: list[Period] = []
        for grain in grains or GRAIN_ORDER:
            grain = Grain(grain)
            start = self.start_of(max(first_day, ending_from or first_day), grain)
            while start <= as_of:
                out.append(self._period(start, grain, first_day, as_of))
                start = self.next_start(start, grain)
        return out

    def table_rows(self, first_day: dt.date, as_of: dt.date) -> tuple[int, int]:
        """(rows of the periods table, rows of the day map) that ``periods(first_day,
        as_of)`` make, counted without building them: a refresh whose calendar did not
        change needs only these, for its stamp. A grain's periods cover every day from the
        start of the first through ``as_of`` once each, so its day map is that many days."""
        periods = days = 0
        for grain in GRAIN_ORDER:
            first_start, last_start = self.start_of(first_day, grain), self.start_of(as_of, grain)
            if first_start > as_of:
                continue
            # Counted, not stepped through: a thousand days were a thousand steps per run.
            if grain == Grain.day:
                periods += (as_of - first_start).days + 1
            elif grain == Grain.week:
                periods += (last_start - first_start).days // 7 + 1
            else:  # both starts begin a month, quarter or year of the same calendar
                months = (last_start.year - first_start.year) * 12 + (
                    last_start.month - first_start.month
                )
                periods += months // _MONTHS_PER[_grain(grain)] + 1
            days += (as_of - first_start).days + 1
        return periods, days

    def _period(self, start: dt.date, grain: Grain, first_day: dt.date, as_of: dt.date) -> Period:
        end = self.end_of(start, grain)
        window_end = min(end, as_of)
        elapsed = (window_end - start).days + 1
        complete = end <= as_of and start >= first_day
        prev_start = self.previous_start(start, grain)
        ly_start = self.same_period_last_year(start, grain)
        prev_end = self._aligned_end(prev_start, grain, elapsed, end <= as_of)
        ly_end = self._aligned_end(ly_start, grain, elapsed, end <= as_of)
        # Positional, in PERIOD_COLUMNS' order (the running fields last, as _RUNNING_FIELDS):
        # a thousand periods are built for three years of days, and keywords cost a third.
        return Period(
            str(grain),
            start,
            end,
            (end - start).days + 1,
            complete,
            window_end,
            elapsed,
            prev_start,
            prev_end,
            ly_start,
            ly_end,
            *self._running_starts(window_end),
            first_day,
            *self._running_starts(prev_end),
            first_day,
            *self._running_starts(ly_end),
            first_day,
        )

    def _running_starts(self, until: dt.date) -> tuple[dt.date, ...]:
        """The starts of the RUNNING_WINDOWS that end on ``until``.

        Memoised: a day is the window end of several periods (its own day, the next day's
        previous window, the day 52 weeks later's last-year window), and three years of
        periods otherwise spend most of their time here.
        """
        key = (until, self.fiscal_month)  # the quarter and year starts depend on it
        starts = self._running.get(key)
        if starts is None:
            month = until.replace(day=1)
            offset = (until.month - self.fiscal_month) % 12  # as start_of
            starts = (
                month,
                add_months(month, -(offset % 3)),
                add_months(month, -offset),
                *[until - _ROLLING_BACK[days] for days in ROLLING_WINDOWS],
            )
            self._running[key] = starts
        return starts

    def _aligned_end(self, start: dt.date, grain: Grain, elapsed: int, closed: bool) -> dt.date:
        """End of a comparison window: the whole period, or the same number of days."""
        full_end = self.end_of(start, grain)
        if closed:
            return full_end
        return min(full_end, start + dt.timedelta(days=elapsed - 1))


def as_date(value: dt.date | dt.datetime) -> dt.date:
    """A date, from a date or a timestamp (as drivers return DATE columns)."""
    return value.date() if isinstance(value, dt.datetime) else value


def add_months(day: dt.date, months: int) -> dt.date:
    """The first day of the month ``months`` after ``day``'s (negative: before)."""
    index = day.year * 12 + (day.month - 1) + months
    return day.replace(year=index // 12, month=index % 12 + 1, day=1)


def _days_mapped(p: Period) -> int:
    """The days of ``p`` in the day map: from its start through its window end."""
    return (p.window_end - p.period_start).days + 1


def day_periods(periods: list[Period]) -> dict[str, list]:
    """(grain, day, period_start) for every day of every period, up to its window end, as
    columns."""
    grains, days, starts = [], [], []
    one = dt.timedelta(days=1)
    for p in periods:
        n = _days_mapped(p)
        grains += [p.grain] * n
        starts += [p.period_start] * n
        days += [p.period_start + one * i for i in range(n)]
    return {"grain": grains, "day": days, "period_start": starts}
