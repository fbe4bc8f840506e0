"""One landing file read and typed by its source's declaration; problems listed, never raised."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ingest.csv_dialect import parse_numbers
from ingest.files.declarations import FileColumn, empty_frame, file_schema
from ingest.files.problems import RowProblem
from ingest.files.reading import Cells, csv_cells, parquet_cells
from ingest.landing import content_sha256
from ingest.value_rules import (
    FINITE,
    Range,
    number_problems,
    spelled_not_finite,
    text_problems,
)
from kpi.language.models import SourceSpec


@dataclass
class ParsedFile:
    """One file read and typed. Bad values are null in ``frame`` and listed in ``problems``."""

    path: str
    sha256: str
    size: int
    frame: pd.DataFrame  # the file columns, typed, plus _source_file and _source_line
    problems: list[RowProblem]
    format: str  # how it was read, e.g. "csv delimiter ';' decimal ',' utf-8-sig CRLF"
    note: str = ""  # why it has no rows, when it has none: "empty file (0 bytes)", ...
    # False when the file as a whole cannot be read (bad header, encoding, broken quoting):
    # such problems fail the load even when row problems are quarantined.
    usable: bool = True

    @property
    def rows(self) -> int:
        return len(self.frame)


def parse_file(data: bytes, path: str, spec: SourceSpec) -> ParsedFile:
    """Read and type one file of ``spec``; problems are listed, never raised."""
    schema = file_schema(spec)
    if path.lower().endswith(".parquet"):
        cells = parquet_cells(data, path, schema)
    else:
        cells = csv_cells(data, path, schema)
    problems = list(cells.problems)
    if cells.text is None:
        frame = empty_frame(spec)
    else:
        frame, typing_problems = _typed(cells, schema, path)
        problems += typing_problems
        problems += _duplicate_keys(frame, spec, path)
        frame["_source_file"] = path
        frame["_source_line"] = frame.index.to_numpy(dtype=np.int64)
        frame = frame.reset_index(drop=True)
    note = cells.note
    if not note and frame.empty and not problems:
        note = "no rows"
    return ParsedFile(
        path=path,
        sha256=content_sha256(data),
        size=len(data),
        frame=frame,
        problems=problems,
        format=cells.format,
        note=note,
        usable=cells.text is not None
        # Broken quoting hides every later row, so it is not one bad row.
        and not any(p.expected.startswith("well-formed CSV") for p in problems),
    )


def _typed(cells: Cells, schema: list[FileColumn], path: str) -> tuple[pd.DataFrame, list]:
    text = cells.text
    assert text is not None
    out = pd.DataFrame(index=text.index)
    found: list[tuple[int, int, RowProblem]] = []
    for order, col in enumerate(schema):
        raw = text[col.name]
        # A value no type may hold (a NUL, 5 MB) is reported once and not kept: the row is
        # quarantined without it, and it is neither cast nor checked against the rules.
        checks = text_problems(raw)
        unfit = np.logical_or.reduce([mask for mask, _ in checks])
        kept = raw.where(~unfit, None)
        if col.type in ("integer", "number"):
            values, cast_checks = _cast_number(kept, col, cells.decimal)
        else:
            values, bad, expected = _cast(kept, col.type, cells.decimal, cells.day_first_dates)
            cast_checks = [(bad, expected)]
        out[col.name] = values
        for mask, expected in [*checks, *cast_checks]:
            for line in raw.index[mask]:
                why = expected if isinstance(expected, str) else expected[line]
                found.append((line, order, RowProblem(path, int(line), col.name, raw[line], why)))
        if col.required:
            for line in raw.index[(raw.isna().to_numpy() & ~unfit)]:
                why = f"a value: `{col.name}` is {col.why_required}"
                found.append((line, order, RowProblem(path, int(line), col.name, "", why)))
        if col.allowed is not None:
            outside = (kept.notna() & ~kept.isin(col.allowed)).to_numpy()
            for line in raw.index[outside]:
                value = kept[line]
                close = difflib.get_close_matches(value, col.allowed, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                expected = f"one of {', '.join(col.allowed)}{hint}"
                found.append((line, order, RowProblem(path, int(line), col.name, value, expected)))
    found.sort(key=lambda item: (item[0], item[1]))
    return out, [p for _, _, p in found]


_OFFSET = r"(?:[+-]\d\d(?::?\d\d)?|Z)$"
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False, "sand": True, "falsk": False}


def _cast(
    raw: pd.Series, kind: str, decimal: str, day_first: bool
) -> tuple[pd.Series, np.ndarray, str]:
    """Cast text to ``kind``: (values, mask of values that did not fit, what was expected)."""
    present = raw.notna()
    if kind == "string":
        return raw.astype(object), np.zeros(len(raw), dtype=bool), "text"
    if kind == "date":
        parsed = pd.to_datetime(raw, format="%Y-%m-%d", errors="coerce")
        expected = "a date as YYYY-MM-DD"
        if day_first:
            for fmt in ("%d-%m-%Y", "%d.%m.%Y"):
                parsed = parsed.fillna(
                    pd.to_datetime(raw.where(parsed.isna()), format=fmt, errors="coerce")
                )
            expected += " or DD-MM-YYYY"
        bad = present & parsed.isna()
        values = parsed.dt.date.astype(object).where(parsed.notna(), None)
        return values, bad.to_numpy(dtype=bool), expected
    if kind == "timestamp":
        values = pd.to_datetime(raw, format="ISO8601", utc=True, errors="coerce")
        has_offset = raw.str.contains(_OFFSET, regex=True, na=True).astype(bool)
        bad = present & (values.isna() | ~has_offset)
        values = values.where(~bad)
        expected = "a timestamp with a UTC offset, e.g. 2026-01-31T23:15:00+00:00"
        return values, bad.to_numpy(dtype=bool), expected
    if kind == "boolean":
        values = raw.str.lower().map(_BOOLEANS)
        bad = present & values.isna()
        return values.astype("boolean"), bad.to_numpy(dtype=bool), "true or false"
    raise ValueError(f"unknown column type {kind}")


def _cast_number(
    raw: pd.Series, col: FileColumn, decimal: str
) -> tuple[pd.Series, list[tuple[np.ndarray, str]]]:
    """Numbers of ``col``: (values, [(mask of values refused, what was expected)]).

    A value is refused for its spelling, for not being finite (``1e309``, ``inf``, ``nan``)
    or for lying outside the column's range; for an integer column also for a fraction.
    Refused values are null, so a whole number past int64 never reaches the int cast.
    """
    values, spelling = parse_numbers(raw, decimal)
    words = spelled_not_finite(raw)
    infinite, outside = number_problems(values, Range(col.low, col.high, col.range_declared))
    infinite = infinite | words
    badly_spelled = spelling.to_numpy(dtype=bool) & ~words
    if col.type == "integer":
        in_range = values.notna().to_numpy(dtype=bool) & ~infinite & ~outside
        fraction = in_range & (values.to_numpy(dtype=float, na_value=0.0) % 1 != 0)
        badly_spelled = badly_spelled | fraction
        expected = "a whole number like " + ("1.234" if decimal == "," else "1234")
    else:
        example = "1.234,56 (decimal comma)" if decimal == "," else "1234.56"
        expected = f"a number like {example}"
    refused = badly_spelled | infinite | outside
    values = values.where(~refused)
    if col.type == "integer":
        values = values.astype("Int64")  # safe: what is left is whole and within +-2**53
    checks = [
        (badly_spelled, expected),
        (infinite, FINITE),
        (outside, Range(col.low, col.high, col.range_declared).describe(col.name, col.type)),
    ]
    return values, checks


def _duplicate_keys(frame: pd.DataFrame, spec: SourceSpec, path: str) -> list[RowProblem]:
    """A key twice in one file is ambiguous: which row is right cannot be decided here."""
    key = [k for k in spec.key if k in frame.columns]
    if not key or frame.empty:
        return []
    keyed = frame[key]
    dup = (keyed.duplicated(keep=False) & keyed.notna().all(axis=1)).to_numpy()
    first: dict[tuple, int] = {}
    problems = []
    for line, *values in keyed[dup].itertuples(name=None):
        seen = first.setdefault(tuple(values), line)
        if seen != line:
            problems.append(
                RowProblem(
                    path,
                    int(line),
                    ", ".join(key),
                    ", ".join(str(v) for v in values),
                    f"one row per key; this key is already on line {seen}",
                )
            )
    return problems
