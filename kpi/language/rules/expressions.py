"""Measure expressions and filters parse and name only declared columns."""

from __future__ import annotations

from kpi.language.catalog import Catalog
from kpi.language.expressions import ExpressionError, did_you_mean, referenced_names
from kpi.language.models import Agg
from kpi.language.problems import Problem
from kpi.language.rules.base import Rule, all_measures, problem_at


class ExpressionRule(Rule):
    """Expressions parse, use allowed functions and name declared columns only (a divisor
    that is a constant zero is ``ZeroDenominatorRule``'s, in zeros.py)."""

    name = "expression"

    def check(self, catalog: Catalog) -> list[Problem]:
        problems = []
        for kpi, role, m in all_measures(catalog):
            src = catalog.sources.get(m.source)
            if src is None:
                continue
            if m.expr is None and m.agg != Agg.count:
                problems.append(
                    problem_at(catalog, kpi, role, message=f"{role}: `{m.agg}` needs an `expr`")
                )
            for field, allowed in (
                ("expr", list(src.columns)),
                ("filter", [*src.columns, *src.dimensions]),
            ):
                text = getattr(m, field)
                if text is None:
                    continue
                try:
                    names = referenced_names(text)
                except ExpressionError as exc:
                    problems.append(
                        problem_at(catalog, kpi, role, field, message=f"{role}.{field}: {exc}")
                    )
                    continue
                for n in names:
                    if n not in allowed:
                        problems.append(
                            problem_at(
                                catalog,
                                kpi,
                                role,
                                field,
                                message=f"{role}.{field}: unknown column `{n}` in source "
                                f"`{m.source}`{did_you_mean(n, allowed)}",
                            )
                        )
        return problems
