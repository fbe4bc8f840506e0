"""`kpi validate` checks of the quality suites in ``<definitions>/quality/*.yaml``.

kpi/ must not import quality/ (imports go down), so the expectation vocabulary is kept here
as data: each type and the parameters it takes. ``quality.suites`` parses the same files at
run time with its own models; tests/kpi/language/test_suite_validation.py checks both agree.
Checked here, with file:line and a did-you-mean: the type is known, every parameter is one
the type takes, and every column named exists in the source the suite is for
(``sources.yaml``).
"""

from __future__ import annotations

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
            named = [raw["column"]] if "column" in raw else []
            named += raw["columns"] if isinstance(raw.get("columns"), list) else []
            for column in named:
                if source is not None and column not in columns:
                    at(
                        "columns" if column not in [raw.get("column")] else "column",
                        message=f": unknown column `{column}` in source `{name}`"
                        f"{did_you_mean(str(column), columns)}",
                    )
    return problems
