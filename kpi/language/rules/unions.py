"""A union source (``union_of``) reads its members' tables as one view: each member must be
a stored source with the union's time column, and each union column must mean the same type
in every member that has it."""

from __future__ import annotations

from kpi.language.catalog import Catalog
from kpi.language.expressions import did_you_mean
from kpi.language.problems import Problem
from kpi.language.rules.base import Rule


class UnionSourceRule(Rule):
    name = "union_source"

    def check(self, catalog: Catalog) -> list[Problem]:
        problems: list[Problem] = []
        for name, src in catalog.sources.items():
            if not src.union_of:
                continue
            loc = catalog.source_locations[name]

            def add(*path: str | int, message: str, _loc=loc, _name=name) -> None:
                file, line = _loc.at(*path)
                problems.append(Problem(file, line, f"source `{_name}`: {message}"))

            if src.landing is not None or src.currency_conversion is not None or src.key:
                add(
                    "union_of",
                    message="a union source is a view over its members: it has no landing "
                    "folder, currency conversion or key of its own (declare them on the members)",
                )
            members = [m for m in src.union_of if m in catalog.sources]
            for i, member in enumerate(src.union_of):
                if member not in catalog.sources:
                    hint = did_you_mean(member, catalog.sources)
                    add("union_of", i, message=f"unknown member source `{member}`{hint}")
                elif member == name or catalog.sources[member].union_of:
                    add("union_of", i, message=f"member `{member}` is itself a union source")
            for member in members:
                spec = catalog.sources[member]
                if src.time.column not in spec.columns:
                    add(
                        "union_of",
                        src.union_of.index(member),
                        message=f"member `{member}` has no time column `{src.time.column}`",
                    )
                elif spec.time.type != src.time.type:
                    add(
                        "time",
                        message=f"time is a {src.time.type}, but member `{member}`'s is a "
                        f"{spec.time.type}",
                    )
            for column, col in src.columns.items():
                having = [m for m in members if column in catalog.sources[m].columns]
                if members and not having:
                    add(
                        "columns",
                        column,
                        message=f"no member has column `{column}` (members: {', '.join(members)})",
                    )
                for member in having:
                    theirs = catalog.sources[member].columns[column].type
                    if theirs != col.type:
                        add(
                            "columns",
                            column,
                            message=f"column `{column}` is a {col.type}, but a {theirs} in "
                            f"member `{member}`",
                        )
        return problems
