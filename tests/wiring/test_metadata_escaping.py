"""Metadata tables built from data and file names (issue 13, item 26): a ``|`` or a line
break in a landing file's name or in a value never adds a cell or a row."""

from __future__ import annotations

import datetime as dt

from dagster import TableMetadataValue

from assets.files.sources import _failure, _file_summary
from ingest.files import FileFormatError, FileLoad, RowProblem

PIPE_NAME = "landing/ad_spend/spend|march.csv"


def test_the_files_table_keeps_a_pipe_in_a_file_name_in_its_cell():
    files = [
        FileLoad(
            PIPE_NAME,
            "ab" * 32,
            120,
            "read",
            3,
            dt.date(2026, 1, 5),
            dt.date(2026, 1, 6),
            "csv delimiter ',' decimal '.' utf-8 LF",
        ),
        FileLoad(
            "landing/ad_spend/b.csv",
            "cd" * 32,
            0,
            "empty",
            0,
            None,
            None,
            "csv",
            note="empty file (0 bytes)",
        ),
    ]
    value = _file_summary(files)
    assert isinstance(value, TableMetadataValue)
    assert [c.name for c in value.schema.columns] == [
        "file",
        "status",
        "rows",
        "dates",
        "superseded",
        "format",
        "note",
    ]
    rows = [r.data for r in value.records]
    assert rows == [
        {
            "file": PIPE_NAME,
            "status": "read",
            "rows": 3,
            "dates": "2026-01-05..2026-01-06",
            "superseded": 0,
            "format": "csv delimiter ',' decimal '.' utf-8 LF",
            "note": "",
        },
        {
            "file": "landing/ad_spend/b.csv",
            "status": "empty",
            "rows": 0,
            "dates": "..",
            "superseded": 0,
            "format": "csv",
            "note": "empty file (0 bytes)",
        },
    ]


def test_the_problems_of_a_failed_load_are_a_table_with_the_value_cut():
    problems = [
        RowProblem(PIPE_NAME, 2, "campaign", "a|b\nc", "one of x, y"),
        RowProblem(PIPE_NAME, 3, "campaign", "x" * 5000, "a value of at most 131072 characters"),
        RowProblem(PIPE_NAME, None, None, None, "a readable file"),
    ]
    failure = _failure("ad_spend", FileFormatError(problems))
    table = failure.metadata["problems"]
    assert isinstance(table, TableMetadataValue)
    rows = [r.data for r in table.records]
    assert rows[0] == {
        "file": PIPE_NAME,
        "line": 2,
        "field": "campaign",
        "value": "a|b\nc",
        "expected": "one of x, y",
    }
    assert rows[1]["value"] == "x" * 200
    assert rows[2] == {
        "file": PIPE_NAME,
        "line": "",
        "field": "",
        "value": "",
        "expected": "a readable file",
    }
