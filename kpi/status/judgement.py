"""Judge a KPI value against its target: attainment, status and benchmark position.

Attainment is direction-aware and 1.0 means "on target":
  higher_is_better: actual / target;  lower_is_better: target / actual;
  within_band: 1.0 inside the band, else how close the actual is to the nearer edge.
Status (``kpi.language.status.Status``): insufficient_data (no value, or fewer samples than
the KPI's minimum), no_target, then on_track / at_risk / off_track by the KPI's thresholds
on attainment. ``status_expr`` is the rule in SQL, ``status_of`` the same rule in Python.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from kpi.language.expressions import safe_divide
from kpi.language.models import Direction, Kpi
from kpi.language.status import Status
from kpi.status.variance import as_levels


def _stored(status: Status) -> ColumnElement:
    """``status`` as a SQL string literal: the plain value the warehouse stores."""
    return sa.literal(status.value)


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
    whens = [(actual.is_(None), _stored(Status.insufficient_data))]
    if kpi.min_sample_size:
        whens.append(
            (
                sa.func.coalesce(sample_size, 0) < kpi.min_sample_size,
                _stored(Status.insufficient_data),
            )
        )
    whens.append((sa.not_(has_target), _stored(Status.no_target)))
    if kpi.direction == Direction.lower_is_better:
        # Zero cost per acquisition beats any target: attainment is infinite, not unknown.
        whens.append((actual == 0, _stored(Status.on_track)))
    whens += [
        (attainment.is_(None), _stored(Status.insufficient_data)),
        (attainment >= th.at_risk_below, _stored(Status.on_track)),
        (attainment >= th.off_track_below, _stored(Status.at_risk)),
    ]
    return sa.case(*whens, else_=_stored(Status.off_track))


def status_of(
    kpi: Kpi,
    actual: float | None,
    target: float | None,
    sample_size: int | None = None,
    band: tuple[float, float] | None = None,
) -> Status:
    """The same status rule in Python, for single values and tests of the SQL."""
    if actual is None or (kpi.min_sample_size and (sample_size or 0) < kpi.min_sample_size):
        return Status.insufficient_data
    # A growth KPI is judged by the levels its growth reaches (kpi.status.variance).
    actual, target = as_levels(kpi, actual, target)
    band = None if band is None else tuple(as_levels(kpi, *band))
    if kpi.direction == Direction.within_band:
        if band is None:
            return Status.no_target
        lo, hi = band
        att = 1.0 if lo <= actual <= hi else (actual / lo if actual < lo else hi / actual)
    else:
        if target is None:
            return Status.no_target
        higher = kpi.direction == Direction.higher_is_better
        num, den = (actual, target) if higher else (target, actual)
        if den == 0:
            return Status.on_track if not higher and actual == 0 else Status.insufficient_data
        att = num / den
    if att >= kpi.thresholds.at_risk_below:
        return Status.on_track
    if att >= kpi.thresholds.off_track_below:
        return Status.at_risk
    return Status.off_track


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
