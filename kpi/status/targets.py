"""Phase each KPI's target (and benchmark) over the periods of its grains: ``kpi_targets``.

Targets are phased per period in Python (they are few); ``kpi.status.comparisons`` joins
the rows to ``kpi_values`` in the warehouse. An open period is held against the target for
the days elapsed (``target_to_date``), not the whole period (``target``).

Phasing spreads an additive target over the days of its target period: evenly (``linear``),
as given (``per_period``), or (``seasonal``) in proportion to the same KPI's daily values on
the same weekdays 52 weeks (364 days) earlier: the days a day's or a week's ``last_year``
compares with, so a target's weekly pattern follows last year's weekdays. A target period
whose last year is not fully in ``kpi_values`` (or adds up to nothing) is spread evenly,
and every row it touches says ``seasonal_fallback_linear``: the fallback is never silent.
Level KPIs (rates) keep the same target at every grain; counts that do not add up over
days are held at their own grain (``kpi.status.unphased``).

Goal plan: a target with a ``deadline`` is a goal running from the start of the (fiscal)
year that holds the deadline up to the deadline. Every row whose last day falls in that
span carries the goal (``goal_*`` columns) and, for an additive KPI, the share of the goal
planned by that day (the target phased from the goal's start through that day, over the
whole goal), which ``kpi.status.comparisons`` divides the KPI's year to date by to project
it to the deadline.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa

from kpi.compute.periods import Calendar, Period, as_date
from kpi.language.catalog import Catalog
from kpi.language.facts import scales_with_days, shape_kpi
from kpi.language.models import Grain, Kpi, KpiType, Target
from kpi.status.unphased import counts_without_adding, unphased
from kpi.warehouse.connection import Warehouse

# How a row's target was phased (kpi_targets.phasing, kpi_comparisons.phasing).
LINEAR, PER_PERIOD, SEASONAL = "linear", "per_period", "seasonal"
SEASONAL_FALLBACK = "seasonal_fallback_linear"
# How a goal is projected to its deadline (goal_projection).
RUN_RATE, SEASONAL_SHAPE = "run_rate", "seasonal"
SEASONAL_FALLBACK_RUN_RATE = "seasonal_fallback_run_rate"
CURRENT_VALUE = "current_value"

History = dict[dt.date, float]  # one KPI's daily values (total row), by day


@dataclass(frozen=True)
class TargetRow:
    kpi_id: str
    grain: str
    period_start: dt.date
    target: float | None
    target_to_date: float | None
    band_min: float | None  # to date, like target_to_date
    band_max: float | None
    band_min_full: float | None  # for the whole period, to judge the pace
    band_max_full: float | None
    benchmark_value: float | None  # to date
    benchmark_min: float | None
    benchmark_max: float | None
    benchmark_source: str | None
    is_example: bool
    phasing: str | None = None  # LINEAR, PER_PERIOD, SEASONAL or SEASONAL_FALLBACK
    # The goal (a target with a deadline), on rows whose last day is within its span.
    goal_start: dt.date | None = None
    goal_deadline: dt.date | None = None
    goal_target: float | None = None  # the whole goal: summed over its span when additive
    goal_band_min: float | None = None
    goal_band_max: float | None = None
    # Additive goals: the share of the goal planned through the row's last day (the target
    # phased from goal_start through that day, over goal_target; the share of the days when
    # the goal is unknown or zero); the projection is actual / share.
    goal_elapsed_share: float | None = None
    goal_projection: str | None = None  # RUN_RATE, SEASONAL_SHAPE, ... or CURRENT_VALUE


def last_year_day(day: dt.date) -> dt.date:
    """The day whose value last year shapes ``day``'s seasonal target: the same weekday 52
    weeks (364 days) earlier, as ``Calendar.same_period_last_year`` gives for days and
    weeks, so a seasonal target follows last year's weekdays and the row's ``last_year``."""
    return day - dt.timedelta(days=364)


def daily_history(wh: Warehouse, values: sa.Table, catalog: Catalog) -> dict[str, History]:
    """The daily total values (all dimensions NULL) of every KPI that shapes a seasonal
    target, read from ``kpi_values``: a few hundred rows per KPI, fine in Python."""
    ids = sorted(
        {
            shape_kpi(catalog, k).id
            for k in catalog.kpis.values()
            if k.target is not None and k.target.phasing == SEASONAL
        }
    )
    if not ids:
        return {}
    v = values
    rows = wh.read(
        sa.select(v.c.kpi_id, v.c.period_start, v.c.value).where(
            v.c.grain == str(Grain.day),
            v.c.kpi_id.in_(ids),
            *[v.c[d].is_(None) for d in catalog.dimensions],
        )
    )
    history: dict[str, History] = {kpi_id: {} for kpi_id in ids}
    for kpi_id, day, value in rows.itertuples(index=False):
        if value is not None and not math.isnan(value):
            history[kpi_id][as_date(day)] = float(value)
    return history


class _Shape:
    """How the value of each target period is spread over its days.

    Evenly by default. Seasonal: in proportion to last year's values of the same weekdays
    (``last_year_day``), for every target period whose last year is fully known,
    non-negative and not all zero; the others are spread evenly and counted as fallbacks.
    """

    def __init__(
        self, grain: Grain, calendar: Calendar, seasonal: bool, history: History | None
    ) -> None:
        self.grain, self.calendar = grain, calendar
        self.seasonal, self.history = seasonal, history or {}
        self._shares: dict[dt.date, dict[dt.date, float] | None] = {}

    def _days(self, start: dt.date) -> list[dt.date]:
        end = self.calendar.end_of(start, self.grain)
        return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]

    def shares(self, start: dt.date) -> dict[dt.date, float] | None:
        """Last year's share of each day of the target period ``start``; None: spread evenly."""
        if start not in self._shares:
            self._shares[start] = self._seasonal_shares(start) if self.seasonal else None
        return self._shares[start]

    def _seasonal_shares(self, start: dt.date) -> dict[dt.date, float] | None:
        days = self._days(start)
        last_year = [self.history.get(last_year_day(d)) for d in days]
        if any(v is None or v < 0 for v in last_year):
            return None
        total = sum(last_year)
        if total <= 0:
            return None
        return {d: v / total for d, v in zip(days, last_year, strict=True)}

    def share(self, day: dt.date) -> float:
        start = self.calendar.start_of(day, self.grain)
        shares = self.shares(start)
        if shares is None:
            return 1 / ((self.calendar.end_of(start, self.grain) - start).days + 1)
        return shares[day]

    def fell_back(self, first: dt.date, last: dt.date) -> bool:
        """True when a seasonal target period touching ``first..last`` was spread evenly."""
        if not self.seasonal:
            return False
        start = self.calendar.start_of(first, self.grain)
        while start <= last:
            if self.shares(start) is None:
                return True
            start = self.calendar.next_start(start, self.grain)
        return False


