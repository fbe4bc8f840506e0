"""Compare each KPI value with its target and the previous period, and give it a status.

Targets are phased per period in Python (they are few). The comparison itself is a SQL
query over ``kpi_values``, so it runs in the warehouse beside the values it reads.

Attainment is direction-aware and 1.0 means "on target":
  higher_is_better: actual / target;  lower_is_better: target / actual;
  within_band: 1.0 inside the band, else how close the actual is to the nearer edge.
Status: insufficient_data (no value, or fewer samples than the KPI's minimum), no_target,
then on_track / at_risk / off_track by the KPI's thresholds on attainment.
An open period is held against the target for the days elapsed, not the whole period.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from kpi.catalog import Catalog
from kpi.compiler import LAST_YEAR, PREVIOUS, KpiCompiler
from kpi.expressions import safe_divide
from kpi.models import Agg, Direction, Grain, Kpi, KpiType, Target
from kpi.periods import Calendar, Period

ON_TRACK, AT_RISK, OFF_TRACK = "on_track", "at_risk", "off_track"
INSUFFICIENT_DATA, NO_TARGET = "insufficient_data", "no_target"


def scales_with_days(kpi: Kpi) -> bool:
    """True when a KPI adds up over days, so its target is spread over the days."""
    return kpi.type == KpiType.simple and kpi.measure.agg in (Agg.sum, Agg.count)


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


def phase_targets(catalog: Catalog, periods: list[Period]) -> list[TargetRow]:
    """The target of every KPI for every period of its grains.

    ``linear`` spreads an additive target evenly over the days of its target period (so a
    week that spans two months gets its days' share of each); level KPIs such as rates keep
    the same target at every grain. ``per_period`` gives the value of each target period.
    """
    calendar = Calendar(catalog.reporting)
    rows: list[TargetRow] = []
    for kpi in catalog.kpis.values():
        if kpi.target is not None or kpi.benchmark is not None:
            rows.extend(_kpi_targets(catalog, kpi, periods, calendar))
    return rows


def _kpi_targets(
    catalog: Catalog, kpi: Kpi, periods: list[Period], calendar: Calendar
) -> list[TargetRow]:
    t = kpi.target or Target()
    b = kpi.benchmark
    cumulative = kpi.cumulative if kpi.type == KpiType.cumulative else None
    # A running total's target is its base's daily target summed over the same window.
    base = catalog.kpis[cumulative.of] if cumulative else kpi
    additive = scales_with_days(base)

    def first_day(p: Period, end: dt.date) -> dt.date:
        if cumulative is None or not additive:
            return p.period_start
        if cumulative.to_date:
            return calendar.start_of(end, cumulative.to_date)
        return end - dt.timedelta(days=cumulative.window_days - 1)

    def phase(value, p: Period, end: dt.date, per_period=None, grain=None) -> float | None:
        grain = grain or t.grain
        per_period = per_period or {}
        return _phase(value, per_period, grain, first_day(p, end), end, calendar, additive)

    def benchmark(value, p: Period) -> float | None:
        if b is None or value is None:
            return None
        if (b.valid_from and p.period_end < b.valid_from) or (
            b.valid_to and p.period_start > b.valid_to
        ):
            return None
        return phase(value, p, p.window_end, grain=b.grain)

    rows = []
    for p in periods:
        if p.grain not in kpi.grains:
            continue
        band = t.band
        rows.append(
            TargetRow(
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
            )
        )
    return rows


def _phase(
    value: float | None,
    per_period: dict[dt.date, float],
    target_grain: Grain,
    first: dt.date,
    until: dt.date,
    calendar: Calendar,
    additive: bool,
) -> float | None:
    """The target over the days ``first..until``: summed per day when additive."""

    def value_for(day: dt.date) -> float | None:
        start = calendar.start_of(day, target_grain)
        return per_period.get(start, value)

    if not additive:
        return value_for(first)
    total, day = 0.0, first
    while day <= until:
        v = value_for(day)
        if v is None:
            return None
        start = calendar.start_of(day, target_grain)
        days = (calendar.end_of(start, target_grain) - start).days + 1
        total += v / days
        day += dt.timedelta(days=1)
    return total


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
) -> sa.Select:
    """One KPI/grain/slice of ``kpi_comparisons``: the value against its target, benchmark,
    previous period and same period last year, with status and pace."""
    catalog = compiler.catalog
    v = values.alias("v")
    slices = compiler.slice_values(kpi, dims)
    previous = compiler.evaluate(kpi, Grain(grain), dims, PREVIOUS, slices).query.alias("prev")
    last_year = compiler.evaluate(kpi, Grain(grain), dims, LAST_YEAR, slices).query.alias("ly")
    t = targets.alias("t")
    p = compiler.periods.alias("p")

    slice_filter = [
        v.c[d].is_not(None) if d in dims else v.c[d].is_(None) for d in catalog.dimensions
    ]

    def same_slice(other) -> list:
        return [other.c.period_start == v.c.period_start, *[other.c[d] == v.c[d] for d in dims]]

    # Only the total row carries a target; slices are compared with earlier periods.
    target_on = [
        t.c.kpi_id == v.c.kpi_id,
        t.c.grain == v.c.grain,
        t.c.period_start == v.c.period_start,
        sa.literal(not dims),
    ]
    period_on = [p.c.grain == v.c.grain, p.c.period_start == v.c.period_start]

    actual = v.c.value
    target = sa.case((v.c.is_complete_period, t.c.target), else_=t.c.target_to_date)
    # A growth KPI already compares with an earlier period; comparing the growth itself
    # with an earlier growth says nothing a manager can use.
    looks_back = kpi.type == KpiType.period_over_period
    prev_value = sa.cast(sa.null() if looks_back else previous.c.value, sa.Double)
    ly_value = sa.cast(sa.null() if looks_back else last_year.c.value, sa.Double)
    attainment = attainment_expr(kpi.direction, actual, target, t.c.band_min, t.c.band_max)
    has_target = (
        sa.and_(t.c.band_min.is_not(None), t.c.band_max.is_not(None))
        if kpi.direction == Direction.within_band
        else target.is_not(None)
    )
    # Pace: an additive KPI is projected to the end of the open period at its daily rate
    # so far; a rate is its own projection. A closed period is its own projection.
    if scales_with_days(kpi):
        projected = sa.case(
            (v.c.is_complete_period, actual),
            else_=actual * sa.cast(p.c.days_in_period, sa.Double) / p.c.elapsed_days,
        )
    else:
        projected = actual
    full_band = (t.c.band_min, t.c.band_max)
    projected_attainment = attainment_expr(kpi.direction, projected, t.c.target, *full_band)
    if kpi.direction == Direction.within_band:
        projected_attainment = attainment_expr(
            kpi.direction, projected, t.c.target, t.c.band_min_full, t.c.band_max_full
        )
    on_pace = sa.case(
        (projected_attainment.is_(None), sa.null()),
        else_=projected_attainment >= kpi.thresholds.at_risk_below,
    )
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
            status_expr(kpi, actual, attainment, v.c.sample_size, has_target).label("status"),
            v.c.definition_version,
            sa.literal(computed_at, sa.TIMESTAMP(timezone=True)).label("computed_at"),
        )
        .select_from(
            v.join(p, sa.and_(*period_on))
            .outerjoin(previous, sa.and_(*same_slice(previous)))
            .outerjoin(last_year, sa.and_(*same_slice(last_year)))
            .outerjoin(t, sa.and_(*target_on))
        )
        .where(v.c.kpi_id == kpi.id, v.c.grain == grain, *slice_filter)
    )
