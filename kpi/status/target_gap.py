"""How far a KPI is from its target, as the report and the alerts print it.

Attainment is a ratio for a level (actual over target, direction-aware: 100% is on target)
and a difference in percentage points for a rate of change (a period-over-period KPI:
growing 33% against a 1% target is 32 points better than target, not 3,300% of it). Which
way the gap points comes from ``variance_favourable`` in ``kpi.kpi_comparisons`` (positive
= better); a table written before that column existed has it NULL, and the gap is then
worked out here from actual and target with the KPI's direction, by the same rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from kpi.language.models import Direction, Unit

DASH = "\u2013"
# A ratio of 10 or more (1000%) says only "far off": a target that small is a typo or a
# placeholder, and four digits would hide the rest of the table.
MAX_ATTAINMENT = 9.995


def _num(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def favourable_gap(
    direction: Direction | str,
    actual,
    target,
    band: tuple[float, float] | None = None,
    stored=None,
) -> float | None:
    """The gap to the target, positive = better: ``stored`` (variance_favourable) when the
    table has it, else actual - target (higher is better), target - actual (lower is better);
    for a band 0 inside it and minus the distance to the nearer edge outside."""
    stored = _num(stored)
    if stored is not None:
        return stored
    actual, target = _num(actual), _num(target)
    if actual is None:
        return None
    direction = Direction(direction)
    if direction == Direction.within_band:
        if band is None or _num(band[0]) is None or _num(band[1]) is None:
            return None
        lo, hi = float(band[0]), float(band[1])
        return actual - lo if actual < lo else (hi - actual if actual > hi else 0.0)
    if target is None:
        return None
    return actual - target if direction == Direction.higher_is_better else target - actual


def points(value: float, digits: int = 1) -> str:
    """A difference of two percentages: ``+3.2 pp``."""
    return f"{value * 100:+.{digits}f} pp"


def attainment_text(growth: bool, attainment, gap) -> str:
    """``95.0%`` for a level, ``+32.4 pp`` for a rate of change, never four digits."""
    if growth:
        gap = _num(gap)
        return DASH if gap is None else points(gap)
    attainment = _num(attainment)
    if attainment is None:
        return DASH
    if abs(attainment) > MAX_ATTAINMENT:
        return ">999%" if attainment > 0 else "<-999%"
    return f"{attainment * 100:.1f}%"


def gap_verdict(gap) -> str | None:
    """better, worse or steady (on target), from the favourable gap."""
    gap = _num(gap)
    if gap is None:
        return None
    if math.isclose(gap, 0.0, abs_tol=1e-12):
        return "steady"
    return "better" if gap > 0 else "worse"


def gap_text(
    gap,
    unit: Unit | str,
    fmt: Callable[[float], str],
    growth: bool,
    direction: Direction | str,
) -> str | None:
    """``2.91 EUR worse``, ``0.14 pp better``, ``on target``: the gap to the target."""
    verdict = gap_verdict(gap)
    if verdict is None:
        return None
    within = Direction(direction) == Direction.within_band
    if verdict == "steady":
        return "within the band" if within else "on target"
    size = abs(float(gap))
    if growth or Unit(unit) == Unit.percent:
        # A difference of two percentages is in points, not a percentage of either.
        amount = f"{size * 100:.{1 if growth else 2}f} pp"
    else:
        amount = fmt(size)  # the caller's format of a value of the KPI
    if within:
        return f"{amount} outside the band"
    return f"{amount} {verdict}"
