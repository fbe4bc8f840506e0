"""Loading marketing files (CSV or Parquet) by their declared schema.

Every value is cast by the type declared in ``kpi_definitions/sources.yaml`` and checked
against the column's declaration: ``required`` (default: the key and time columns) and
``allowed`` values. Nothing is dropped silently: every value that does not fit becomes a
:class:`RowProblem` naming the file, the line, the field, the value and what was expected,
and a file with problems loads nothing (``read_source`` raises :class:`FileFormatError`
with the full list). Numbers must also be finite and within the column's range, and no
value may hold a NUL character or exceed 131,072 characters (``ingest.value_rules``).

CSV dialects are detected per file (``ingest.csv_dialect``): ``,`` or ``;`` (or tab)
delimiters, decimal point or comma, UTF-8 with or without BOM, Windows-1252, CRLF. Each row
keeps the file and the physical line it came from (line 1 is the header; a quoted value
spanning lines counts from the line where its row starts). Parquet rows are numbered from 1.
An empty file (0 bytes, or a header without rows) is not an error: it loads 0 rows and
says so in its ``note``.

Deliveries: files are identified by the SHA-256 of their bytes. A file with the same bytes
as another one (a re-delivery under another name) is recorded as a duplicate and not read
again. Rows are identified by the source's business key: when several files hold the same
key, the row of the latest delivery wins, so a corrected file replaces the rows it corrects;
a row that is quarantined (a parse problem, or ``row_problems`` of ``read_source``) never
wins: the earlier good row of its key stays until a valid one arrives.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import io
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from ingest.csv_dialect import (
    CsvDialect,
    decode,
    first_line,
    parse_numbers,
    sep_line_delimiter,
    sniff_decimal,
    sniff_delimiter,
)
from ingest.landing import SUPPORTED_SUFFIXES, Landing, LandingFile, content_sha256
from ingest.value_rules import (
    DEFAULT_LIMIT,
    FINITE,
    Range,
    column_range,
    number_problems,
    spelled_not_finite,
    text_problems,
)
from kpi.language.models import SourceSpec

__all__ = [
    "SUPPORTED_SUFFIXES",
    "FileColumn",
    "FileFormatError",
    "FileLoad",
    "ParsedFile",
    "RowProblem",
    "SourceBatch",
    "convert_currency",
    "date_range",
    "delivery_order",
    "file_columns",
    "file_schema",
    "local_dates",
    "parse_file",
    "read_source",
]

MAX_ERRORS_SHOWN = 20
_MAX_VALUE_SHOWN = 200


# ---------------------------------------------------------------------------------------------
# Problems
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowProblem:
    """One value, line or file that does not match the source's declaration.

    ``line`` is the physical line of a CSV file (1 = the header) or the 1-based row of a
    Parquet file; None when the problem is the whole file. ``field`` is None when the
    problem is the whole line (a wrong number of fields). A later quarantine can route the
    rows named here instead of failing the load.
    """

    file: str
    line: int | None
    field: str | None
    value: str | None
    expected: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        what = []
        if self.field is not None:
            what.append(f"field `{self.field}`")
        if self.value is not None:
            shown = self.value
            if len(shown) > _MAX_VALUE_SHOWN:
                shown = shown[:_MAX_VALUE_SHOWN] + "..."
            what.append(f"value {shown!r}")
        detail = f" {' '.join(what)}:" if what else ""
        return f"{where}:{detail} expected {self.expected}"


class FileFormatError(ValueError):
    """Files that do not match their declared schema; ``problems`` lists every one."""

    def __init__(self, problems: Sequence[RowProblem]):
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:MAX_ERRORS_SHOWN])
        more = len(self.problems) - MAX_ERRORS_SHOWN
        tail = f"\n  ... and {more} more" if more > 0 else ""
        files = sorted({p.file for p in self.problems})
        super().__init__(
            f"{len(self.problems)} problem(s) in {len(files)} landing file(s); the load "
            f"stopped and wrote nothing:\n{shown}{tail}"
        )


# ---------------------------------------------------------------------------------------------
# The columns a file must have
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileColumn:
    """A column as it appears in the files of a source, with its declared rules."""

    name: str
    type: str
    required: bool
    why_required: str  # for the error message: "part of the key", "the time column", ...
    allowed: tuple[str, ...] | None
    # Numbers only: the values that load (declared min/max, else the default range).
    low: float = -DEFAULT_LIMIT
    high: float = DEFAULT_LIMIT
    range_declared: bool = False


def file_columns(spec: SourceSpec) -> list[str]:
    """The columns a file of this source must have."""
    columns = list(spec.columns)
    conv = spec.currency_conversion
    if conv is not None:
        derived = {f"original_{conv.amount}", "original_currency", "fx_rate"}
        columns = [c for c in columns if c not in derived]
        if conv.currency_column not in columns:
            columns.append(conv.currency_column)
    return columns


def file_schema(spec: SourceSpec) -> list[FileColumn]:
    """Each file column with its type and rules.

    With currency conversion the file's currency column follows the declaration of
    ``original_currency`` (its ``allowed`` codes) and is required: money without a currency
    cannot be converted. The file's amount is a number in that currency.
    """
    conv = spec.currency_conversion
    out = []
    for name in file_columns(spec):
        is_currency = conv is not None and name == conv.currency_column
        declared = spec.columns.get("original_currency" if is_currency else name)
        if declared is None:
            declared = spec.columns.get(name)
        kind = declared.type if declared is not None else "string"
        if conv is not None and name == conv.amount:
            kind = "number"
        if declared is not None and declared.required is not None:
            required, why = declared.required, "declared required"
        elif name == spec.time.column:
            required, why = True, "the time column"
        elif name in spec.key:
            required, why = True, f"part of the key ({', '.join(spec.key)})"
        elif is_currency:
            required, why = True, f"the currency of `{conv.amount}`"
        else:
            required, why = False, ""
        allowed = declared.allowed if declared is not None else None
        low = declared.min if declared is not None else None
        high = declared.max if declared is not None else None
        rng = column_range(kind, low, high)
        out.append(FileColumn(name, kind, required, why, allowed, rng.low, rng.high, rng.declared))
    return out


# ---------------------------------------------------------------------------------------------
# One file
# ---------------------------------------------------------------------------------------------


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
        cells = _parquet_cells(data, path, schema)
    else:
        cells = _csv_cells(data, path, schema)
    problems = list(cells.problems)
    if cells.text is None:
        frame = _empty(spec)
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


@dataclass
class _Cells:
    """The text of a file's needed columns, one row per data line (index = line number)."""

    text: pd.DataFrame | None  # None when the file cannot be used at all
    format: str
    decimal: str = "."
    day_first_dates: bool = False
    note: str = ""
    problems: list[RowProblem] = field(default_factory=list)


