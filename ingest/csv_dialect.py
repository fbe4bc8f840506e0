"""How a CSV file was written: encoding, delimiter, decimal mark, line ends.

Marketing files come from many tools. Ad platforms export plain ``,``-separated files with
``.`` decimals. A Danish Excel "CSV" export separates fields with ``;`` because the comma is
the decimal mark (``1.234,56``), often starts with a UTF-8 byte order mark, ends lines with
CRLF, writes dates as ``31-01-2026`` and may start with Excel's ``sep=;`` hint line.

Detection never guesses from a single value: the delimiter is the one that splits the
header into the declared column names, and the decimal mark is decided from every value of
the file's number columns. A value that does not fit the detected dialect is reported, not
reinterpreted.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from ingest.value_rules import allow_long_csv_fields

# A long field is a row problem named by file, line and field (ingest.value_rules), not a
# csv.Error that stops the file, or a crash while the header is sniffed.
allow_long_csv_fields()

DELIMITERS = (",", ";", "\t", "|")
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),  # Excel's "Unicode text" export
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_LINE_END_NAMES = {"\r\n": "CRLF", "\n": "LF", "\r": "CR", "": "no line end"}
# Excel writes this first line when the user picks a delimiter; it is not the header.
_SEP_LINE = re.compile(r"\s*sep=(.)\s*")

# Numbers as written with a decimal point (1234.56, -0.5, 1e-07) or a decimal comma with
# optional dot thousands separators in groups of three (1.234,56, 1234,56, 1.234).
_DOT_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_COMMA_NUMBER = re.compile(r"[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+)(?:,\d+)?")
_COMMA_FRACTION = re.compile(r"[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+),\d+")
_DOT_GROUPING = re.compile(r"[+-]?\d{1,3}(?:\.\d{3})+")
_DOT_FRACTION = re.compile(r"[+-]?\d*\.\d+")


@dataclass(frozen=True)
class CsvDialect:
    """How one CSV file is written."""

    delimiter: str
    decimal: str  # "." or ","
    encoding: str
    line_end: str  # "\r\n", "\n", "\r" or "" (a file of one line without an end)
    sep_line: bool = False  # the file starts with Excel's "sep=X" line

    @property
    def comma_decimal(self) -> bool:
        return self.decimal == ","

    def describe(self) -> str:
        """A short human description, for logs and the load registry."""
        sep = ", sep= line" if self.sep_line else ""
        return (
            f"csv delimiter {self.delimiter!r} decimal {self.decimal!r} {self.encoding} "
            f"{_LINE_END_NAMES[self.line_end]}{sep}"
        )


def decode(data: bytes) -> tuple[str, str]:
    """The text of ``data`` and the encoding used.

    A byte order mark decides; otherwise UTF-8, and Windows-1252 when the bytes are not
    UTF-8 (what Excel writes for "CSV (semicolon separated)" on a Danish Windows). Raises
    UnicodeDecodeError when neither fits.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding), encoding
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("cp1252"), "cp1252"


def first_line(text: str) -> tuple[str, str]:
    """The first physical line of ``text`` and the line end that closes it."""
    match = re.search(r"\r\n|\r|\n", text)
    if match is None:
        return text, ""
    return text[: match.start()], match.group()


def sep_line_delimiter(line: str) -> str | None:
    """The delimiter named by Excel's ``sep=;`` first line, or None."""
    match = _SEP_LINE.fullmatch(line)
    return match.group(1) if match else None


def sniff_delimiter(header: str, expected: Sequence[str]) -> str:
    """The delimiter that splits ``header`` into the most expected column names.

    When no candidate finds a single expected name (a wrong file), the most frequent
    candidate is used so that the missing-column error shows the header split sensibly.
    """

    def score(delimiter: str) -> tuple[int, int]:
        names = next(csv.reader([header], delimiter=delimiter), [])
        found = sum(1 for n in names if n.strip() in expected)
        return found, header.count(delimiter)

    best = max(DELIMITERS, key=score)
    return best if score(best) != (0, 0) else ","


def sniff_decimal(cells: Iterable[str], delimiter: str) -> str:
    """The decimal mark of a file, from every value of its number columns.

    A value such as ``12,5`` or ``1.234,56`` is evidence for the comma, ``12.5`` for the
    point; ``1.234`` is ambiguous (thousands or decimals) and decides nothing. Without
    evidence the delimiter decides: ``;`` is what spreadsheets write where the comma is
    the decimal mark. With evidence for both the delimiter decides too, and the values
    written the other way are then reported as bad numbers.
    """
    comma = point = False
    for cell in cells:
        value = cell.strip()
        if not comma and _COMMA_FRACTION.fullmatch(value):
            comma = True
        elif not point and _DOT_FRACTION.fullmatch(value) and not _DOT_GROUPING.fullmatch(value):
            point = True
        if comma and point:
            break
    if comma != point:
        return "," if comma else "."
    return "," if delimiter == ";" else "."


def parse_numbers(text: pd.Series, decimal: str) -> tuple[pd.Series, pd.Series]:
    """Numbers from text written with ``decimal``; returns (floats, mask of bad values).

    Missing values (None) are neither numbers nor bad.
    """
    present = text.notna()
    pattern = _COMMA_NUMBER if decimal == "," else _DOT_NUMBER
    valid = text.where(present, "").str.fullmatch(pattern.pattern).fillna(False).astype(bool)
    bad = present & ~valid
    cleaned = text.where(valid)
    if decimal == ",":
        cleaned = cleaned.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    return pd.to_numeric(cleaned, errors="coerce"), bad
