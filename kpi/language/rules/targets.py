"""Targets, thresholds and benchmarks fit the KPI: its unit, direction, grains and shape."""

from __future__ import annotations

from kpi.language.catalog import Catalog
from kpi.language.facts import scales_with_days, shape_kpi
from kpi.language.models import Direction, Grain, KpiType, Unit
from kpi.language.problems import Problem
from kpi.language.rules.base import Rule, problem_at


class TargetRule(Rule):
    """Targets and benchmarks agree with the KPI's unit and direction."""

    name = "target"

    def check(self, catalog: Catalog) -> list[Problem]:
        problems = []
        for kpi in catalog.kpis.values():
            t = kpi.target
            if t is not None:
                if t.unit is not None and t.unit != kpi.unit:
                    problems.append(
                        problem_at(
                            catalog,
                            kpi,
                            "target",
                            "unit",
                            message=f"target unit `{t.unit}` does not match the KPI's "
                            f"unit `{kpi.unit}`",
                        )
                    )
                if (
                    kpi.unit == Unit.currency
                    and t.currency is not None
                    and t.currency != (kpi.currency or catalog.reporting.currency)
                ):
                    problems.append(
                        problem_at(
                            catalog,
                            kpi,
                            "target",
                            "currency",
                            message=f"target currency {t.currency} differs from the KPI's "
                            f"{kpi.currency or catalog.reporting.currency}",
                        )
                    )
                if kpi.direction == Direction.within_band and t.band is None:
                    problems.append(
                        problem_at(
                            catalog,
                            kpi,
                            "target",
                            message="a within_band KPI needs a target `band`",
                        )
                    )
                if (
                    kpi.direction != Direction.within_band
                    and t.value is None
                    and not (t.per_period)
                ):
                    problems.append(
                        problem_at(
                            catalog,
                            kpi,
                            "target",
                            message="target needs a `value` or `per_period` values",
                        )
                    )
                if t.grain not in kpi.grains:
                    problems.append(
                        problem_at(
                            catalog,
                            kpi,
                            "target",
                            "grain",
                            message=f"target grain `{t.grain}` is not one of the KPI's grains "
                            f"({', '.join(kpi.grains)})",
                        )
                    )
            th = kpi.thresholds
            if th.off_track_below > th.at_risk_below:
                problems.append(
                    problem_at(
                        catalog,
                        kpi,
                        "thresholds",
                        message="off_track_below must not be above at_risk_below",
                    )
                )
            b = kpi.benchmark
            if b is not None and (b.value is None) == (b.band is None):
                problems.append(
                    problem_at(
                        catalog, kpi, "benchmark", message="a benchmark takes a `value` or a `band`"
                    )
                )
        return problems


class SeasonalPhasingRule(Rule):
    """Seasonal phasing spreads a target over days by last year's daily values, so the KPI
    must add up over days (a sum or a count, or a running total of one) and the KPI whose
    days give the shape must be reported by day."""

    name = "seasonal_phasing"

    def check(self, catalog: Catalog) -> list[Problem]:
        problems = []
        for kpi in catalog.kpis.values():
            if kpi.target is None or kpi.target.phasing != "seasonal":
                continue
            base = shape_kpi(catalog, kpi)
            if base is kpi and kpi.type == KpiType.cumulative:
                continue  # its base is unknown: KpiReferenceRule says so
            if not scales_with_days(base):
                problems.append(
                    problem_at(
                        catalog,
                        kpi,
                        "target",
                        "phasing",
                        message=f"seasonal phasing spreads a target over days, but `{base.id}` "
                        "does not add up over days (a rate, an average or a distinct count "
                        "keeps its target at every grain): use linear or per_period",
                    )
                )
            elif Grain.day not in base.grains:
                problems.append(
                    problem_at(
                        catalog,
                        kpi,
                        "target",
                        "phasing",
                        message=f"seasonal phasing reads last year's daily values of "
                        f"`{base.id}`, which is not reported by day: add `day` to its grains",
                    )
                )
        return problems


class GoalDeadlineRule(Rule):
    """A target's deadline is projected to: a running total has no single value to project."""

    name = "goal_deadline"

    def check(self, catalog: Catalog) -> list[Problem]:
        return [
            problem_at(
                catalog,
                kpi,
                "target",
                "deadline",
                message="a running total cannot be projected to a deadline: put the deadline "
                f"on `{kpi.cumulative.of}`, the KPI it accumulates",
            )
            for kpi in catalog.kpis.values()
            if kpi.target is not None
            and kpi.target.deadline is not None
            and kpi.type == KpiType.cumulative
            and kpi.cumulative is not None
        ]