def phase_targets(
    catalog: Catalog, periods: list[Period], history: dict[str, History] | None = None
) -> list[TargetRow]:
    """The target of every KPI for every period of its grains.

    ``linear`` spreads an additive target evenly over the days of its target period (so a
    week that spans two months gets its days' share of each); level KPIs such as rates keep
    the same target at every grain. ``per_period`` gives the value of each target period.
    ``seasonal`` spreads it by last year's daily values of the KPI in ``history`` (see
    ``daily_history``), falling back to linear where last year is not known.
    """
    calendar = Calendar(catalog.reporting)
    history = history or {}
    rows: list[TargetRow] = []
    for kpi in catalog.kpis.values():
        if kpi.target is not None or kpi.benchmark is not None:
            shape_history = history.get(shape_kpi(catalog, kpi).id)
            rows.extend(_kpi_targets(catalog, kpi, periods, calendar, shape_history))
    return rows


def _kpi_targets(
    catalog: Catalog,
    kpi: Kpi,
    periods: list[Period],
    calendar: Calendar,
    history: History | None = None,
) -> list[TargetRow]:
    t = kpi.target or Target()
    b = kpi.benchmark
    cumulative = kpi.cumulative if kpi.type == KpiType.cumulative else None
    # A running total's target is its base's daily target summed over the same window.
    base = shape_kpi(catalog, kpi)
    # A count that does not add up over days is not phased at all (kpi.status.unphased).
    held_at_own_grain = counts_without_adding(catalog, kpi)
    additive = scales_with_days(base) and not held_at_own_grain
    seasonal = t.phasing == SEASONAL and additive
    shape = _Shape(t.grain, calendar, seasonal, history)
    benchmark_shape = _Shape(b.grain if b else t.grain, calendar, False, None)
    has_target = kpi.target is not None and (
        t.value is not None or t.band is not None or bool(t.per_period)
    )
    goal = _Goal.of(kpi, t, shape, calendar, additive)

    def first_day(p: Period, end: dt.date) -> dt.date:
        if cumulative is None or not additive:
            return p.period_start
        if cumulative.to_date:
            return calendar.start_of(end, cumulative.to_date)
        if cumulative.window == "all_time":
            return p.all_time_start
        return end - dt.timedelta(days=cumulative.window_days - 1)

    def phase(value, p: Period, end: dt.date, per_period=None) -> float | None:
        return _phase(value, per_period or {}, shape, first_day(p, end), end, calendar, additive)

    def benchmark(value, p: Period) -> float | None:
        if b is None or value is None:
            return None
        if (b.valid_from and p.period_end < b.valid_from) or (
            b.valid_to and p.period_start > b.valid_to
        ):
            return None
        end = p.window_end
        return _phase(value, {}, benchmark_shape, first_day(p, end), end, calendar, additive)

    def phasing(p: Period) -> str | None:
        if not has_target:
            return None
        if t.phasing != SEASONAL:
            return str(t.phasing)
        if not seasonal:  # a level KPI has no days to spread over (SeasonalPhasingRule)
            return SEASONAL_FALLBACK
        first = first_day(p, p.period_end)
        return SEASONAL_FALLBACK if shape.fell_back(first, p.period_end) else SEASONAL

    rows = []
    for p in periods:
        if p.grain not in kpi.grains:
            continue
        band = t.band
        row = TargetRow(
            kpi_id=kpi.id,
            grain=p.grain,
            period_start=p.period_start,
            target=phase(t.value, p, p.period_end, t.per_period),
            target_to_date=phase(t.value, p, p.window_end, t.per_period),
            band_min=phase(band.min, p, p.window_end) if band else None,
            band_max=phase(band.max, p, p.window_end) if band else None,
            band_min_full=phase(band.min, p, p.period_end) if band else None,
            band_max_full=phase(band.max, p, p.period_end) if band else None,
            benchmark_value=benchmark(b.value, p) if b else None,
            benchmark_min=benchmark(b.band.min, p) if b and b.band else None,
            benchmark_max=benchmark(b.band.max, p) if b and b.band else None,
            benchmark_source=b.source if b else None,
            is_example=t.example or bool(b and b.example),
            phasing=phasing(p),
            **(goal.columns(p.window_end) if goal else {}),
        )
        if held_at_own_grain:
            row = unphased(row, p, t.grain, b.grain if b else None)
        rows.append(row)
    return rows


