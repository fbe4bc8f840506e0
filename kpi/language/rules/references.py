"""KPIs computed from other KPIs name KPIs that exist, and never themselves."""

from __future__ import annotations

from kpi.language.catalog import Catalog
from kpi.language.expressions import ExpressionError, did_you_mean, parse
from kpi.language.models import KpiType
from kpi.language.problems import Problem
from kpi.language.rules.base import Rule, problem_at


class KpiReferenceRule(Rule):
    """Derived, cumulative and period-over-period KPIs refer to KPIs that exist."""

    name = "kpi_reference"

    def check(self, catalog: Catalog) -> list[Problem]:
        problems = []
        for kpi in catalog.kpis.values():
            if kpi.type == KpiType.derived and kpi.expr:
                try:
                    parse(kpi.expr)
                except ExpressionError as exc:
                    problems.append(problem_at(catalog, kpi, "expr", message=f"expr: {exc}"))
                    continue
            field = {
                KpiType.derived: ("expr",),
                KpiType.cumulative: ("cumulative", "of"),
                KpiType.period_over_period: ("period_over_period", "of"),
            }.get(kpi.type)
            for ref in kpi.referenced_kpis():
                if ref not in catalog.kpis:
                    problems.append(
                        problem_at(
                            catalog,
                            kpi,
                            *(field or ()),
                            message=f"unknown KPI `{ref}`{did_you_mean(ref, catalog.kpis)}",
                        )
                    )
        return problems


class CycleRule(Rule):
    """No KPI may be computed, directly or not, from itself."""

    name = "cycle"

    def check(self, catalog: Catalog) -> list[Problem]:
        problems, reported = [], set()
        for start in catalog.kpis:
            path = self._find_cycle(catalog, start, [start])
            if path and frozenset(path) not in reported:
                reported.add(frozenset(path))
                kpi = catalog.kpis[start]
                problems.append(
                    problem_at(catalog, kpi, message="cycle between KPIs: " + " -> ".join(path))
                )
        return problems

    def _find_cycle(self, catalog: Catalog, current: str, path: list[str]) -> list[str] | None:
        for ref in catalog.kpis[current].referenced_kpis():
            if ref == path[0]:
                return [*path, ref]
            if ref in catalog.kpis and ref not in path:
                found = self._find_cycle(catalog, ref, [*path, ref])
                if found:
                    return found
        return None