def _csv_cells(data: bytes, path: str, schema: list[FileColumn]) -> _Cells:
    names = [c.name for c in schema]
    try:
        text, encoding = decode(data)
    except UnicodeDecodeError as exc:
        return _Cells(None, "csv", problems=[_file_problem(path, f"UTF-8 or Windows-1252 ({exc})")])
    if not text.strip():
        note = "empty file (0 bytes)" if not data else "empty file (no header)"
        return _Cells(_no_rows(names), f"csv {encoding}", note=note)

    physical = re.split(r"\r\n|\r|\n", text)
    head, line_end = first_line(text)
    body, offset = text, 0
    delimiter = sep_line_delimiter(head)
    if delimiter is not None:
        body, offset = text[len(head) + len(line_end) :], 1
    else:
        delimiter = sniff_delimiter(next(ln for ln in physical if ln.strip()), names)

    problems: list[RowProblem] = []
    header: list[str] | None = None
    header_line = 1
    records: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=delimiter, strict=True)
    while True:
        start = reader.line_num + 1 + offset
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # Broken quoting makes the rest of the file unreadable: report where it starts.
            line = reader.line_num + offset
            problems.append(
                RowProblem(path, line, None, _line(physical, line), f"well-formed CSV ({exc})")
            )
            break
        if header is None:
            if any(c.strip() for c in cells):
                header, header_line = [c.strip() for c in cells], start
            continue
        records.append((start, cells))

    dialect_shown = CsvDialect(delimiter, ".", encoding, line_end, offset == 1)
    if header is None:
        note = "empty file (no header)"
        return _Cells(_no_rows(names), dialect_shown.describe(), note=note, problems=problems)

    header_problems = _header_problems(header, names, path, header_line, delimiter)
    if header_problems:
        return _Cells(None, dialect_shown.describe(), problems=problems + header_problems)

    width = len(header)
    lines: list[int] = []
    rows: list[list[str]] = []
    for line, cells in records:
        if not any(c.strip() for c in cells):
            continue  # blank lines and Excel's ";;;;" rows carry no data
        if len(cells) != width:
            problems.append(
                RowProblem(
                    path,
                    line,
                    None,
                    _line(physical, line),
                    f"{width} fields separated by {delimiter!r} as in the header, "
                    f"found {len(cells)}",
                )
            )
            continue
        lines.append(line)
        rows.append(cells)

    text_frame = _text_frame(names, {n: header.index(n) for n in names}, lines, rows)
    numeric = [c.name for c in schema if c.type in ("integer", "number")]
    decimal = sniff_decimal((v for n in numeric for v in text_frame[n] if v is not None), delimiter)
    dialect = CsvDialect(delimiter, decimal, encoding, line_end, offset == 1)
    return _Cells(
        text_frame,
        dialect.describe(),
        decimal=decimal,
        # Day-first dates (31-01-2026) are only read from files written the European way.
        day_first_dates=dialect.comma_decimal or delimiter == ";",
        note="" if rows else "header only: no rows",
        problems=problems,
    )


