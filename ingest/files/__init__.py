"""Reading marketing files (CSV or Parquet) by their declared schema.

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

The package, by job: ``problems`` (RowProblem, FileFormatError), ``declarations`` (the
columns a file must have), ``reading`` (bytes to text cells), ``parsing`` (one file typed),
``deliveries`` (every file of a source, re-deliveries and duplicates), ``dates``,
``currency``, ``reach`` (the days a run reads) and ``loading`` (the load of one window).
"""

from ingest.files.currency import convert_currency
from ingest.files.dates import date_range, local_dates
from ingest.files.declarations import FileColumn, file_columns, file_schema
from ingest.files.deliveries import FileLoad, SourceBatch, delivery_order, read_source
from ingest.files.parsing import ParsedFile, parse_file
from ingest.files.problems import FileFormatError, RowProblem
from ingest.landing import SUPPORTED_SUFFIXES

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
