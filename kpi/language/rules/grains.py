"""KPIs are only reported at grains their sources and the KPIs they read can answer."""

from __future__ import annotations

from typing import ClassVar

from kpi.language.catalog import Catalog
from kpi.language.expressions import ExpressionError, referenced_names
from kpi.language.models import Additivity, Agg, KpiType, Measure
from kpi.language.problems import Problem
from kpi.language.rules.base import Rule, problem_at


class GrainRule(Rule):
    """KPIs are only reported at grains their sources can answer.

    A source pre-aggregated by month (market revenue, GA4 users) answers month, and, when
    its measure is additive, the quarter and year that months add up to. A ratio whose two
    sides come from different grains is only valid at a grain both sides answer. A KPI
    computed from other KPIs can only be reported at grains they are reported at.
    """

    name = "grain"
    ROLLUPS: ClassVar[dict[str, set[str]]] = {
        "day": {"day", "week", "month", "quarter", "year"},
        "week": {"week"},
        "month": {"month", "quarter", "year"},
        "quarter": {"quarter", "year"},
        "year": {"year"},
    }

    def check(self, catalog: Catalog) -> list[Problem]:
        problems = []
        for kpi in catalog.kpis.values():
            for role, m in kpi.measures:
                src = catalog.sources.get(m.source)
                if src is None or src.grain == "day":
                    continue
                allowed = self.ROLLUPS[src.grain]
                if not self._additive(m, src):
                    allowed = {src.grain}
                bad = [g for g in kpi.grains if g not in allowed]
                if bad:
                    side = (
                        " (both sides of a ratio must reach the same grain before they are divided)"
                        if kpi.type == KpiType.ratio
                        else ""
                    )
                    problems.append(
                        problem_at(
                            catalog,
                            kpi,
                            "grains",
                            message=f"{role} reads `{m.source}`, which is pre-aggregated by "
                            f"{src.grain}; it cannot be reported at grain "
                            f"{', '.join(bad)}{side}",
                        )
                    )
            for ref in kpi.referenced_kpis():
                other = catalog.kpis.get(ref)
                if other is None:
                    continue
                missing = [g for g in kpi.grains if g not in other.grains]
                if missing:
                    problems.append(
                        problem_at(
                            catalog,
                            kpi,
                            "grains",
                            message=f"`{ref}` is not reported at grain {', '.join(missing)}; "
                            f"add it to `{ref}`'s grains or remove it here",
                        )
                    )
        return problems

    @staticmethod
    def _additive(measure: Measure, src) -> bool:
        if measure.agg not in (Agg.sum, Agg.count) or measure.expr is None:
            return measure.agg == Agg.count
        try:
            names = referenced_names(measure.expr)
        except ExpressionError:
            return False
        return all(
            (src.columns.get(n) is not None and src.columns[n].additivity == Additivity.additive)
            for n in names
        )