def _parquet_cells(data: bytes, path: str, schema: list[FileColumn]) -> _Cells:
    """Parquet through DuckDB (already a dependency; no pyarrow). Values become text in
    canonical forms, then follow exactly the same typing and checks as CSV values."""
    import duckdb

    names = [c.name for c in schema]
    if not data:
        return _Cells(_no_rows(names), "parquet", note="empty file (0 bytes)")
    with tempfile.TemporaryDirectory() as folder:
        local = os.path.join(folder, "file.parquet")
        Path(local).write_bytes(data)
        con = duckdb.connect()
        try:
            # Timestamps with a zone are shown in UTC with their offset, like '...+00'.
            con.execute("SET TimeZone = 'UTC'")
            source = f"read_parquet({_sql_string(local)})"
            found = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
            header_problems = _header_problems(found, names, path, None, None)
            if header_problems:
                return _Cells(None, "parquet", problems=header_problems)
            columns = ", ".join(f"CAST({_sql_name(n)} AS VARCHAR)" for n in names)
            rows = con.execute(f"SELECT {columns} FROM {source}").fetchall()
        except duckdb.Error as exc:
            return _Cells(None, "parquet", problems=[_file_problem(path, f"Parquet ({exc})")])
        finally:
            con.close()
    positions = {n: i for i, n in enumerate(names)}
    text_frame = _text_frame(names, positions, range(1, len(rows) + 1), rows)
    return _Cells(text_frame, "parquet", note="" if rows else "no rows")


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sql_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _text_frame(
    names: list[str], positions: dict[str, int], lines: Sequence[int], rows: Sequence[Sequence]
) -> pd.DataFrame:
    """One text column per needed name, indexed by line number; blanks become None."""
    index = pd.Index(lines, name="line", dtype=np.int64)
    columns = {
        n: pd.Series([r[positions[n]] for r in rows], index=index, dtype=object) for n in names
    }
    return pd.DataFrame(columns, index=index).apply(_blank_to_none)


def _header_problems(
    header: list[str], names: list[str], path: str, line: int | None, delimiter: str | None
) -> list[RowProblem]:
    problems = []
    for name in names:
        count = header.count(name)
        if count > 1:
            problems.append(RowProblem(path, line, name, name, "each column name once"))
        elif count == 0:
            hint = difflib.get_close_matches(name, header, n=1, cutoff=0.6)
            sep = f" separated by {delimiter!r}" if delimiter else ""
            problems.append(
                RowProblem(
                    path,
                    line,
                    name,
                    None,
                    f"a column `{name}`{sep}; found {_shown_header(header)}"
                    + (f"; did you mean {hint[0]!r}?" if hint else ""),
                )
            )
    return problems


def _shown_header(header: list[str], names: int = 30, chars: int = 60) -> str:
    """The header as found, cut to a readable size (a 5 MB line is not a header to print)."""
    shown = [repr(n if len(n) <= chars else n[:chars] + "...") for n in header[:names]]
    more = f", ... ({len(header) - names} more)" if len(header) > names else ""
    return ", ".join(shown) + more


