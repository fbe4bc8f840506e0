"""Facts about a definition that the rules, the targets and the comparisons all rely on."""

from __future__ import annotations

from kpi.language.catalog import Catalog
from kpi.language.models import Agg, Kpi, KpiType


def scales_with_days(kpi: Kpi) -> bool:
    """True when a KPI adds up over days, so its target is spread over the days."""
    return kpi.type == KpiType.simple and kpi.measure.agg in (Agg.sum, Agg.count)


def shape_kpi(catalog: Catalog, kpi: Kpi) -> Kpi:
    """The KPI whose daily values shape ``kpi``'s target: itself, or a running total's base."""
    if kpi.type == KpiType.cumulative and kpi.cumulative is not None:
        return catalog.kpis.get(kpi.cumulative.of, kpi)
    return kpi
