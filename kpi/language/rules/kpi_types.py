"""Each KPI type has the fields it needs, and a running total is one that can be reported."""

from __future__ import annotations

from kpi.language.catalog import Catalog
from kpi.language.models import GRAIN_ORDER, KpiType
from kpi.language.problems import Problem
from kpi.language.rules.base import Rule, problem_at


class KpiTypeFieldsRule(Rule):
    """Each KPI type has exactly the fields it needs."""

    name = "kpi_type_fields"
    REQUIRED = {
        KpiType.simple: {"measure"},
        KpiType.ratio: {"numerator", "denominator"},
        KpiType.derived: {"expr"},
        KpiType.cumulative: {"cumulative"},
        KpiType.period_over_period: {"period_over_period"},
    }
    ALL = {"measure", "numerator", "denominator", "expr", "cumulative", "period_over_period"}

    def check(self, catalog: Catalog) -> list[Problem]:
        problems = []
        for kpi in catalog.kpis.values():
            required = self.REQUIRED[kpi.type]
            for f in sorted(required):
                if getattr(kpi, f) is None:
                    problems.append(
                        problem_at(catalog, kpi, "type", message=f"a {kpi.type} KPI needs `{f}`")
                    )
            for f in sorted(self.ALL - required):
                if getattr(kpi, f) is not None:
                    problems.append(
                        problem_at(
                            catalog,
                            kpi,
                            f,
                            message=f"`{f}` does not belong to a {kpi.type} KPI "
                            f"(it takes {', '.join(sorted(required))})",
                        )
                    )
        return problems


class CumulativeRule(Rule):
    name = "cumulative"

    def check(self, catalog: Catalog) -> list[Problem]:
        problems = []
        for kpi in catalog.kpis.values():
            c = kpi.cumulative
            if c is None:
                continue
            if sum(x is not None for x in (c.to_date, c.window_days, c.window)) != 1:
                problems.append(
                    problem_at(
                        catalog,
                        kpi,
                        "cumulative",
                        message="a cumulative KPI takes exactly one of `to_date` "
                        "(month, quarter, year), `window_days` (7, 28, 90) and `window` "
                        "(all_time)",
                    )
                )
            if c.to_date and GRAIN_ORDER.index(c.to_date) < max(
                GRAIN_ORDER.index(g) for g in kpi.grains
            ):
                problems.append(
                    problem_at(
                        catalog,
                        kpi,
                        "grains",
                        message=f"{c.to_date}-to-date cannot be reported at a grain coarser "
                        f"than {c.to_date}",
                    )
                )
        return problems


class ShiftedGrowthRule(Rule):
    """A growth over a fixed shift (``offset: 7 days``) compares the base KPI's own window
    moved back; a running total (or a KPI built on one) has no such window yet."""

    name = "shifted_growth"

    def check(self, catalog: Catalog) -> list[Problem]:
        problems = []
        for kpi in catalog.kpis.values():
            pop = kpi.period_over_period
            if pop is None or pop.shift is None or pop.of not in catalog.kpis:
                continue
            chain = [catalog.kpis[pop.of], *catalog.dependencies(pop.of)]
            running = [k.id for k in chain if k.cumulative is not None]
            if running:
                problems.append(
                    problem_at(
                        catalog,
                        kpi,
                        "period_over_period",
                        message=f"offset `{pop.offset}` cannot shift the running total "
                        f"`{running[0]}`: use previous_period or same_period_last_year",
                    )
                )
        return problems


class GrowthInputRule(Rule):
    """A growth (``period_over_period``) is not the input of another KPI yet.

    Another KPI evaluates its inputs over other windows than the period's own: a growth of
    it over the earlier period, a running total over the days to date, a derived KPI's
    comparison over an open period's like-for-like span. A growth evaluated over such a
    window still compares with the period before the *current* one, so the number would
    be wrong. Until the compiler composes the two windows, such a definition is refused.
    """

    name = "growth_input"
    FIELD = {
        KpiType.derived: "expr",
        KpiType.cumulative: "cumulative",
        KpiType.period_over_period: "period_over_period",
    }

    def check(self, catalog: Catalog) -> list[Problem]:
        problems = []
        for kpi in catalog.kpis.values():
            for ref in kpi.referenced_kpis():
                growth = catalog.kpis.get(ref)
                if growth is None or growth.period_over_period is None:
                    continue
                problems.append(
                    problem_at(
                        catalog,
                        kpi,
                        self.FIELD[kpi.type],
                        message=f"`{ref}` is a growth (period_over_period), which cannot be "
                        f"the input of another KPI yet: build this KPI from "
                        f"`{growth.period_over_period.of}` instead",
                    )
                )
        return problems