def _typed(cells: _Cells, schema: list[FileColumn], path: str) -> tuple[pd.DataFrame, list]:
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


def _blank_to_none(column: pd.Series) -> pd.Series:
    # Surrounding spaces are never data: a key with a trailing space would silently be a
    # different key, and "12 " would fail as a number.
    stripped = column.str.strip()
    return stripped.where(stripped.notna() & (stripped != ""), None).astype(object)


def _line(physical: list[str], line: int) -> str:
    return physical[line - 1] if 0 < line <= len(physical) else ""


def _file_problem(path: str, expected: str) -> RowProblem:
    return RowProblem(path, None, None, None, f"a readable file in {expected}")


def _no_rows(names: list[str]) -> pd.DataFrame:
    index = pd.Index([], name="line", dtype=np.int64)
    return pd.DataFrame({n: pd.Series([], index=index, dtype=object) for n in names}, index=index)


def _empty(spec: SourceSpec) -> pd.DataFrame:
    return pd.DataFrame(columns=[*file_columns(spec), "_source_file", "_source_line"])


# ---------------------------------------------------------------------------------------------
# All files of a source
# ---------------------------------------------------------------------------------------------


@dataclass
class FileLoad:
    """What a load did with one landing file (one row of the load registry)."""

    path: str
    sha256: str
    size: int
    status: str  # "read", "empty" (no rows) or "duplicate" (same bytes as duplicate_of)
    rows: int
    first_date: dt.date | None
    last_date: dt.date | None
    format: str
    note: str = ""
    duplicate_of: str | None = None
    rows_superseded: int = 0  # rows replaced by a later delivery of the same key


@dataclass
class SourceBatch:
    """Every landing file of a source, read, with one row per business key."""

    frame: pd.DataFrame
    files: list[FileLoad]
    # With ``strict=False``: the rows (or bare lines) that had problems, the file columns plus
    # _source_file, _source_line, _problem (why) and _file_day (the file's first date, for
    # lines whose own date could not be read). Empty otherwise.
    rejected: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def rows_superseded(self) -> int:
        return sum(f.rows_superseded for f in self.files)


def delivery_order(
    files: Sequence[tuple[LandingFile, str]],
    first_loaded: Mapping[str, dt.datetime] | None = None,
) -> list[tuple[LandingFile, str]]:
    """``(file, sha256)`` pairs, earliest delivery first.

    A delivery's time is when its content was first loaded (from the load registry), so
    copying or touching an old file does not make it newer; content never loaded comes
    last. Ties (a first load, a registry lost) fall back to the modification time, then
    to the path.
    """
    known = first_loaded or {}
    never = dt.datetime.max.replace(tzinfo=dt.UTC)

    def order(item: tuple[LandingFile, str]) -> tuple:
        file, sha = item
        return (known.get(sha, never), file.modified or 0.0, file.path)

    return sorted(files, key=order)


