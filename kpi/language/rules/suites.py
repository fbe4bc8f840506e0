"""`kpi validate` checks of the quality suites in ``<definitions>/quality/*.yaml``.

kpi/ must not import quality/ (imports go down), so the expectation vocabulary is kept here
as data: each type and the parameters it takes. ``quality.suites`` parses the same files at
run time with its own models; tests/kpi/language/test_suite_validation.py checks both agree.
Checked here, with file:line and a did-you-mean: the type is known, every parameter is one
the type takes, and every column named exists in the source the suite is for
(``sources.yaml``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from pathlib import Path

from kpi.language.catalog import Catalog
from kpi.language.expressions import did_you_mean
from kpi.language.problems import Problem
from kpi.language.yaml_source import YamlSyntaxError, load_located_yaml

COMMON = ("type", "severity", "row_level", "name")
# type -> the parameters it takes besides COMMON.
EXPECTATIONS: dict[str, tuple[str, ...]] = {
    "between": ("column", "min", "max"),
    "column_type": ("column", "dtype"),
    "columns_present": ("columns",),
    "date_in_partition": ("column",),
    "freshness": ("column", "max_lag_days"),
    "in_set": ("column", "values"),
    "not_null": ("column",),
    "row_count": ("min",),
    "unique": ("column", "columns"),
    "volume": ("column", "max_drop", "lookback_days", "period_days", "same_weekday"),
}


def _integer(low: int, high: int | None = None) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and value >= low and (high is None or value <= high):
            return None
        return f"a whole number from {low} to {high}" if high else f"a whole number >= {low}"

    return check


def _fraction(value: object) -> str | None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return None if number and 0 < value < 1 else "a number between 0 and 1 (exclusive)"


def _boolean(value: object) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def _name(value: object) -> str | None:
    return None if isinstance(value, str) and value else "a column name"


def _names(value: object) -> str | None:
    ok = isinstance(value, list) and value and all(isinstance(v, str) and v for v in value)
    return None if ok else "a non-empty list of column names"


def _one_of(*allowed: str) -> Callable[[object], str | None]:
    return lambda value: None if value in allowed else f"one of {', '.join(allowed)}"


def _values(value: object) -> str | None:
    ok = isinstance(value, list) and value and all(isinstance(v, str | int | float) for v in value)
    return None if ok else "a non-empty list of strings, numbers or booleans"


def _bound(value: object) -> str | None:
    if isinstance(value, int | float | dt.date) and not isinstance(value, bool):
        return None if not isinstance(value, float) or math.isfinite(value) else "finite"
    if isinstance(value, str):
        for parse in (dt.date.fromisoformat, dt.datetime.fromisoformat):
            try:
                parse(value)
                return None
            except ValueError:
                pass
    return "a number or an ISO date/datetime"


# What each parameter's value must be, as quality.suites checks it at run time (the same
# rules, kept here as data because kpi/ must not import quality/; a test checks they agree).
VALUES: dict[str, Callable[[object], str | None]] = {
    "severity": _one_of("error", "warn"),
    "row_level": _boolean,
    "column": _name,
    "columns": _names,
    "dtype": _one_of("integer", "number", "string", "date", "boolean"),
    "values": _values,
    "min": _bound,
    "max": _bound,
    "max_lag_days": _integer(0),
    "max_drop": _fraction,
    "lookback_days": _integer(7),
    "period_days": _integer(1, 28),
    "same_weekday": _boolean,
}
# Where a type reads a parameter differently.
TYPE_VALUES: dict[tuple[str, str], Callable[[object], str | None]] = {
    ("row_count", "min"): _integer(0),
}


def _ordered(raw: dict) -> str | None:
    """``between`` needs a bound, and ``min`` not above ``max``."""
    low, high = raw.get("min"), raw.get("max")
    if low is None and high is None:
        return "`between` needs `min` and/or `max`"
    if low is not None and high is not None and _bound(low) is None and _bound(high) is None:
        try:
            if _as_bound(low) > _as_bound(high):
                return f"min {low!r} is greater than max {high!r}"
        except TypeError:
            return f"min {low!r} and max {high!r} are not comparable"
    return None


def _as_bound(value: object) -> object:
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return dt.datetime.fromisoformat(value)
    return value


def suite_problems(folder: Path, catalog: Catalog) -> list[Problem]:
    """Every problem of every suite file in ``folder/quality``."""
    problems: list[Problem] = []
    for path in sorted((folder / "quality").glob("*.yaml")):
        try:
            doc = load_located_yaml(path)
        except YamlSyntaxError as exc:
            problems.append(Problem(str(path), exc.line, exc.problem))
            continue
        data = doc.data if isinstance(doc.data, dict) else {}
        name = data.get("suite")
        source = catalog.sources.get(name) if isinstance(name, str) else None
        if source is None:
            hint = did_you_mean(str(name), catalog.sources)
            problems.append(
                Problem(
                    str(path),
                    doc.line_of(("suite",)),
                    f"suite: `{name}` is not a source in sources.yaml{hint}",
                )
            )
        columns = list(source.columns) if source is not None else []
        items = data.get("expectations")
        for i, raw in enumerate(items if isinstance(items, list) else []):

            def at(*field: str | int, message: str, i: int = i, doc=doc, path=path) -> None:
                line = doc.line_of(("expectations", i, *field))
                problems.append(Problem(str(path), line, f"expectations[{i}]{message}"))

            if not isinstance(raw, dict):
                at(message=": expected a mapping like {type: not_null, column: x}")
                continue
            kind = raw.get("type")
            if kind not in EXPECTATIONS:
                at(
                    "type",
                    message=f".type: unknown type `{kind}`{did_you_mean(str(kind), EXPECTATIONS)}"
                    f"; expected one of {', '.join(sorted(EXPECTATIONS))}",
                )
                continue
            allowed = (*COMMON, *EXPECTATIONS[kind])
            for key in raw:
                if key not in allowed:
                    at(
                        key,
                        message=f".{key}: `{kind}` takes no `{key}`"
                        f"{did_you_mean(str(key), allowed)}; expected only: {', '.join(allowed)}",
                    )
            for key, value in raw.items():
                check = TYPE_VALUES.get((kind, key)) or VALUES.get(key)
                expected = check(value) if check is not None and key in allowed else None
                if expected is not None:
                    at(key, message=f".{key}: `{value!r}` is not valid; expected {expected}")
            # A misspelt bound (`minimum:`) is the problem already listed, not a missing one.
            misspelt = any(key not in allowed for key in raw)
            if kind == "between" and not misspelt and (order := _ordered(raw)) is not None:
                at(message=f": {order}")
            named = [raw["column"]] if isinstance(raw.get("column"), str) else []
            named += raw["columns"] if isinstance(raw.get("columns"), list) else []
            for column in named:
                if source is not None and column not in columns:
                    at(
                        "columns" if column not in [raw.get("column")] else "column",
                        message=f": unknown column `{column}` in source `{name}`"
                        f"{did_you_mean(str(column), columns)}",
                    )
    return problems
