"""Sanity checks on the computed KPI values (``kpi.kpi_values``), in warehouse SQL.

* percent KPIs lie within 0..1 (they are stored as fractions), except rates of change;
* a rate of change (a period-over-period KPI) is any value from -1 up: -20% is a fall and
  +150% more than doubling, both valid, but a quantity that is never negative cannot fall by
  more than 100%. Below -1 its base was negative (the growth of a loss reads backwards) or
  the computation is broken;
* a value is never NULL where the denominator is positive;
* for additive KPIs (simple sums and counts) the slices of each dimension, and of each
  combination of dimensions a KPI is sliced by, add up to the total row (the row whose
  dimensions are all NULL) of the same KPI, grain and period.

Each returns the offending rows; the asset turns them into a non-blocking WARN check: a bad
output is worth a look, but the tables are already written and the inputs passed their gate.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from kpi.language.catalog import Catalog
from kpi.language.models import Agg, KpiType, Unit
from kpi.warehouse.connection import Warehouse

__all__ = ["kpi_output_problems"]

# Sums of floats computed in different orders differ in the last bits.
TOLERANCE = 1e-6
SAMPLE = 5


def _additive(cat: Catalog) -> list[str]:
    return sorted(
        k.id
        for k in cat.kpis.values()
        if k.type == KpiType.simple
        and k.measure is not None
        and k.measure.agg in (Agg.sum, Agg.count)
    )


def kpi_output_problems(wh: Warehouse, values: sa.Table, cat: Catalog) -> dict[str, pd.DataFrame]:
    """Check name -> offending rows (empty frames when all is well)."""
    v = values
    dims = [d for d in cat.dimensions if d in v.c]
    growth = sorted(k.id for k in cat.kpis.values() if k.type == KpiType.period_over_period)
    percent = sorted(
        k.id for k in cat.kpis.values() if k.unit == Unit.percent and k.id not in growth
    )
    out: dict[str, pd.DataFrame] = {}
    out["percent_within_0_1"] = wh.read(
        sa.select(v.c.kpi_id, v.c.grain, v.c.period_start, v.c.value)
        .where(v.c.kpi_id.in_(percent), sa.or_(v.c.value < 0, v.c.value > 1))
        .limit(SAMPLE)
    )
    out["growth_at_least_minus_100_percent"] = wh.read(
        sa.select(v.c.kpi_id, v.c.grain, v.c.period_start, v.c.value)
        .where(v.c.kpi_id.in_(growth), v.c.value < -1 - TOLERANCE)
        .limit(SAMPLE)
    )
    out["no_null_with_positive_denominator"] = wh.read(
        sa.select(v.c.kpi_id, v.c.grain, v.c.period_start, v.c.denominator)
        .where(v.c.value.is_(None), v.c.denominator > 0)
        .limit(SAMPLE)
    )
    totals = v.alias("totals")
    mismatches = []
    additive = _additive(cat)
    # Every kind of slice a KPI declares (one dimension, or several together) adds up to
    # the total; a sparse slice's missing rows are periods without data, so 0 of the sum.
    kinds = {(d,) for d in dims} | {
        s for k in cat.kpis.values() for s in k.slice_dimensions if set(s) <= set(dims)
    }
    for kind in sorted(kinds):
        dim = " x ".join(kind)
        sliced = [v.c[d].is_not(None) if d in kind else v.c[d].is_(None) for d in dims]
        slices = (
            sa.select(
                v.c.kpi_id,
                v.c.grain,
                v.c.period_start,
                sa.func.sum(v.c.value).label("slices"),
            )
            .where(v.c.kpi_id.in_(additive), *sliced)
            .group_by(v.c.kpi_id, v.c.grain, v.c.period_start)
            .subquery()
        )
        query = (
            sa.select(
                slices.c.kpi_id,
                slices.c.grain,
                slices.c.period_start,
                sa.literal(dim).label("dimension"),
                slices.c.slices,
                totals.c.value.label("total"),
            )
            .join(
                totals,
                sa.and_(
                    totals.c.kpi_id == slices.c.kpi_id,
                    totals.c.grain == slices.c.grain,
                    totals.c.period_start == slices.c.period_start,
                    *[totals.c[d].is_(None) for d in dims],
                ),
            )
            .where(
                sa.func.abs(slices.c.slices - sa.func.coalesce(totals.c.value, 0))
                > TOLERANCE * (1 + sa.func.abs(sa.func.coalesce(totals.c.value, 0)))
            )
            .limit(SAMPLE)
        )
        mismatches.append(wh.read(query))
    out["dimension_totals_match"] = (
        pd.concat(mismatches, ignore_index=True) if mismatches else (pd.DataFrame())
    )
    return out