def read_source(
    landing: Landing,
    spec: SourceSpec,
    time_zone: str,
    first_loaded: Mapping[str, dt.datetime] | None = None,
    strict: bool = True,
    row_problems: Callable[[pd.DataFrame], pd.Series] | None = None,
) -> SourceBatch:
    """Read every landing file of ``spec``: one row per business key, latest delivery wins.

    Raises FileFormatError listing every problem of every file; then nothing is loaded.
    With ``strict=False`` only unusable files raise; rows with problems are returned in
    ``SourceBatch.rejected`` (for quarantine) and the other rows load. ``row_problems``
    (with ``strict=False``) gives each row's reason to be quarantined, or None: such rows
    join ``rejected`` before keys are deduplicated, so a bad re-delivery never supersedes
    the good row of its key (the previous value stays until a valid one arrives).
    """
    listed = landing.files(spec.landing)
    # One file's bytes in memory at a time; identical bytes are parsed once.
    by_sha: dict[str, ParsedFile] = {}
    pairs = []
    for file in listed:
        data = landing.read(file)
        sha = content_sha256(data)
        pairs.append((file, sha))
        if sha not in by_sha:
            by_sha[sha] = parse_file(data, file.path, spec)
    ordered = delivery_order(pairs, first_loaded)

    canonical: dict[str, str] = {}  # sha -> path of the first delivery with these bytes
    parsed: list[ParsedFile] = []
    loads: dict[str, FileLoad] = {}
    for file, sha in ordered:
        if sha in canonical:
            continue
        canonical[sha] = file.path
        p = by_sha[sha]
        if p.path != file.path:  # parsed under the name of a later copy
            p.frame["_source_file"] = file.path
            p.problems = [replace(problem, file=file.path) for problem in p.problems]
            p.path = file.path
        parsed.append(p)
        first, last = date_range(p.frame, spec, time_zone)
        status = "read" if p.rows else "empty"
        loads[file.path] = FileLoad(
            file.path, sha, p.size, status, p.rows, first, last, p.format, p.note
        )
    for file, sha in ordered:
        if file.path not in loads:
            original = loads[canonical[sha]]
            loads[file.path] = FileLoad(
                file.path,
                sha,
                file.size,
                "duplicate",
                original.rows,
                original.first_date,
                original.last_date,
                original.format,
                note=f"same bytes as {original.path}; not read again",
                duplicate_of=original.path,
            )

    problems = [problem for p in parsed for problem in p.problems]
    rejected = pd.DataFrame()
    if problems and strict:
        raise FileFormatError(problems)
    if problems:
        # Every problem of an unusable file, and any problem not tied to a line (each once).
        structural = [pr for p in parsed for pr in p.problems if not p.usable or pr.line is None]
        if structural:
            raise FileFormatError(structural)
        rejected = _reject_problem_rows(parsed, loads)

    frames = [p.frame for p in parsed if not p.frame.empty]
    if not frames:
        return SourceBatch(_empty(spec), [loads[f.path] for f in listed], rejected)
    combined = pd.concat(frames, ignore_index=True)  # earliest delivery first
    key = [k for k in spec.key if k in combined.columns]
    if key and row_problems is not None and not strict:
        combined, rejected = _reject_invalid_rows(combined, key, row_problems, rejected, loads)
    if key:
        superseded = combined.duplicated(subset=key, keep="last")
        for path, count in combined.loc[superseded, "_source_file"].value_counts().items():
            loads[str(path)].rows_superseded += int(count)
        combined = combined[~superseded].reset_index(drop=True)
    return SourceBatch(combined, [loads[f.path] for f in listed], rejected)


