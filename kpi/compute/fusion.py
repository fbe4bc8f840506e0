"""Which KPIs are functions of their periods' sums, so period rollups can compute them.

A simple or ratio KPI over sums, counts, averages, minimums and maximums, or a derived KPI
over such KPIs, is the same number whether its days are summed one by one or first into
any partition of its period (kpi.compute.rollups). So is a growth of such a KPI over a
fixed shift (``offset: 7 days``) reported by day: its earlier window is one whole day,
another row of the same rollup. So is a running total of such a KPI (all time, to date,
rolling; in a sparse slice all time and to date) in the grains whose periods tile its
window: the window is then the row's own period and the earlier periods of the same grain it
holds, so its sums are running sums of the period rollup's rows (``running_total``).
Distinct counts, ``last`` balances, the other running windows (month to date by week: a week
is not a part of one month) and the other growths (a week or month compared over a shift or
with the previous period, whose open period is compared with part of another) need their
days. The cubes (kpi.compute.cubes) read this to decide which slices they may keep by month,
the rollups to decide which KPIs they project; both ask this module so they cannot disagree.
"""

from __future__ import annotations

from kpi.compute.source_sql import source_names, unknown_when_missing
from kpi.compute.sparse_running import GAPLESS_KINDS
from kpi.language.catalog import Catalog
from kpi.language.models import Agg, Kpi, KpiType, Measure

ROLLUP_AGGS = frozenset({Agg.sum, Agg.count, Agg.average, Agg.min, Agg.max})
# The grains whose periods are whole calendar months: quarters and years start on the
# first day of a month (fiscal or not), weeks and days do not.
MONTHLY_GRAINS = frozenset({"month", "quarter", "year"})


# A running window's grains whose periods tile it: the window of a period of the grain is
# that period and the earlier ones of its grain with the same start of the window, whole.
# A day is a part of every window; a month of a quarter or a (fiscal) year, a quarter of
# a year (quarters and years start on the first of a month, a quarter counted from the
# fiscal year's first month, kpi.compute.periods.Calendar.start_of); a rolling window
# is whole days only; all time tiles into any grain (it starts on the first day of data,
# and no period has data before it).
RUNNING_GRAINS = {
    "month_to_date": frozenset({"day", "month"}),
    "quarter_to_date": frozenset({"day", "month", "quarter"}),
    "year_to_date": frozenset({"day", "month", "quarter", "year"}),
    "rolling_7": frozenset({"day"}),
    "rolling_28": frozenset({"day"}),
    "rolling_90": frozenset({"day"}),
    "all_time": frozenset({"day", "week", "month", "quarter", "year"}),
}


def fusable(catalog: Catalog, kpi: Kpi) -> bool:
    """True when ``kpi`` is a function of its period's sums. Its dense slices cross every
    period with every value (combination) seen; a sparse slice
    (kpi.language.catalog.Catalog.is_sparse) has the rows of its periods' rollups, the
    combinations with data in the period, which is the row's window for such a KPI."""
    if kpi.type == KpiType.period_over_period:
        return daily_shifted_growth(catalog, kpi)
    if kpi.type == KpiType.cumulative:
        return running_total(catalog, kpi)
    return _of_period_sums(catalog, kpi, kpi.dimension_names)


def period_sums(catalog: Catalog, kpi: Kpi) -> bool:
    """True when ``kpi`` is fusable and its value is a function of its own period's sums
    alone: not a running total, whose sums run over earlier periods too."""
    return kpi.type != KpiType.cumulative and fusable(catalog, kpi)


def running_total(catalog: Catalog, kpi: Kpi) -> bool:
    """True when ``kpi`` is a running total (all time, to date, rolling) of a KPI that is a
    function of its period's sums, reported only in grains whose periods tile its window
    (``RUNNING_GRAINS``): its value is the base KPI over running sums of its period rollup's
    rows, ordered by period in each slice value. In a sparse slice only all time and to
    date: their rows are runs of periods without gaps (kpi.compute.sparse_running); a
    rolling window's may have gaps. A measure whose missing period is unknown (users by
    month) is no running sum of zeros. Every source it reads is daily: the periods start at
    the first day of the daily sources (kpi.compute.period_tables.first_day_of_data), and a
    monthly source's rows before it are in a to-date window's days but in no period."""
    if kpi.type != KpiType.cumulative:
        return False
    base = catalog.kpis[kpi.cumulative.of]
    aligned = RUNNING_GRAINS.get(kpi.cumulative.running_kind, frozenset())
    return (
        bool(kpi.grains)
        and {str(g) for g in kpi.grains} <= aligned
        and (dense(catalog, kpi) or kpi.cumulative.running_kind in GAPLESS_KINDS)
        and _of_period_sums(catalog, base, kpi.dimension_names)
        and daily_sources(catalog, base)
        and not any(
            unknown_when_missing(m, catalog.sources[m.source]) for m in _measures(catalog, base)
        )
    )


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
    """True when ``kpi`` is a function of its own period's sums and reported only in grains
    of whole months: its slices can be read from sums per month, without the days. Not a
    running total: the comparisons evaluate its compared windows, running windows ending
    on a day, through the compiler's queries, which read days (from the daily cube where it
    keeps the slice, else from the raw rows)."""
    return period_sums(catalog, kpi) and {str(g) for g in kpi.grains} <= MONTHLY_GRAINS


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


def daily_sources(catalog: Catalog, kpi: Kpi) -> bool:
    """True when every source ``kpi`` reads, itself or through the KPIs it is built on, has
    rows by day (not pre-aggregated by week or month)."""
    names = source_names(catalog, kpi)
    return all(n in catalog.sources and catalog.sources[n].grain == "day" for n in names)


def _measures(catalog: Catalog, kpi: Kpi) -> list[Measure]:
    """Every measure ``kpi`` reads, itself or through the KPIs it is derived from."""
    if kpi.type == KpiType.derived:
        return [m for r in kpi.referenced_kpis() for m in _measures(catalog, catalog.kpis[r])]
    return [m for _, m in kpi.measures]


def _rollup_measure(catalog: Catalog, measure: Measure, dims: list[str]) -> bool:
    src = catalog.sources.get(measure.source)
    return measure.agg in ROLLUP_AGGS and src is not None and all(d in src.dimensions for d in dims)
