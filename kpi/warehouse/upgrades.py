"""Upgrading a warehouse made by an older version, in place: what ``ensure_tables`` adds
to tables that already exist (missing columns, primary keys)."""

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
        # duckdb_tables() says it in a flag: ~1 ms on a fresh connection, where
        # duckdb_constraints() lists every NOT NULL of every table first (~4 ms).
        query = (
            "SELECT schema_name, table_name FROM duckdb_tables() "
            "WHERE has_primary_key AND database_name = current_database()"
        )
    else:
        query = (
            "SELECT n.nspname, c.relname FROM pg_constraint k JOIN pg_class c "
            "ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE k.contype = 'p'"
        )
    have = {tuple(row) for row in conn.execute(sa.text(query))}
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


def existing_columns(conn: Connection, schemas: list[str]) -> dict[tuple, set[str]]:
    """(schema, table) -> column names, for every table of ``schemas``."""
    if conn.dialect.name == "duckdb":
        # The rows of information_schema.columns (views' columns too), of this database
        # only, without that view's joins: ~1 ms on a fresh connection, not ~5.
        query = sa.text(
            "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name IN :schemas"
        ).bindparams(sa.bindparam("schemas", list(schemas), expanding=True))
    else:
        info = sa.table(
            "columns",
            sa.column("table_schema"),
            sa.column("table_name"),
            sa.column("column_name"),
            schema="information_schema",
        )
        query = sa.select(info.c.table_schema, info.c.table_name, info.c.column_name).where(
            info.c.table_schema.in_(schemas)
        )
    found: dict[tuple, set[str]] = {}
    for schema, table, column in conn.execute(query):
        found.setdefault((schema, table), set()).add(column)
    return found


def add_missing_columns(conn: Connection, table: sa.Table, existing: set[str]) -> None:
    """Add the columns of ``table``'s declaration that ``existing`` lacks, nullable, with
    their comments: upgrading keeps the rows."""
    preparer = conn.dialect.identifier_preparer
    for column in table.columns:
        if column.name in existing:
            continue
        type_sql = column.type.compile(dialect=conn.dialect)
        # Identifiers are quoted by the dialect and come from our own declarations.
        conn.execute(
            sa.text(
                f"ALTER TABLE {preparer.format_table(table)} "
                f"ADD COLUMN {preparer.format_column(column)} {type_sql}"
            )
        )
        # A fresh table gets its comments from CREATE TABLE; an added column needs its own.
        if column.comment and conn.dialect.supports_comments:
            conn.execute(sa.schema.SetColumnComment(column))