def _phase(
    value: float | None,
    per_period: dict[dt.date, float],
    shape: _Shape,
    first: dt.date,
    until: dt.date,
    calendar: Calendar,
    additive: bool,
) -> float | None:
    """The target over the days ``first..until``: each day's share, summed, when additive."""
    if not additive:
        return per_period.get(calendar.start_of(first, shape.grain), value)
    total = 0.0
    for part in _daily_parts(value, per_period, shape, first, until, calendar):
        if part is None:
            return None
        total += part
    return total


def _daily_parts(
    value: float | None,
    per_period: dict[dt.date, float],
    shape: _Shape,
    first: dt.date,
    until: dt.date,
    calendar: Calendar,
) -> Iterator[float | None]:
    """Each day's part of an additive target, ``first..until``: its target period's value
    times the day's share of that period (None for a day whose period has no value)."""
    day = first
    while day <= until:
        v = per_period.get(calendar.start_of(day, shape.grain), value)
        yield None if v is None else v * shape.share(day)
        day += dt.timedelta(days=1)


@dataclass(frozen=True)
class _Goal:
    """A target with a deadline: what it adds up to, and how much of it is planned by a day."""

    start: dt.date
    deadline: dt.date
    target: float | None
    band: tuple[float | None, float | None]
    additive: bool
    method: str
    # Additive goals: the goal phased from its start through each day of its span (the last
    # is the whole goal). None when the goal is unknown or zero: the days are the shape.
    planned: list[float] | None

    @classmethod
    def of(
        cls,
        kpi: Kpi,
        t: Target,
        shape: _Shape,
        calendar: Calendar,
        additive: bool,
    ) -> _Goal | None:
        # A running total has no single value at a deadline to project (GoalDeadlineRule).
        if t.deadline is None or kpi.type == KpiType.cumulative:
            return None
        start = calendar.start_of(t.deadline, Grain.year)
        if not scales_with_days(kpi):
            value = t.per_period.get(calendar.start_of(t.deadline, t.grain), t.value)
            band = (t.band.min, t.band.max) if t.band else (None, None)
            return cls(start, t.deadline, value, band, False, CURRENT_VALUE, None)

        def over_span(value, per_period=None) -> float | None:
            if value is None and not per_period:
                return None
            return _phase(value, per_period or {}, shape, start, t.deadline, calendar, True)

        band = (over_span(t.band.min), over_span(t.band.max)) if t.band else (None, None)
        target = over_span(t.value, t.per_period)
        method = RUN_RATE
        if t.phasing == SEASONAL:
            # One label for the whole goal: part of its span spread by days (no last year's
            # shape) makes the projection partly a run rate, and the label says so.
            fell_back = shape.fell_back(start, t.deadline)
            method = SEASONAL_FALLBACK_RUN_RATE if fell_back else SEASONAL_SHAPE
        # The plan the pace is measured against: the target itself or, for a band without
        # one, its upper edge (phased alike); the days when neither adds up to anything.
        planned = None
        for value, per_period in ((t.value, t.per_period), (t.band.max if t.band else None, {})):
            if value is None and not per_period:
                continue
            running, total = [], 0.0
            for part in _daily_parts(value, per_period, shape, start, t.deadline, calendar):
                if part is None:
                    running = None
                    break
                total += part
                running.append(total)
            if running and running[-1] != 0:
                planned = running
                break
        return cls(start, t.deadline, target, band, True, method, planned)

    def columns(self, day: dt.date) -> dict:
        """The goal columns of a row whose last day is ``day`` (none outside the span)."""
        if not self.start <= day <= self.deadline:
            return {}
        share = None
        if self.additive:
            elapsed = (day - self.start).days + 1
            if self.planned is not None:
                # Nothing planned yet makes the share 0: no pace to project (NULL).
                share = self.planned[elapsed - 1] / self.planned[-1]
            else:
                share = elapsed / ((self.deadline - self.start).days + 1)
        return {
            "goal_start": self.start,
            "goal_deadline": self.deadline,
            "goal_target": self.target,
            "goal_band_min": self.band[0],
            "goal_band_max": self.band[1],
            "goal_elapsed_share": share,
            "goal_projection": self.method,
        }
