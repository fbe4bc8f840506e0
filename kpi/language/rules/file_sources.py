"""Definition rules for file sources: keys, ``required`` and ``allowed`` declarations."""

from __future__ import annotations

from kpi.language.catalog import Catalog
from kpi.language.expressions import did_you_mean
from kpi.language.problems import Problem
from kpi.language.rules.base import Rule


class FileSourceRule:
    """What the file loader relies on is declared consistently.

    - a file source (one with ``landing``) has a business key: a re-delivered file replaces
      rows by key, and without one every delivery would add rows;
    - every key column is a declared column;
    - a key column or the time column is not declared ``required: false`` (a row without
      them cannot be placed or replaced);
    - ``allowed`` is only declared on string columns, is not empty and lists each value once.
    """

    name = "file_source"

    def check(self, catalog: Catalog) -> list[Problem]:
        problems: list[Problem] = []
        for name, src in catalog.sources.items():
            loc = catalog.source_locations.get(name)

            def at(*path: str | int, message: str, loc=loc, name=name) -> None:
                file, line = loc.at(*path) if loc is not None else ("sources.yaml", None)
                problems.append(Problem(file, line, f"source `{name}`: {message}"))

            if src.landing is not None and not src.key:
                at(
                    "landing",
                    message="a file source needs a `key`: re-delivered files replace rows by "
                    "their key, without one every delivery adds its rows again",
                )
            for position, column in enumerate(src.key):
                if column not in src.columns:
                    hint = did_you_mean(column, list(src.columns))
                    at("key", position, message=f"key column `{column}` is not declared{hint}")
            for column, spec in src.columns.items():
                structural = column in src.key or column == src.time.column
                if spec.required is False and structural:
                    role = "a key column" if column in src.key else "the time column"
                    at(
                        "columns",
                        column,
                        "required",
                        message=f"`{column}` is {role} and cannot be optional",
                    )
                if spec.allowed is None:
                    continue
                if spec.type != "string":
                    at(
                        "columns",
                        column,
                        "allowed",
                        message=f"`{column}`: `allowed` values are for string columns, not "
                        f"{spec.type}; use a quality check (between) for ranges",
                    )
                if not spec.allowed:
                    at(
                        "columns",
                        column,
                        "allowed",
                        message=f"`{column}`: an empty `allowed` list refuses every value",
                    )
                repeated = sorted({v for v in spec.allowed if spec.allowed.count(v) > 1})
                if repeated:
                    at(
                        "columns",
                        column,
                        "allowed",
                        message=f"`{column}`: `allowed` lists {', '.join(repeated)} more than once",
                    )
        return problems


class FileSourceDeclarationRule(Rule):
    """File sources declare what a file must hold: a key, required and allowed values."""

    name = "file_source"

    def check(self, catalog: Catalog) -> list[Problem]:
        return FileSourceRule().check(catalog)
