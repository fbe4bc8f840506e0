"""Sources are declared consistently, and KPIs read sources that exist."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kpi.language.catalog import Catalog
from kpi.language.expressions import did_you_mean
from kpi.language.models import RESERVED_COLUMN_PREFIX
from kpi.language.problems import Problem
from kpi.language.rules.base import Rule, all_measures, problem_at


class SourceDeclarationRule(Rule):
    """Time and dimension columns of each source exist; time zones are real IANA zones."""

    name = "source_declaration"

    def check(self, catalog: Catalog) -> list[Problem]:
        problems = []
        for name, src in catalog.sources.items():
            loc = catalog.source_locations[name]
            cols = list(src.columns)
            for column in cols:
                # Case-insensitive: DuckDB and PostgreSQL fold unquoted names alike.
                if column.casefold().startswith(RESERVED_COLUMN_PREFIX):
                    file, line = loc.at("columns", column)
                    msg = (
                        f"source `{name}`: column `{column}`: names starting with "
                        f"`{RESERVED_COLUMN_PREFIX}` are reserved for the engine's daily cubes; "
                        "rename the column"
                    )
                    problems.append(Problem(file, line, msg))
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
            problem_at(
                catalog,
                kpi,
                role,
                "source",
                message=f"{role}: unknown source `{m.source}`"
                f"{did_you_mean(m.source, catalog.sources)}",
            )
            for kpi, role, m in all_measures(catalog)
            if m.source not in catalog.sources
        ]


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
