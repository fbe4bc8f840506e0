"""Validation rules for the KPI catalog, one small class per rule.

Each rule returns every problem it finds, located by file, line and KPI, so that a data
engineer fixes all of them in one pass. ``run_rules`` runs them all.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kpi.language.catalog import Catalog
from kpi.language.expressions import ExpressionError, did_you_mean, parse, referenced_names
from kpi.language.facts import scales_with_days, shape_kpi
from kpi.language.models import (
    GRAIN_ORDER,
    Additivity,
    Agg,
    Direction,
    Grain,
    Kpi,
    KpiType,
    Measure,
    Unit,
)
from kpi.language.problems import Problem
from kpi.language.rules.alerts import alert_problems
from kpi.language.rules.file_sources import FileSourceRule
from kpi.language.rules.zeros import always_zero, never_true, zero_divisors


class Rule:
    """A check over the whole catalog."""

    name = "rule"

    def check(self, catalog: Catalog) -> list[Problem]:
        raise NotImplementedError


def _at(catalog: Catalog, kpi: Kpi, *path: str | int, message: str) -> Problem:
    file, line = catalog.kpi_locations[kpi.id].at(*path)
    return Problem(file, line, message, kpi.id)


def _measures(catalog: Catalog) -> Iterator[tuple[Kpi, str, Measure]]:
    for kpi in catalog.kpis.values():
        for role, measure in kpi.measures:
            yield kpi, role, measure


class SourceDeclarationRule(Rule):
    """Time and dimension columns of each source exist; time zones are real IANA zones."""

    name = "source_declaration"

    def check(self, catalog: Catalog) -> list[Problem]:
        problems = []
        for name, src in catalog.sources.items():
            loc = catalog.source_locations[name]
            cols = list(src.columns)
            if src.time.column not in src.columns:
                file, line = loc.at("time", "column")
                hint = did_you_mean(src.time.column, cols)
                msg = f"source `{name}`: unknown time column `{src.time.column}`{hint}"
                problems.append(Problem(file, line, msg))
            for dim, mapping in src.dimensions.items():
                if dim not in catalog.dimensions:
                    file, line = loc.at("dimensions", dim)
                    hint = did_you_mean(dim, catalog.dimensions)
                    msg = f"source `{name}`: `{dim}` is not a conformed dimension{hint}"
                    problems.append(Problem(file, line, msg))
                if mapping.column not in src.columns:
                    file, line = loc.at("dimensions", dim, "column")
                    hint = did_you_mean(mapping.column, cols)
                    msg = f"source `{name}`: unknown column `{mapping.column}`{hint}"
                    problems.append(Problem(file, line, msg))
            conv = src.currency_conversion
            if conv is not None and conv.amount not in src.columns:
                file, line = loc.at("currency_conversion", "amount")
                hint = did_you_mean(conv.amount, cols)
                msg = (
                    f"source `{name}`: currency_conversion.amount `{conv.amount}` is not a "
                    f"declared column{hint}"
                )
                problems.append(Problem(file, line, msg))
            if conv is not None:
                derived = [
                    c
                    for c in (f"original_{conv.amount}", "original_currency", "fx_rate")
                    if c not in src.columns
                ]
                if derived:
                    file, line = loc.at("currency_conversion")
                    problems.append(
                        Problem(
                            file,
                            line,
                            f"source `{name}`: converted money needs "
                            f"the columns {', '.join(derived)} to be declared",
                        )
                    )
            for zone, where in ((src.time.time_zone, ("time", "time_zone")),):
                if not _is_zone(zone):
                    file, line = loc.at(*where)
                    problems.append(Problem(file, line, f"unknown time zone `{zone}`"))
            if (
                src.time.type == "date"
                and _is_zone(src.time.time_zone)
                and src.time.time_zone != catalog.reporting.time_zone
            ):
                file, line = loc.at("time", "time_zone")
                problems.append(
                    Problem(
                        file,
                        line,
                        f"source `{name}` has calendar dates in {src.time.time_zone}, but "
                        f"reporting is in {catalog.reporting.time_zone}: a date cannot be "
                        "moved to another zone; load timestamps, or report in the source's zone",
                    )
                )
        if not _is_zone(catalog.reporting.time_zone) and catalog.sources_location is not None:
            file, line = catalog.sources_location.at("reporting", "time_zone")
            msg = f"unknown reporting time zone `{catalog.reporting.time_zone}`"
            problems.append(Problem(file, line, msg + "; expected an IANA zone like Europe/Paris"))
        return problems


class UnknownSourceRule(Rule):
    name = "unknown_source"

    def check(self, catalog: Catalog) -> list[Problem]:
        return [
            _at(
                catalog,
                kpi,
                role,
                "source",
                message=f"{role}: unknown source `{m.source}`"
                f"{did_you_mean(m.source, catalog.sources)}",
            )
            for kpi, role, m in _measures(catalog)
            if m.source not in catalog.sources
        ]


class ExpressionRule(Rule):
    """Expressions parse, use allowed functions, name declared columns only, and never
    divide by a constant zero."""

    name = "expression"

    def check(self, catalog: Catalog) -> list[Problem]:
        problems = []
        for kpi, role, m in _measures(catalog):
            src = catalog.sources.get(m.source)
            if src is None:
                continue
            if m.expr is None and m.agg != Agg.count:
                problems.append(
                    _at(catalog, kpi, role, message=f"{role}: `{m.agg}` needs an `expr`")
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
                        _at(catalog, kpi, role, field, message=f"{role}.{field}: {exc}")
                    )
                    continue
                for n in names:
                    if n not in allowed:
                        problems.append(
                            _at(
                                catalog,
                                kpi,
                                role,
                                field,
                                message=f"{role}.{field}: unknown column `{n}` in source "
                                f"`{m.source}`{did_you_mean(n, allowed)}",
                            )
                        )
        return problems + _zero_denominators(catalog)


def _zero_denominators(catalog: Catalog) -> list[Problem]:
    """A divisor that is a constant zero makes every value NULL, silently."""
    problems = []
    expected = "expected an expression of the source's columns that can be non-zero"
    for kpi in catalog.kpis.values():
        m = kpi.denominator
        if kpi.type == KpiType.ratio and m is not None:
            if m.agg != Agg.count and always_zero(m.expr):
                problems.append(
                    _at(
                        catalog,
                        kpi,
                        "denominator",
                        "expr",
                        message=f"denominator.expr: `{m.expr}` is always zero, so every value "
                        f"of the ratio would be NULL; {expected}",
                    )
                )
            if never_true(m.filter):
                problems.append(
                    _at(
                        catalog,
                        kpi,
                        "denominator",
                        "filter",
                        message=f"denominator.filter: `{m.filter}` keeps no row, so the "
                        "denominator is always zero and every value NULL; expected a filter "
                        "on the source's columns",
                    )
                )
        if kpi.type == KpiType.derived and kpi.expr:
            for divisor in zero_divisors(kpi.expr):
                problems.append(
                    _at(
                        catalog,
                        kpi,
                        "expr",
                        message=f"expr: `{kpi.expr}` divides by `{divisor}`, which is always "
                        "zero, so every value would be NULL; expected a divisor that can be "
                        "non-zero",
                    )
                )
    return problems


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
                        _at(catalog, kpi, "type", message=f"a {kpi.type} KPI needs `{f}`")
                    )
            for f in sorted(self.ALL - required):
                if getattr(kpi, f) is not None:
                    problems.append(
                        _at(
                            catalog,
                            kpi,
                            f,
                            message=f"`{f}` does not belong to a {kpi.type} KPI "
                            f"(it takes {', '.join(sorted(required))})",
                        )
                    )
        return problems


class KpiReferenceRule(Rule):
    """Derived, cumulative and period-over-period KPIs refer to KPIs that exist."""

    name = "kpi_reference"

    def check(self, catalog: Catalog) -> list[Problem]:
        problems = []
        for kpi in catalog.kpis.values():
            if kpi.type == KpiType.derived and kpi.expr:
                try:
                    parse(kpi.expr)
                except ExpressionError as exc:
                    problems.append(_at(catalog, kpi, "expr", message=f"expr: {exc}"))
                    continue
            field = {
                KpiType.derived: ("expr",),
                KpiType.cumulative: ("cumulative", "of"),
                KpiType.period_over_period: ("period_over_period", "of"),
            }.get(kpi.type)
            for ref in kpi.referenced_kpis():
                if ref not in catalog.kpis:
                    problems.append(
                        _at(
                            catalog,
                            kpi,
                            *(field or ()),
                            message=f"unknown KPI `{ref}`{did_you_mean(ref, catalog.kpis)}",
                        )
                    )
        return problems


class CycleRule(Rule):
    """No KPI may be computed, directly or not, from itself."""

    name = "cycle"

    def check(self, catalog: Catalog) -> list[Problem]:
        problems, reported = [], set()
        for start in catalog.kpis:
            path = self._find_cycle(catalog, start, [start])
            if path and frozenset(path) not in reported:
                reported.add(frozenset(path))
                kpi = catalog.kpis[start]
                problems.append(
                    _at(catalog, kpi, message="cycle between KPIs: " + " -> ".join(path))
                )
        return problems

    def _find_cycle(self, catalog: Catalog, current: str, path: list[str]) -> list[str] | None:
        for ref in catalog.kpis[current].referenced_kpis():
            if ref == path[0]:
                return [*path, ref]
            if ref in catalog.kpis and ref not in path:
                found = self._find_cycle(catalog, ref, [*path, ref])
                if found:
                    return found
        return None


class AdditivityRule(Rule):
    """Non-additive measures are never summed; semi-additive ones roll up by `last`."""

    name = "additivity"
    SUMMING = {Agg.sum, Agg.average}

    def check(self, catalog: Catalog) -> list[Problem]:
        problems = []
        for kpi, role, m in _measures(catalog):
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
                        _at(
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
                        _at(
                            catalog,
                            kpi,
                            role,
                            "agg",
                            message=f"{role}: `{n}` is semi-additive (a balance): use agg "
                            "`last`, not " + str(m.agg),
                        )
                    )
        return problems


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
                        _at(
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
                        _at(
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


class DimensionRule(Rule):
    """A KPI is sliced only by conformed dimensions that every source it reads maps."""

    name = "dimension"

    def check(self, catalog: Catalog) -> list[Problem]:
        problems = []
        for kpi in catalog.kpis.values():
            for i, dim in enumerate(kpi.dimensions):
                if dim not in catalog.dimensions:
                    problems.append(
                        _at(
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
                            _at(
                                catalog,
                                kpi,
                                "dimensions",
                                i,
                                message=f"source `{name}` does not map dimension `{dim}`",
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
            if (c.to_date is None) == (c.window_days is None):
                problems.append(
                    _at(
                        catalog,
                        kpi,
                        "cumulative",
                        message="a cumulative KPI takes exactly one of `to_date` "
                        "(month, quarter, year) and `window_days` (7, 28, 90)",
                    )
                )
            if c.to_date and GRAIN_ORDER.index(c.to_date) < max(
                GRAIN_ORDER.index(g) for g in kpi.grains
            ):
                problems.append(
                    _at(
                        catalog,
                        kpi,
                        "grains",
                        message=f"{c.to_date}-to-date cannot be reported at a grain coarser "
                        f"than {c.to_date}",
                    )
                )
        return problems


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
                        _at(
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
                        _at(
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
                        _at(
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
                        _at(
                            catalog,
                            kpi,
                            "target",
                            message="target needs a `value` or `per_period` values",
                        )
                    )
                if t.grain not in kpi.grains:
                    problems.append(
                        _at(
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
                    _at(
                        catalog,
                        kpi,
                        "thresholds",
                        message="off_track_below must not be above at_risk_below",
                    )
                )
            b = kpi.benchmark
            if b is not None and (b.value is None) == (b.band is None):
                problems.append(
                    _at(
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
                    _at(
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
                    _at(
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
            _at(
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


class FileSourceDeclarationRule(Rule):
    """File sources declare what a file must hold: a key, required and allowed values."""

    name = "file_source"

    def check(self, catalog: Catalog) -> list[Problem]:
        return FileSourceRule().check(catalog)


class AlertRulesRule(Rule):
    """Alert rules can fire: a grain the KPI has, a target for status rules, no duplicates."""

    name = "alerts"

    def check(self, catalog: Catalog) -> list[Problem]:
        return alert_problems(catalog)


RULES: list[Rule] = [
    SourceDeclarationRule(),
    UnknownSourceRule(),
    ExpressionRule(),
    KpiTypeFieldsRule(),
    KpiReferenceRule(),
    CycleRule(),
    AdditivityRule(),
    GrainRule(),
    DimensionRule(),
    CumulativeRule(),
    TargetRule(),
    SeasonalPhasingRule(),
    GoalDeadlineRule(),
    AlertRulesRule(),
    FileSourceDeclarationRule(),
]


def run_rules(catalog: Catalog) -> list[Problem]:
    """Every problem every rule finds."""
    problems: list[Problem] = []
    for rule in RULES:
        problems.extend(rule.check(catalog))
    return problems


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
