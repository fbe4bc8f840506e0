"""Compare each KPI value with its target and the previous period, and give it a status.

Targets are phased per period in Python (they are few). The comparison itself is a SQL
query over ``kpi_values``, so it runs in the warehouse beside the values it reads.

Attainment is direction-aware and 1.0 means "on target":
  higher_is_better: actual / target;  lower_is_better: target / actual;
  within_band: 1.0 inside the band, else how close the actual is to the nearer edge.
A growth KPI (period over period) has its gap in growth points instead, and its status
judges the levels the growths reach (kpi.status.variance). ``variance_favourable`` is the gap to
the target signed so that positive is better. History before the data is NULL, and a
to-date KPI compares with the same span a period or a year earlier (kpi.compute.history).
Status: insufficient_data (no value, or fewer samples than the KPI's minimum), no_target,
then on_track / at_risk / off_track by the KPI's thresholds on attainment.
An open period is held against the target for the days elapsed, not the whole period.

Phasing spreads an additive target over the days of its target period: evenly (``linear``),
as given (``per_period``), or (``seasonal``) in proportion to the same KPI's daily values on
the same weekdays 52 weeks (364 days) earlier: the days a day's or a week's ``last_year``
compares with, so a target's weekly pattern follows last year's weekdays. A target period
whose last year is not fully in ``kpi_values`` (or adds up to nothing) is spread evenly,
and every row it touches says ``seasonal_fallback_linear``: the fallback is never silent.

Goal pace: a target with a ``deadline`` is a goal running from the start of the (fiscal)
year that holds the deadline up to the deadline. Every total row whose last day falls in
that span projects the KPI to the deadline as of that day: for an additive KPI, what it
accumulated since the goal's start divided by the share of the goal planned by that day
(the target phased from the goal's start through that day, over the whole goal), so a KPI
exactly on plan projects exactly to its goal; a level KPI (a rate) keeps its current value.

History marker: the previous period and the same period last year are read from the
``kpi_values`` rows of those periods when the comparison covers them whole, so the version
of the history compared with is the one those rows carry. ``history_recomputed`` says the
compared history was restated: computed under the current definition, which appeared in
``kpi_changes`` only after the compared days had ended.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from kpi.compute.compiler import CURRENT, LAST_YEAR, PREVIOUS, KpiCompiler, local_date
from kpi.compute.history import HistoryLookup
from kpi.compute.periods import Calendar, Period, as_date
from kpi.language.catalog import Catalog
from kpi.language.expressions import safe_divide
from kpi.language.facts import scales_with_days, shape_kpi
from kpi.language.models import Direction, Grain, Kpi, KpiType, Target
from kpi.status.unphased import counts_without_adding, unphased
from kpi.status.variance import as_levels, is_growth, variance_favourable_expr
from kpi.warehouse.connection import Warehouse

ON_TRACK, AT_RISK, OFF_TRACK = "on_track", "at_risk", "off_track"
INSUFFICIENT_DATA, NO_TARGET = "insufficient_data", "no_target"
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


def attainment_expr(direction: Direction, actual, target, band_min, band_max) -> ColumnElement:
    """Direction-aware attainment as SQL (1.0 = on target)."""
    if direction == Direction.higher_is_better:
        return safe_divide(actual, target)
    if direction == Direction.lower_is_better:
        return safe_divide(target, actual)
    return sa.case(
        (sa.or_(band_min.is_(None), band_max.is_(None), actual.is_(None)), sa.null()),
        (actual < band_min, safe_divide(actual, band_min)),
        (actual > band_max, safe_divide(band_max, actual)),
        else_=sa.literal(1.0),
    )


def status_expr(kpi: Kpi, actual, attainment, sample_size, has_target) -> ColumnElement:
    """The status of a value, by the KPI's minimum sample and thresholds."""
    th = kpi.thresholds
    whens = [(actual.is_(None), sa.literal(INSUFFICIENT_DATA))]
    if kpi.min_sample_size:
        whens.append(
            (sa.func.coalesce(sample_size, 0) < kpi.min_sample_size, sa.literal(INSUFFICIENT_DATA))
        )
    whens.append((sa.not_(has_target), sa.literal(NO_TARGET)))
    if kpi.direction == Direction.lower_is_better:
        # Zero cost per acquisition beats any target: attainment is infinite, not unknown.
        whens.append((actual == 0, sa.literal(ON_TRACK)))
    whens += [
        (attainment.is_(None), sa.literal(INSUFFICIENT_DATA)),
        (attainment >= th.at_risk_below, sa.literal(ON_TRACK)),
        (attainment >= th.off_track_below, sa.literal(AT_RISK)),
    ]
    return sa.case(*whens, else_=sa.literal(OFF_TRACK))