def _reject_invalid_rows(
    combined: pd.DataFrame,
    key: list[str],
    row_problems: Callable[[pd.DataFrame], pd.Series],
    rejected: pd.DataFrame,
    loads: dict[str, FileLoad],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Take the bad deliveries that would displace a key's last good row out of ``combined``.

    Only rows whose key is in several deliveries are judged here (a row alone with its key
    supersedes nothing and is judged, like every row, when it is written): validating
    every row of every file on each run would cost seconds on a long history.

    Of the bad rows delivered after a key's last good row, the latest is quarantined (it is
    what the sender means now) and the earlier ones are superseded by it; a bad row older
    than the good row is superseded by it, as any older delivery is. So a key never has more
    than one quarantined row here, and a later replay of it cannot load two.
    """
    contested = combined.duplicated(subset=key, keep=False).to_numpy(dtype=bool)
    if not contested.any():
        return combined, rejected
    reasons = pd.Series(None, index=combined.index, dtype=object)
    reasons[contested] = row_problems(combined[contested].reset_index(drop=True)).to_numpy()
    bad_mask = reasons.notna().to_numpy(dtype=bool)
    if not bad_mask.any():
        return combined, rejected
    group = combined.groupby(key, sort=False, dropna=False).ngroup().to_numpy()
    order = np.arange(len(combined))  # earliest delivery first
    last_good = pd.Series(np.where(bad_mask, -1, order)).groupby(group).transform("max")
    last_row = pd.Series(order).groupby(group).transform("max")
    trailing = bad_mask & (order > last_good.to_numpy())  # bad, after the last good row
    bad_mask = trailing & (order == last_row.to_numpy())  # the latest of those: quarantined
    dropped = combined.loc[trailing & ~bad_mask, "_source_file"]
    for path, count in dropped.value_counts().items():  # superseded by the quarantined row
        loads[str(path)].rows_superseded += int(count)
    keep = ~trailing
    if not bad_mask.any():
        return combined[keep].reset_index(drop=True), rejected
    bad = combined[bad_mask].copy()
    bad["_problem"] = list(reasons[bad_mask])
    bad["_file_day"] = [loads[str(f)].first_date for f in bad["_source_file"]]
    moved = pd.concat([rejected, bad], ignore_index=True) if not rejected.empty else bad
    return combined[keep].reset_index(drop=True), moved.reset_index(drop=True)


def _reject_problem_rows(parsed: list[ParsedFile], loads: dict[str, FileLoad]) -> pd.DataFrame:
    """Take the rows named by problems out of each file's frame (in place) and return them.

    They are removed before keys are deduplicated so that a row with an unreadable key can
    never supersede, or be superseded by, another row. Lines that never became a row (a
    wrong number of fields) are returned with only their file and line.
    """
    out = []
    for p in parsed:
        reasons: dict[int, list[str]] = {}
        for problem in p.problems:
            reasons.setdefault(int(problem.line), []).append(f"parse: {problem}")
        if not reasons:
            continue
        in_frame = p.frame["_source_line"].isin(list(reasons)) if not p.frame.empty else None
        bad = p.frame[in_frame] if in_frame is not None else p.frame.iloc[0:0]
        if in_frame is not None:
            p.frame = p.frame[~in_frame].reset_index(drop=True)
        missing = sorted(set(reasons) - set(bad["_source_line"].astype(int)))
        bare = pd.DataFrame({"_source_file": p.path, "_source_line": missing})
        rows = pd.concat([bad, bare], ignore_index=True) if missing else bad.copy()
        rows["_problem"] = [" | ".join(reasons[int(n)]) for n in rows["_source_line"]]
        rows["_file_day"] = loads[p.path].first_date
        out.append(rows)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


# ---------------------------------------------------------------------------------------------
# Dates and money
# ---------------------------------------------------------------------------------------------


def local_dates(frame: pd.DataFrame, spec: SourceSpec, time_zone: str) -> pd.Series:
    """The reporting-zone calendar date of each row."""
    values = frame[spec.time.column]
    if spec.time.type == "date":
        return values
    return values.dt.tz_convert(ZoneInfo(time_zone)).dt.date


def date_range(
    frame: pd.DataFrame, spec: SourceSpec, time_zone: str
) -> tuple[dt.date | None, dt.date | None]:
    """The first and last reporting-zone date of the rows (None, None without any)."""
    if frame.empty:
        return None, None
    days = local_dates(frame, spec, time_zone).dropna()
    if days.empty:
        return None, None
    return min(days), max(days)


def convert_currency(
    frame: pd.DataFrame,
    spec: SourceSpec,
    rates: pd.DataFrame,
    reporting_currency: str,
    time_zone: str = "UTC",
    problems_out: list[RowProblem] | None = None,
) -> pd.DataFrame:
    """Convert the source's money column to the reporting currency with daily rates.

    ``rates`` has columns date, currency, rate (reporting currency per unit). A row whose
    currency has no rate for its (reporting-zone) date stops the load with a RowProblem
    naming the file, line, currency and date; given ``problems_out`` the problems are
    appended there instead (the row keeps a null rate) so the caller can quarantine them.
    """
    conv = spec.currency_conversion
    if conv is None or frame.empty:
        return frame
    out = frame.rename(columns={conv.amount: f"original_{conv.amount}"})
    out = out.rename(columns={conv.currency_column: "original_currency"})
    days = local_dates(frame, spec, time_zone)
    lookup = {(r.date, r.currency): float(r.rate) for r in rates.itertuples(index=False)}
    fx: list[float | None] = []
    problems = []
    for day, cur, file, line in zip(
        days, out["original_currency"], out["_source_file"], out["_source_line"], strict=True
    ):
        if cur == reporting_currency:
            fx.append(1.0)
        elif (day, cur) in lookup:
            fx.append(lookup[(day, cur)])
        else:
            fx.append(None)
            problems.append(
                RowProblem(
                    str(file),
                    int(line),
                    conv.currency_column,
                    str(cur),
                    f"an exchange rate {cur} -> {reporting_currency} for {day} in the "
                    "fx_rates source (none is loaded for that day)",
                )
            )
    if problems and problems_out is None:
        raise FileFormatError(problems)
    if problems_out is not None:
        problems_out.extend(problems)
    out["fx_rate"] = fx
    out[conv.amount] = (out[f"original_{conv.amount}"] * out["fx_rate"]).round(6)
    return out
