"""Metadata every asset attaches: row counts, column schema and a preview."""

from __future__ import annotations

import enum
import math
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from kpi.warehouse.connection import Warehouse


def table_schema(table: sa.Table) -> TableSchema:
    return TableSchema(
        columns=[
            TableColumn(c.name, str(c.type).lower(), description=c.comment or None)
            for c in table.columns
        ]
    )


def table_metadata(
    wh: Warehouse,
    table: sa.Table,
    where: Any = None,
    preview_rows: int = 10,
    order_by: list | None = None,
) -> dict[str, Any]:
    """Standard metadata for a warehouse table (or the slice ``where`` selects)."""
    query = sa.select(table)
    if where is not None:
        query = query.where(where)
    if order_by:
        query = query.order_by(*order_by)
    preview = wh.read(query.limit(preview_rows))
    return {
        "dagster/row_count": wh.count(table),
        "dagster/column_schema": table_schema(table),
        "dagster/table_name": table.fullname,
        "rows_in_slice": wh.count(table, where) if where is not None else wh.count(table),
        "preview": metadata_table(preview),
    }


def metadata_table(frame: pd.DataFrame, max_rows: int = 200) -> MetadataValue:
    """``frame`` as a Dagster table: values from data and file names (a ``|``, a line
    break) are cells, never markdown that could split a row. Cells are text, numbers or
    booleans; anything else (dates, timestamps) is shown as text, a missing value as None."""
    frame = frame.head(max_rows)
    records = [
        TableRecord({str(k): _record_value(v) for k, v in row.items()})
        for row in frame.to_dict("records")
    ]
    schema = TableSchema(columns=[TableColumn(str(c), _column_type(frame[c])) for c in frame])
    return MetadataValue.table(records, schema=schema)


def _column_type(column: pd.Series) -> str:
    """The column's type as the UI shows it; cells that are not numbers or booleans are
    sent as text, so anything else is "string"."""
    if pd.api.types.is_bool_dtype(column):
        return "bool"
    if pd.api.types.is_integer_dtype(column):
        return "int"
    if pd.api.types.is_float_dtype(column):
        return "float"
    return "string"


def _record_value(value: Any) -> str | int | float | bool | None:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, enum.Enum):  # a str enum passes isinstance(str) but not serdes
        value = value.value
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)
