"""Alert rules that could never fire: a grain the KPI lacks, no target, the same rule twice."""

from __future__ import annotations

from kpi.language.catalog import Catalog
from kpi.language.problems import Problem
from kpi.language.rules.base import Rule


def alert_problems(catalog: Catalog) -> list[Problem]:
    """Alert rules that could never fire, located like every other definition problem.

    These look across fields (the rule against the KPI's grains and target), so they belong
    with the catalog rules rather than in the model.
    """
    problems = []
    for kpi in catalog.kpis.values():
        seen: dict[str, int] = {}
        for i, rule in enumerate(kpi.alerts):
            messages = []
            if rule.period_grain not in kpi.grains:
                messages.append(
                    f"grain `{rule.period_grain}` is not one of the KPI's grains "
                    f"({', '.join(kpi.grains)}), so the rule can never fire"
                )
            if rule.rule != "anomaly" and kpi.target is None:
                messages.append("the KPI has no target, so its status never changes")
            if rule.label in seen:
                messages.append(f"the same rule as alerts[{seen[rule.label]}]")
            seen.setdefault(rule.label, i)
            loc = catalog.kpi_locations.get(kpi.id)
            file, line = loc.at("alerts", i) if loc else ("", None)
            problems += [
                Problem(file, line, f"alerts[{i}] ({rule.rule}): {m}", kpi.id) for m in messages
            ]
    return problems


class AlertRulesRule(Rule):
    """Alert rules can fire: a grain the KPI has, a target for status rules, no duplicates."""

    name = "alerts"

    def check(self, catalog: Catalog) -> list[Problem]:
        return alert_problems(catalog)
