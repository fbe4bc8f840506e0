"""Which KPIs are functions of their periods' sums, so period rollups can compute them.

A simple or ratio KPI over sums, counts, averages, minimums and maximums, or a derived KPI
over such KPIs, is the same number whether its days are summed one by one or first into
any partition of its period (kpi.compute.rollups). So is a growth of such a KPI over a
fixed shift (``offset: 7 days``) reported by day: its earlier window is one whole day,
another row of the same rollup. Distinct counts, ``last`` balances, running windows and
the other growths (a week or month compared over a shift or with the previous period,
whose open period is compared with part of another) need their days. The cubes
(kpi.compute.cubes) read this to decide which slices they may keep by month, the rollups
to decide which KPIs they project; both ask this module so they cannot disagree.
"""

from __future__ import annotations

from kpi.compute.source_sql import source_names
from kpi.language.catalog import Catalog
from kpi.language.models import Agg, Kpi, KpiType, Measure

ROLLUP_AGGS = frozenset({Agg.sum, Agg.count, Agg.average, Agg.min, Agg.max})
# The grains whose periods are whole calendar months: quarters and years start on the
# first day of a month (fiscal or not), weeks and days do not.
MONTHLY_GRAINS = frozenset({"month", "quarter", "year"})


def fusable(catalog: Catalog, kpi: Kpi) -> bool:
    """True when ``kpi`` is a function of its period's sums. Its dense slices cross every
    period with every value (combination) seen; a sparse slice
    (kpi.language.catalog.Catalog.is_sparse) has the rows of its periods' rollups, the
    combinations with data in the period, which is the row's window for such a KPI."""
    if kpi.type == KpiType.period_over_period:
        return daily_shifted_growth(catalog, kpi)
    return _of_period_sums(catalog, kpi, kpi.dimension_names)


def dense(catalog: Catalog, kpi: Kpi) -> bool:
    """True when no slice of ``kpi`` is sparse: every period has a row per value seen."""
    return not any(catalog.is_sparse(dims) for dims in kpi.slice_dimensions)


def daily_shifted_growth(catalog: Catalog, kpi: Kpi) -> bool:
    """True when ``kpi`` is a growth over a fixed shift, reported by day only, of a KPI
    that is a function of its period's sums: its value and the one it is compared with
    are two rows of the same day rollup."""
    if kpi.type != KpiType.period_over_period or kpi.period_over_period.shift is None:
        return False
    base = catalog.kpis[kpi.period_over_period.of]
    daily = bool(kpi.grains) and all(str(g) == "day" for g in kpi.grains)
    return daily and _of_period_sums(catalog, base, kpi.dimension_names)


def monthly(catalog: Catalog, kpi: Kpi) -> bool:
    """True when ``kpi`` is fusable and reported only in grains of whole months: its
    slices can be read from sums per month, without the days."""
    return fusable(catalog, kpi) and {str(g) for g in kpi.grains} <= MONTHLY_GRAINS


def _of_period_sums(catalog: Catalog, kpi: Kpi, dims: list[str]) -> bool:
    """``kpi`` (sliced by ``dims``) is a function of its period's sums."""
    if kpi.type in (KpiType.simple, KpiType.ratio):
        return all(_rollup_measure(catalog, m, dims) for _, m in kpi.measures)
    if kpi.type == KpiType.derived:
        refs = [catalog.kpis[r] for r in kpi.referenced_kpis()]
        return all(_of_period_sums(catalog, r, dims) for r in refs) and all(
            s in catalog.sources and d in catalog.sources[s].dimensions
            for s in source_names(catalog, kpi)
            for d in dims
        )
    return False


def _rollup_measure(catalog: Catalog, measure: Measure, dims: list[str]) -> bool:
    src = catalog.sources.get(measure.source)
    return measure.agg in ROLLUP_AGGS and src is not None and all(d in src.dimensions for d in dims)
