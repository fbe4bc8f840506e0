"""The readers' views beside the KPI tables (``kpi.kpi_scorecard``,
``kpi.conversion_claims``, ``kpi.unmapped_dimension_values``): made from their SELECT,
with a comment on the view and each column for the analyst browsing ``kpi``.

A view is made again only when what shapes its SQL changed: the catalog, the tables'
layout, the kernel's code or the warehouse's dialect (the fingerprint of the compiled KPI
statements, kpi.compute.changes.statement_fingerprint), stamped in ``refresh_state`` by the
transaction that made it, with a digest of the definition the warehouse then stored. On
DuckDB, compiling and creating the views and writing their comments again (DuckDB drops a
replaced view's) took ~0.3-0.5 s of every daily run, for SQL that had not changed. A view
dropped or replaced since (by hand, or by an older version of this code, which did not
stamp) is made again; a comment edited since is written again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kpi.compute.changes import statement_fingerprint, supports_incremental
from kpi.compute.tables import KpiTables
from kpi.warehouse.comments import stored_comments, write_comments
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.views import replace_view

VIEW_STEP = "view"  # the refresh_state rows (kpi_id: the view's name) stamping the views


def replace_reader_view(
    wh: Warehouse,
    tables: KpiTables,
    schema: str,
    view: str,
    build: Callable[[], sa.Select | None],
    comments: dict[str | None, str],
) -> str | None:
    """(Re)create the readers' view ``schema.view`` from the SELECT ``build`` returns, with
    ``comments`` (on the view, key None, and on its columns), in one transaction; its
    qualified name, or None when ``build`` returns None (the catalog cannot have the view).

    Kept as it is when the stamp of its making is this catalog's, layout's and code's and
    the warehouse still holds the definition it stamped.
    """
    name = f"{schema}.{view}"
    state = tables.refresh_state
    stamp = None
    if supports_incremental(wh.dialect):  # where refresh_state is kept
        wh.ensure_tables([state])
        shape = statement_fingerprint(tables.catalog, tables.layout(), wh.dialect_and_driver)
        stamp = _digest([shape, name, sorted(comments.items(), key=str)])
    with wh.transaction(lock=[name, *([state] if stamp else [])]) as conn:
        stored = stored_comments(conn, schema)
        kept = _stamped(stamp, conn, schema, view) if stamp else None  # None: no such view
        if kept is not None and _stamp_of(conn, state, name) == kept:
            write_comments(conn, schema, view, comments, stored, kind="VIEW")
            return name
        query = build()
        if query is None:
            return None
        preparer = conn.dialect.identifier_preparer
        replace_view(conn, f"{preparer.quote_schema(schema)}.{preparer.quote(view)}", query)
        # DuckDB drops a replaced view's comments: they are written again.
        write_comments(conn, schema, view, comments, stored_comments(conn, schema), kind="VIEW")
        if stamp:
            _write_stamp(conn, state, name, _stamped(stamp, conn, schema, view))
    return name


def _digest(data: object) -> str:
    return hashlib.sha256(repr(data).encode()).hexdigest()[:16]


def _stamped(stamp: str, conn: Connection, schema: str, view: str) -> str | None:
    """``stamp`` with a digest of the view's definition as the warehouse stores it; None
    when there is no such view."""
    if conn.dialect.name == "duckdb":
        query = "SELECT sql FROM duckdb_views() WHERE schema_name = :s AND view_name = :v"
    else:  # PostgreSQL: its own rendering of the definition, the same for the same view
        query = (
            "SELECT pg_get_viewdef(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = "
            "c.relnamespace WHERE n.nspname = :s AND c.relname = :v AND c.relkind = 'v'"
        )
    stored = conn.execute(sa.text(query), {"s": schema, "v": view}).scalar()
    return None if stored is None else f"{stamp}:{_digest(stored)}"


def _stamp_of(conn: Connection, state: sa.Table, name: str) -> str | None:
    where = (state.c.step == VIEW_STEP) & (state.c.kpi_id == name)
    return conn.execute(sa.select(state.c.fingerprint).where(where)).scalar()


def _write_stamp(conn: Connection, state: sa.Table, name: str, stamp: str | None) -> None:
    conn.execute(state.delete().where((state.c.step == VIEW_STEP) & (state.c.kpi_id == name)))
    row = {"step": VIEW_STEP, "kpi_id": name, "fingerprint": stamp}
    conn.execute(state.insert().values(**row, refreshed_at=dt.datetime.now(dt.UTC)))
