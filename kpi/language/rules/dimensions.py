"""KPIs are sliced only by conformed dimensions that their sources map."""

from __future__ import annotations

from kpi.language.catalog import Catalog
from kpi.language.expressions import did_you_mean
from kpi.language.problems import Problem
from kpi.language.rules.base import Rule, problem_at


class DimensionRule(Rule):
    """A KPI is sliced only by conformed dimensions that every source it reads maps."""

    name = "dimension"

    def check(self, catalog: Catalog) -> list[Problem]:
        problems = []
        for kpi in catalog.kpis.values():
            for i, dim in enumerate(kpi.dimensions):
                if dim not in catalog.dimensions:
                    problems.append(
                        problem_at(
                            catalog,
                            kpi,
                            "dimensions",
                            i,
                            message=f"unknown dimension `{dim}`"
                            f"{did_you_mean(dim, catalog.dimensions)}",
                        )
                    )
                    continue
                for src in catalog.sources_of(kpi.id):
                    if dim not in src.dimensions:
                        name = next(n for n, s in catalog.sources.items() if s is src)
                        problems.append(
                            problem_at(
                                catalog,
                                kpi,
                                "dimensions",
                                i,
                                message=f"source `{name}` does not map dimension `{dim}`",
                            )
                        )
        return problems
