"""Metadata every asset attaches: row counts, column schema and a preview."""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa
from dagster import MetadataValue, TableColumn, TableSchema

from kpi.warehouse import Warehouse


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
        "preview": MetadataValue.md(markdown_table(preview)),
    }


def markdown_table(frame: pd.DataFrame, max_rows: int = 20) -> str:
    if frame.empty:
        return "_no rows_"
    frame = frame.head(max_rows)
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = [
        "| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, rule, *body])


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).replace("|", "\\|")