def status_of(
    kpi: Kpi,
    actual: float | None,
    target: float | None,
    sample_size: int | None = None,
    band: tuple[float, float] | None = None,
) -> str:
    """The same status rule in Python, for single values and tests of the SQL."""
    if actual is None or (kpi.min_sample_size and (sample_size or 0) < kpi.min_sample_size):
        return INSUFFICIENT_DATA
    # A growth KPI is judged by the levels its growth reaches (kpi.status.variance).
    actual, target = as_levels(kpi, actual, target)
    band = None if band is None else tuple(as_levels(kpi, *band))
    if kpi.direction == Direction.within_band:
        if band is None:
            return NO_TARGET
        lo, hi = band
        att = 1.0 if lo <= actual <= hi else (actual / lo if actual < lo else hi / actual)
    else:
        if target is None:
            return NO_TARGET
        higher = kpi.direction == Direction.higher_is_better
        num, den = (actual, target) if higher else (target, actual)
        if den == 0:
            return ON_TRACK if not higher and actual == 0 else INSUFFICIENT_DATA
        att = num / den
    if att >= kpi.thresholds.at_risk_below:
        return ON_TRACK
    if att >= kpi.thresholds.off_track_below:
        return AT_RISK
    return OFF_TRACK


def benchmark_position(
    actual: ColumnElement, value: ColumnElement, low: ColumnElement, high: ColumnElement
) -> ColumnElement:
    """Where the actual sits against the benchmark: below, within (a band), at, above."""
    return sa.case(
        (actual.is_(None), sa.null()),
        (sa.and_(low.is_not(None), actual < low), sa.literal("below")),
        (sa.and_(high.is_not(None), actual > high), sa.literal("above")),
        (low.is_not(None), sa.literal("within")),
        (value.is_(None), sa.null()),
        (actual < value, sa.literal("below")),
        (actual > value, sa.literal("above")),
        else_=sa.literal("at"),
    )


