"""The readers' views beside the KPI tables (``kpi.conversion_claims``,
``kpi.unmapped_dimension_values``): made again on every run from their SELECT, with a
comment on the view and each column for the analyst browsing ``kpi``."""

from __future__ import annotations

import sqlalchemy as sa

from kpi.warehouse.comments import stored_comments, write_comments
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.views import replace_view


def replace_reader_view(
    wh: Warehouse, schema: str, view: str, query: sa.Select, comments: dict[str | None, str]
) -> str:
    """(Re)create the readers' view ``schema.view`` from ``query`` with ``comments`` (on
    the view, key None, and on its columns) in one transaction; its qualified name."""
    with wh.transaction(lock=[f"{schema}.{view}"]) as conn:
        preparer = conn.dialect.identifier_preparer
        replace_view(conn, f"{preparer.quote_schema(schema)}.{preparer.quote(view)}", query)
        # DuckDB drops a replaced view's comments: they are written again.
        write_comments(conn, schema, view, comments, stored_comments(conn, schema), kind="VIEW")
    return f"{schema}.{view}"
