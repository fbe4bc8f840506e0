"""Targets of counts that do not add up over days: held at their own grain, never phased.

2000 customers a month are neither 2000 / 30 a day nor 2000 on any day or week, and a
month's first 15 days hold no known part of them. A distinct count (customers, donors) or
a sum of a non-additive column (users by month, read at its source's grain) therefore has
its target (and benchmark) only at the target's own grain, and only for a complete period;
every other row of ``kpi_targets`` has none, so its comparison says ``no_target`` instead
of ``off_track`` against the whole month. The model has no way to declare a target for a
coarser grain (a quarter of distinct customers is not three months of them either), so
coarser grains get none too. ``kpi.status.targets`` phases every other target.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, TypeVar

from kpi.compute.compiler import unknown_when_missing
from kpi.language.catalog import Catalog
from kpi.language.models import Agg, Grain, Kpi, KpiType

if TYPE_CHECKING:
    from kpi.compute.periods import Period

Row = TypeVar("Row")  # a kpi.status.targets.TargetRow

_TARGET_COLUMNS = (
    "target",
    "target_to_date",
    "band_min",
    "band_max",
    "band_min_full",
    "band_max_full",
    "phasing",
    "goal_start",
    "goal_deadline",
    "goal_target",
    "goal_band_min",
    "goal_band_max",
    "goal_elapsed_share",
    "goal_projection",
)
_TO_DATE_COLUMNS = ("target_to_date", "band_min", "band_max")
_BENCHMARK_COLUMNS = ("benchmark_value", "benchmark_min", "benchmark_max", "benchmark_source")


def counts_without_adding(catalog: Catalog, kpi: Kpi) -> bool:
    """True when ``kpi`` (or a running total's base) is a count that does not add up over
    days: a distinct count, or a sum of a non-additive column."""
    base = kpi
    if kpi.type == KpiType.cumulative and kpi.cumulative is not None:
        base = catalog.kpis.get(kpi.cumulative.of, kpi)
    if base.type != KpiType.simple or base.measure is None:
        return False
    if base.measure.agg == Agg.count_distinct:
        return True
    src = catalog.sources.get(base.measure.source)
    return src is not None and unknown_when_missing(base.measure, src)


def unphased(row: Row, p: Period, target_grain: Grain, benchmark_grain: Grain | None) -> Row:
    """``row`` (a target row of period ``p``) without what such a count cannot be held to:
    the target off its own grain, the target to date of an incomplete period (open, or
    started before the data; the whole period's target stays, for the pace), and the
    benchmark likewise."""
    cleared: dict[str, None] = {}
    if p.grain != target_grain:
        cleared.update(dict.fromkeys(_TARGET_COLUMNS))
    elif not p.is_complete_period:
        cleared.update(dict.fromkeys(_TO_DATE_COLUMNS))
    if p.grain != benchmark_grain or not p.is_complete_period:
        cleared.update(dict.fromkeys(_BENCHMARK_COLUMNS))
    return dataclasses.replace(row, **cleared)
