"""Which way a KPI's gap to its target points, and how a growth KPI is judged.

``variance_favourable`` is the gap to the target signed so that positive is better:
actual - target when higher is better, target - actual when lower is better; for a band,
0 inside it and minus the distance to the nearer edge outside (every miss is worse).

A period-over-period KPI (a growth rate) is judged by the levels its growth reaches:
growing by ``g`` takes the base KPI from 1 to 1 + g, the target from 1 to 1 + target. Its
attainment column is the gap in growth points (``variance_favourable``: 0.03 = 3 points
better than the target), never a ratio of two small rates (+33% against +1% is not
3,300%); its status applies the KPI's thresholds to (1 + actual) / (1 + target), the
attainment of the level the base KPI reaches against the level the target would reach.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from kpi.language.models import Direction, Kpi, KpiType


def variance_favourable_expr(
    direction: Direction, actual, target, band_min, band_max
) -> ColumnElement:
    """actual - target, signed so that positive is better (see the module)."""
    if direction == Direction.higher_is_better:
        return actual - target
    if direction == Direction.lower_is_better:
        return target - actual
    return sa.case(
        (sa.or_(band_min.is_(None), band_max.is_(None), actual.is_(None)), sa.null()),
        (actual < band_min, actual - band_min),
        (actual > band_max, band_max - actual),
        else_=sa.literal(0.0),
    )


def is_growth(kpi: Kpi) -> bool:
    """A rate of change, judged by the levels it reaches rather than as a ratio of rates."""
    return kpi.type == KpiType.period_over_period


def as_levels(kpi: Kpi, *values):
    """The values a status is judged on: for a growth KPI, the level each growth rate
    reaches from 1 (1 + g; NULL stays NULL), else the values themselves. Works on SQL
    expressions and on Python numbers (None stays None)."""
    if not is_growth(kpi):
        return values
    return tuple(None if x is None else 1 + x for x in values)