def comparison_select(
    compiler: KpiCompiler,
    kpi: Kpi,
    grain: str,
    dims: tuple[str, ...],
    values: sa.Table,
    targets: sa.Table,
    computed_at: dt.datetime,
    changes: sa.Table | None = None,
) -> sa.Select:
    """One KPI/grain/slice of ``kpi_comparisons``: the value against its target, benchmark,
    previous period and same period last year, with status, pace, goal pace and the
    definition version of the history compared with (``changes`` is ``kpi_changes``)."""
    catalog = compiler.catalog
    v = values.alias("v")
    slices = compiler.slice_values(kpi, dims)
    t = targets.alias("t")
    p = compiler.periods.alias("p")

    slice_filter = [
        v.c[d].is_not(None) if d in dims else v.c[d].is_(None) for d in catalog.dimensions
    ]

    # Only the total row carries a target; slices are compared with earlier periods.
    target_on = [
        t.c.kpi_id == v.c.kpi_id,
        t.c.grain == v.c.grain,
        t.c.period_start == v.c.period_start,
        sa.literal(not dims),
    ]
    period_on = [p.c.grain == v.c.grain, p.c.period_start == v.c.period_start]
    joins: list[tuple[sa.FromClause, ColumnElement]] = []

    actual = v.c.value
    target = sa.case((v.c.is_complete_period, t.c.target), else_=t.c.target_to_date)
    # Previous period and last year: NULL before the data, the same span for to-date KPIs,
    # stored growths for growth KPIs (kpi.compute.history).
    lookup = HistoryLookup(compiler, kpi, grain, dims, values, v, p, slices, joins)
    prev = lookup.compared(PREVIOUS, "prev")
    ly = lookup.compared(LAST_YEAR, "ly")
    prev_value, prev_version = prev.value, prev.version
    ly_value, ly_version = ly.value, ly.version
    history = _history_marker(
        catalog, kpi, v, changes, joins, (prev_version, prev.end), (ly_version, ly.end)
    )
    band = (t.c.band_min, t.c.band_max)
    # A growth KPI's attainment is its gap in growth points; its status (and pace) judges
    # the levels its growth reaches (kpi.status.variance), and not a growth over a period that
    # starts before the data.
    judged = lookup.judged(actual)
    favourable = variance_favourable_expr(kpi.direction, judged, target, *band)
    attainment = (
        favourable if is_growth(kpi) else attainment_expr(kpi.direction, actual, target, *band)
    )
    status_actual, status_target, *status_band = as_levels(kpi, judged, target, *band)
    status_attainment = attainment_expr(kpi.direction, status_actual, status_target, *status_band)
    has_target = (
        sa.and_(t.c.band_min.is_not(None), t.c.band_max.is_not(None))
        if kpi.direction == Direction.within_band
        else target.is_not(None)
    )
    # Pace: an additive KPI is projected to the end of the open period at its daily rate
    # so far (with seasonal phasing: along last year's shape of the period, which is what
    # target / target to date is); a rate is its own projection. A closed period is its own
    # projection.
    no_value = sa.cast(sa.null(), sa.Double)
    if scales_with_days(kpi):
        shape_ratio = sa.case(
            (
                t.c.phasing == SEASONAL,
                sa.func.coalesce(
                    safe_divide(t.c.target, t.c.target_to_date),
                    safe_divide(t.c.band_max_full, t.c.band_max),
                ),
            ),
            else_=no_value,
        )
        projected = sa.case(
            (v.c.is_complete_period, actual),
            (shape_ratio.is_not(None), actual * shape_ratio),
            else_=actual * sa.cast(p.c.days_in_period, sa.Double) / p.c.elapsed_days,
        )
    else:
        projected = judged
    full_band = (t.c.band_min, t.c.band_max)
    if kpi.direction == Direction.within_band:
        full_band = (t.c.band_min_full, t.c.band_max_full)
    projected_attainment = attainment_expr(
        kpi.direction, *as_levels(kpi, projected, t.c.target, *full_band)
    )
    status = status_expr(kpi, status_actual, status_attainment, v.c.sample_size, has_target)
    on_pace = sa.case(
        (projected_attainment.is_(None), sa.null()),
        else_=projected_attainment >= kpi.thresholds.at_risk_below,
    )
    goal_actual, goal_projected = _goal_projection(compiler, kpi, grain, dims, v, t, joins)
    goal_will_reach = _reaches(
        kpi, goal_projected, t.c.goal_target, t.c.goal_band_min, t.c.goal_band_max
    )

    joined = v.join(p, sa.and_(*period_on))
    for other, on in joins:
        joined = joined.outerjoin(other, on)
    return (
        sa.select(
            v.c.kpi_id,
            sa.literal(kpi.name).label("kpi_name"),
            sa.literal(kpi.area).label("area"),
            sa.literal(str(kpi.direction)).label("direction"),
            v.c.grain,
            v.c.period_start,
            v.c.period_end,
            v.c.is_complete_period,
            *[v.c[d] for d in catalog.dimensions],
            actual.label("actual"),
            target.label("target"),
            t.c.target.label("target_full_period"),
            attainment.label("attainment"),
            (actual - target).label("variance"),
            favourable.label("variance_favourable"),
            prev_value.label("previous"),
            (actual - prev_value).label("change_abs"),
            safe_divide(actual - prev_value, prev_value).label("change_rel"),
            ly_value.label("last_year"),
            (actual - ly_value).label("change_ly_abs"),
            safe_divide(actual - ly_value, ly_value).label("change_ly_rel"),
            t.c.benchmark_value,
            t.c.benchmark_min,
            t.c.benchmark_max,
            t.c.benchmark_source,
            benchmark_position(
                actual, t.c.benchmark_value, t.c.benchmark_min, t.c.benchmark_max
            ).label("benchmark_position"),
            projected.label("projected"),
            on_pace.label("on_pace"),
            v.c.sample_size,
            status.label("status"),
            v.c.definition_version,
            sa.literal(computed_at, sa.TIMESTAMP(timezone=True)).label("computed_at"),
            t.c.phasing,
            t.c.goal_start,
            t.c.goal_deadline,
            t.c.goal_target.label("goal_target_value"),
            goal_actual.label("goal_actual_to_date"),
            goal_projected.label("goal_projected_value"),
            t.c.goal_projection,
            goal_will_reach.label("goal_will_reach"),
            prev_version.label("previous_definition_version"),
            ly_version.label("last_year_definition_version"),
            history.changed_at.label("definition_changed_at"),
            history.recomputed.label("history_recomputed"),
        )
        .select_from(joined.outerjoin(t, sa.and_(*target_on)))
        .where(v.c.kpi_id == kpi.id, v.c.grain == grain, *slice_filter)
    )


