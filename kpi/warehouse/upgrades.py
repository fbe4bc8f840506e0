"""Upgrading a warehouse made by an older version, in place: what ``ensure_tables`` adds
to tables that already exist besides missing columns."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection


@contextlib.contextmanager
def _no_savepoint() -> Iterator[None]:
    yield


def add_primary_keys(
    conn: Connection, tables: list[sa.Table], duplicate_error: Callable[..., Exception]
) -> None:
    """``ALTER TABLE ... ADD PRIMARY KEY`` on existing tables declared with one but made
    without it (DuckDB and PostgreSQL). Rows that break the key fail with
    :class:`DuplicateKeyError` naming the table, the key and an example."""
    keyed = [t for t in tables if t.primary_key.columns]
    if not keyed or conn.dialect.name not in ("duckdb", "postgresql"):
        return
    if conn.dialect.name == "duckdb":
        query = (
            "SELECT schema_name, table_name FROM duckdb_constraints() "
            "WHERE constraint_type = 'PRIMARY KEY'"
        )
    else:
        query = (
            "SELECT n.nspname, c.relname FROM pg_constraint k JOIN pg_class c "
            "ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE k.contype = 'p'"
        )
    have = set(conn.execute(sa.text(query)).tuples())
    preparer = conn.dialect.identifier_preparer
    for table in keyed:
        if (table.schema, table.name) in have:
            continue
        columns = list(table.primary_key.columns)
        names = ", ".join(preparer.format_column(c) for c in columns)
        try:
            with conn.begin_nested() if conn.dialect.name == "postgresql" else _no_savepoint():
                conn.execute(
                    sa.text(f"ALTER TABLE {preparer.format_table(table)} ADD PRIMARY KEY ({names})")
                )
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError, sa.exc.DBAPIError) as error:
            if conn.dialect.name == "duckdb":
                raise
            raise duplicate_error(conn, table, columns) from error
