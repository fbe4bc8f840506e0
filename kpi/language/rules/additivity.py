"""Measures are only rolled up the way their columns add up."""

from __future__ import annotations

from kpi.language.catalog import Catalog
from kpi.language.expressions import ExpressionError, referenced_names
from kpi.language.models import Additivity, Agg
from kpi.language.problems import Problem
from kpi.language.rules.base import Rule, all_measures, problem_at


class AdditivityRule(Rule):
    """Non-additive measures are never summed; semi-additive ones roll up by `last`."""

    name = "additivity"
    SUMMING = {Agg.sum, Agg.average}

    def check(self, catalog: Catalog) -> list[Problem]:
        problems = []
        for kpi, role, m in all_measures(catalog):
            src = catalog.sources.get(m.source)
            if src is None or m.expr is None or m.agg not in self.SUMMING:
                continue
            try:
                names = referenced_names(m.expr)
            except ExpressionError:
                continue
            for n in names:
                col = src.columns.get(n)
                if col is None:
                    continue
                # A pre-aggregated source with one row per period (users by month, no
                # breakdown) may be read as it is, at its own grain only.
                at_own_grain = (
                    src.grain != "day" and set(kpi.grains) == {src.grain} and not src.dimensions
                )
                if col.additivity == Additivity.non_additive and not at_own_grain:
                    problems.append(
                        problem_at(
                            catalog,
                            kpi,
                            role,
                            "agg",
                            message=f"{role}: `{n}` is non-additive in `{m.source}` and cannot "
                            f"be rolled up by {m.agg}; use count_distinct on row-level data, "
                            "or read it from a source at the grain you need",
                        )
                    )
                elif col.additivity == Additivity.semi_additive:
                    problems.append(
                        problem_at(
                            catalog,
                            kpi,
                            role,
                            "agg",
                            message=f"{role}: `{n}` is semi-additive (a balance): use agg "
                            "`last`, not " + str(m.agg),
                        )
                    )
        return problems