def _reaches(kpi: Kpi, projected, target, band_min, band_max) -> ColumnElement:
    """Will ``projected`` meet the goal: the same rule as ``on_pace`` (attainment at least the
    KPI's at_risk_below, 1.0 by default), so lower_is_better means projected <= target.
    A growth KPI is judged by the levels its growth reaches (kpi.status.variance)."""
    projected, target, band_min, band_max = as_levels(kpi, projected, target, band_min, band_max)
    attainment = attainment_expr(kpi.direction, projected, target, band_min, band_max)
    whens = [(projected.is_(None), sa.null())]
    if kpi.direction == Direction.lower_is_better:
        # Zero beats any target, as in status_expr: attainment is infinite, not unknown.
        whens.append((sa.and_(projected == 0, target.is_not(None)), sa.true()))
    whens.append((attainment.is_(None), sa.null()))
    return sa.case(*whens, else_=attainment >= kpi.thresholds.at_risk_below)


def _goal_projection(
    compiler: KpiCompiler,
    kpi: Kpi,
    grain: str,
    dims: tuple[str, ...],
    v: sa.FromClause,
    t: sa.FromClause,
    joins: list,
) -> tuple[ColumnElement, ColumnElement]:
    """(actual since the goal's start, projected value at the deadline) of each row.

    The goal runs from the start of the (fiscal) year that holds the deadline, so what an
    additive KPI accumulated by a row's last day is its year-to-date value there; the
    projection divides it by the share of the goal planned by that day
    (``goal_elapsed_share`` in kpi_targets: the target phased from the goal's start, over
    the whole goal), so a KPI exactly on plan projects exactly to its goal. Nothing planned
    yet (a share of 0) leaves no pace to project: NULL. A level KPI's projection is its
    current value. Rows outside the goal's span have no ``goal_*`` values in kpi_targets,
    hence none here.
    """
    t_ = kpi.target
    none = sa.cast(sa.null(), sa.Double)
    if t_ is None or t_.deadline is None or dims or kpi.type == KpiType.cumulative:
        return none, none
    if not scales_with_days(kpi):
        return none, sa.case((t.c.goal_deadline.is_not(None), v.c.value), else_=none)
    window = CURRENT.running("year_to_date")
    evaluated = compiler.evaluate(kpi, Grain(grain), (), window, None).query
    # Only the periods that can end within the goal (window_end from goal_start through the
    # deadline: they start at most at the deadline and end at least at goal_start), not all
    # history: the warehouse pushes this filter on the grouping key into the evaluation.
    calendar = Calendar(compiler.catalog.reporting)
    goal_start = calendar.start_of(t_.deadline, Grain.year)
    ytd = (
        sa.select(evaluated)
        .where(
            evaluated.c.period_start >= calendar.start_of(goal_start, grain),
            evaluated.c.period_start <= t_.deadline,
        )
        .subquery("goal_ytd")
    )
    joins.append((ytd, ytd.c.period_start == v.c.period_start))
    accumulated = sa.case(
        (t.c.goal_elapsed_share.is_not(None), sa.cast(ytd.c.value, sa.Double)), else_=none
    )
    return accumulated, safe_divide(accumulated, t.c.goal_elapsed_share)


