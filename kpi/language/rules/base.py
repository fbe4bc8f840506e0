"""What every definition rule is, and the helpers that locate a KPI's problems.

A rule checks the whole catalog and returns every problem it finds, located by file, line
and KPI, so that a data engineer fixes all of them in one pass.
"""

from __future__ import annotations

from collections.abc import Iterator

from kpi.language.catalog import Catalog
from kpi.language.models import Kpi, Measure
from kpi.language.problems import Problem


class Rule:
    """A check over the whole catalog."""

    name = "rule"

    def check(self, catalog: Catalog) -> list[Problem]:
        raise NotImplementedError


def problem_at(catalog: Catalog, kpi: Kpi, *path: str | int, message: str) -> Problem:
    """A problem of ``kpi``, located at ``path`` inside its definition."""
    file, line = catalog.kpi_locations[kpi.id].at(*path)
    return Problem(file, line, message, kpi.id)


def all_measures(catalog: Catalog) -> Iterator[tuple[Kpi, str, Measure]]:
    """Every measure of every KPI, with its role (measure, numerator, denominator)."""
    for kpi in catalog.kpis.values():
        for role, measure in kpi.measures:
            yield kpi, role, measure
