"""A file's bytes to text cells: CSV dialects and Parquet, one text row per data line.

Each row keeps the physical line it came from (line 1 is the header; a quoted value spanning
lines counts from the line where its row starts). Parquet rows are numbered from 1. Typing
the text is ``ingest.files.parsing``.
"""

from __future__ import annotations

import csv
import difflib
import io
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ingest.csv_dialect import (
    CsvDialect,
    decode,
    first_line,
    sep_line_delimiter,
    sniff_decimal,
    sniff_delimiter,
)
from ingest.files.declarations import FileColumn
from ingest.files.problems import RowProblem


@dataclass
class Cells:
    """The text of a file's needed columns, one row per data line (index = line number)."""

    text: pd.DataFrame | None  # None when the file cannot be used at all
    format: str
    decimal: str = "."
    day_first_dates: bool = False
    note: str = ""
    problems: list[RowProblem] = field(default_factory=list)


def csv_cells(data: bytes, path: str, schema: list[FileColumn]) -> Cells:
    names = [c.name for c in schema]
    try:
        text, encoding = decode(data)
    except UnicodeDecodeError as exc:
        return Cells(None, "csv", problems=[_file_problem(path, f"UTF-8 or Windows-1252 ({exc})")])
    if not text.strip():
        note = "empty file (0 bytes)" if not data else "empty file (no header)"
        return Cells(no_rows(names), f"csv {encoding}", note=note)

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
        return Cells(no_rows(names), dialect_shown.describe(), note=note, problems=problems)

    header_problems = _header_problems(header, names, path, header_line, delimiter)
    if header_problems:
        return Cells(None, dialect_shown.describe(), problems=problems + header_problems)

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
    return Cells(
        text_frame,
        dialect.describe(),
        decimal=decimal,
        # Day-first dates (31-01-2026) are only read from files written the European way.
        day_first_dates=dialect.comma_decimal or delimiter == ";",
        note="" if rows else "header only: no rows",
        problems=problems,
    )


def parquet_cells(data: bytes, path: str, schema: list[FileColumn]) -> Cells:
    """Parquet through DuckDB (already a dependency; no pyarrow). Values become text in
    canonical forms, then follow exactly the same typing and checks as CSV values."""
    import duckdb

    names = [c.name for c in schema]
    if not data:
        return Cells(no_rows(names), "parquet", note="empty file (0 bytes)")
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
                return Cells(None, "parquet", problems=header_problems)
            columns = ", ".join(f"CAST({_sql_name(n)} AS VARCHAR)" for n in names)
            rows = con.execute(f"SELECT {columns} FROM {source}").fetchall()
        except duckdb.Error as exc:
            return Cells(None, "parquet", problems=[_file_problem(path, f"Parquet ({exc})")])
        finally:
            con.close()
    positions = {n: i for i, n in enumerate(names)}
    text_frame = _text_frame(names, positions, range(1, len(rows) + 1), rows)
    return Cells(text_frame, "parquet", note="" if rows else "no rows")


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


def _blank_to_none(column: pd.Series) -> pd.Series:
    # Surrounding spaces are never data: a key with a trailing space would silently be a
    # different key, and "12 " would fail as a number.
    stripped = column.str.strip()
    return stripped.where(stripped.notna() & (stripped != ""), None).astype(object)


def _line(physical: list[str], line: int) -> str:
    return physical[line - 1] if 0 < line <= len(physical) else ""


def _file_problem(path: str, expected: str) -> RowProblem:
    return RowProblem(path, None, None, None, f"a readable file in {expected}")


def no_rows(names: list[str]) -> pd.DataFrame:
    index = pd.Index([], name="line", dtype=np.int64)
    return pd.DataFrame({n: pd.Series([], index=index, dtype=object) for n in names}, index=index)
