"""A KPI's `format:` must be one every reader can render (kpi.language.display_format):
a format that would print the wrong thing, or nothing, is refused before any run."""

from __future__ import annotations

from kpi.language.catalog import Catalog
from kpi.language.display_format import FormatError, parse_format
from kpi.language.models import Unit
from kpi.language.problems import Problem
from kpi.language.rules.base import Rule, problem_at


class DisplayFormatRule(Rule):
    name = "display_format"

    def check(self, catalog: Catalog) -> list[Problem]:
        problems = []
        for kpi in catalog.kpis.values():
            if not kpi.format:
                continue
            try:
                shape = parse_format(kpi.format)
            except FormatError as error:
                problems.append(problem_at(catalog, kpi, "format", message=str(error)))
                continue
            # A percent format on a KPI that is not a ratio of 1 would print 100x its value.
            if shape.percent and kpi.unit != Unit.percent:
                problems.append(
                    problem_at(
                        catalog,
                        kpi,
                        "format",
                        message=f"format {kpi.format!r} shows a percentage, but the KPI's "
                        f"unit is {kpi.unit}: its values would print 100 times too large; "
                        "use unit: percent or a format without %",
                    )
                )
        return problems