@dataclass(frozen=True)
class _HistoryMarker:
    changed_at: ColumnElement
    recomputed: ColumnElement


def _history_marker(
    catalog: Catalog,
    kpi: Kpi,
    v: sa.FromClause,
    changes: sa.Table | None,
    joins: list,
    *compared: tuple[ColumnElement, ColumnElement],
) -> _HistoryMarker:
    """When the row's definition took over from an earlier one, and whether the history it
    is compared with was restated under it.

    ``definition_changed_at`` comes from ``kpi_changes``: when the row's version first
    appeared, if the KPI had another version before (after a return to an older version:
    the last run of the one it replaced, the closest the table can tell). NULL for a KPI
    that never changed. The compared history (``compared``: its version and the last day of
    its window) was recomputed when it carries the row's version although
    its last day ended before that change, in the reporting time zone. History kept with
    an older version is not recomputed, and says so by its own version.
    """
    never = sa.cast(sa.null(), sa.TIMESTAMP(timezone=True))
    if changes is None:
        return _HistoryMarker(never, sa.cast(sa.null(), sa.Boolean))
    current, other = changes.alias("chg_current"), changes.alias("chg_other")
    other_last_seen = sa.func.max(other.c.last_seen_at)
    first_seen = sa.func.min(current.c.first_seen_at)
    took_over = (
        sa.select(
            current.c.kpi_id,
            current.c.definition_version,
            sa.case(
                (other_last_seen > first_seen, other_last_seen),
                else_=first_seen,
            ).label("changed_at"),
        )
        .select_from(
            current.join(
                other,
                sa.and_(
                    other.c.kpi_id == current.c.kpi_id,
                    other.c.definition_version != current.c.definition_version,
                ),
            )
        )
        .where(current.c.kpi_id == kpi.id)
        # One row per version even when kpi_changes holds it twice (tables created before
        # its primary key, written by two runs at once): the earliest first sighting.
        .group_by(current.c.kpi_id, current.c.definition_version)
        .subquery("definition_change")
    )
    joins.append(
        (
            took_over,
            sa.and_(
                took_over.c.kpi_id == v.c.kpi_id,
                took_over.c.definition_version == v.c.definition_version,
            ),
        )
    )
    changed_on = local_date(
        took_over.c.changed_at, sa.literal(catalog.reporting.time_zone, sa.String)
    )
    restated = [
        sa.and_(version == v.c.definition_version, end < changed_on) for version, end in compared
    ]
    nothing_compared = sa.and_(*[version.is_(None) for version, _ in compared])
    recomputed = sa.case(
        (nothing_compared, sa.cast(sa.null(), sa.Boolean)),
        (sa.or_(*restated), sa.true()),
        else_=sa.false(),
    )
    return _HistoryMarker(took_over.c.changed_at, recomputed)
