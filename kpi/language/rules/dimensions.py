"""KPIs are sliced only by conformed dimensions that their sources map."""

from __future__ import annotations

from kpi.language.catalog import Catalog
from kpi.language.expressions import did_you_mean
from kpi.language.models import Kpi
from kpi.language.problems import Problem
from kpi.language.rules.base import Rule, problem_at


class DimensionRule(Rule):
    """A KPI is sliced only by conformed dimensions that every source it reads maps.

    Each entry of ``dimensions`` is one slice: a dimension, or a list of dimensions sliced
    together. Every dimension of a combined slice must be one of every source the KPI reads
    (directly or through the KPIs it is computed from), a slice names a dimension once, and
    the KPI declares each slice once (``[channel, campaign]`` and ``[campaign, channel]``
    are the same slice).
    """

    name = "dimension"

    def check(self, catalog: Catalog) -> list[Problem]:
        problems = []
        for kpi in catalog.kpis.values():
            seen: dict[frozenset[str], int] = {}
            for i, entry in enumerate(kpi.dimensions):
                names = [entry] if isinstance(entry, str) else entry
                # The path of each name: `dimensions[i]`, or `dimensions[i][j]` in a list.
                paths = [(i,)] if isinstance(entry, str) else [(i, j) for j in range(len(names))]
                if not names:
                    problems.append(
                        problem_at(
                            catalog,
                            kpi,
                            "dimensions",
                            i,
                            message="an empty slice: name one dimension or more",
                        )
                    )
                    continue
                for j, dim in enumerate(names):
                    problems += self._dimension(catalog, kpi, dim, paths[j])
                    if dim in names[:j]:
                        problems.append(
                            problem_at(
                                catalog,
                                kpi,
                                "dimensions",
                                *paths[j],
                                message=f"dimension `{dim}` is named twice in one slice",
                            )
                        )
                key = frozenset(names)
                if key in seen:
                    problems.append(
                        problem_at(
                            catalog,
                            kpi,
                            "dimensions",
                            i,
                            message=f"the slice by {' x '.join(names)} is declared twice "
                            f"(also entry {seen[key] + 1} of dimensions)",
                        )
                    )
                else:
                    seen[key] = i
        return problems

    @staticmethod
    def _dimension(catalog: Catalog, kpi: Kpi, dim: str, path: tuple[int, ...]) -> list[Problem]:
        """``dim`` is a conformed dimension that every source of ``kpi`` maps."""
        if dim not in catalog.dimensions:
            return [
                problem_at(
                    catalog,
                    kpi,
                    "dimensions",
                    *path,
                    message=f"unknown dimension `{dim}`{did_you_mean(dim, catalog.dimensions)}",
                )
            ]
        problems = []
        for src in catalog.sources_of(kpi.id):
            if dim not in src.dimensions:
                name = next(n for n, s in catalog.sources.items() if s is src)
                problems.append(
                    problem_at(
                        catalog,
                        kpi,
                        "dimensions",
                        *path,
                        message=f"source `{name}` does not map dimension `{dim}`",
                    )
                )
        return problems
