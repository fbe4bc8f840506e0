"""Every write to the warehouse goes through here.

Writes replace a slice of a table (a partition, a KPI) in one transaction: delete the
slice, insert the new rows. Re-running a partition therefore never duplicates or loses
rows, and a failed write leaves the previous rows in place.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from kpi.warehouse import dsn, session_settings
from kpi.warehouse.comments import sync_comments
from kpi.warehouse.engines import make_engine, warehouse_engine  # noqa: F401 - make_engine re-exported
from kpi.warehouse.locks import (  # noqa: F401 - WarehouseBusyError re-exported
    DDL,
    WarehouseBusyError,
    lock_tables,
    locked_transaction,
)
from kpi.warehouse.schema import KPI_SCHEMA, stale_reader_copy, temporary_table
from kpi.warehouse.statements import Compiled, compile_select, select_concurrently
from kpi.warehouse.upgrades import add_missing_columns, add_primary_keys, existing_columns
from kpi.warehouse.views import create_or_replace_view, is_view, table_signature

DEFAULT_WAREHOUSE_URL = "duckdb:///data/warehouse.duckdb"
# Bound values per statement, below PostgreSQL's limit of 65,535.
MAX_PARAMETERS = 30_000


class DuplicateKeyError(RuntimeError):
    """A table made before its unique key already holds two rows with the same key, so
    ``ensure_tables`` cannot add the key's index."""


def _drop_stale_reader_copy(conn: Connection, table: sa.Table) -> None:
    """An upgraded warehouse keeps no working table in the readers' schema."""
    stale = stale_reader_copy(table)
    if stale is not None:
        conn.execute(sa.schema.DropTable(stale, if_exists=True))


def redact_url(url: str) -> str:
    """The URL with every credential hidden (user-info, ``?password=``, ``?sslpassword=``,
    tokens, libpq keyword/value strings), for logs and metadata: see :mod:`kpi.warehouse.dsn`."""
    return dsn.redact_url(url)


class Warehouse:
    """A SQL warehouse (DuckDB or PostgreSQL; the SQL is the same)."""

    def __init__(
        self,
        url: str = DEFAULT_WAREHOUSE_URL,
        engine: Engine | None = None,
        postgres_settings: Mapping[str, str] | None = None,
    ):
        """``postgres_settings``: set at the start of each transaction on PostgreSQL
        (kpi.warehouse.session_settings; None: ``jit=off``, or what a given ``engine`` was
        configured with)."""
        self.url = url
        if engine is None:
            # Statements compiled by an earlier warehouse of this URL are not compiled
            # again (kpi.warehouse.engines).
            self.engine = warehouse_engine(url, postgres_settings)
        else:
            self.engine = engine
            if postgres_settings is not None:
                session_settings.configure(self.engine, postgres_settings)
        self._ensured: set[tuple] = set()  # declarations made sure of (table_signature)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def dialect_and_driver(self) -> str:  # postgresql+psycopg
        return f"{self.engine.dialect.name}+{self.engine.dialect.driver}"

    @property
    def shares_database(self) -> bool:
        """True when every connection of the engine opens the same database: not so for
        DuckDB's ``:memory:``, where each connection is a database of its own."""
        return self.engine.url.database not in (None, "", ":memory:")

    def ensure_tables(self, tables: Iterable[sa.Table]) -> None:
        """Create missing schemas, tables and columns; never drops or changes existing ones.

        A column added to a table's declaration (a new source column, a new KPI output) is
        added to an existing table as a nullable column, so upgrading keeps the history.
        """
        tables = list(tables)
        # Once per declaration and run (each step ensures its tables; nothing drops one after).
        signatures = {table_signature(t, self.engine.dialect) for t in tables}
        if signatures <= self._ensured and self.shares_database:
            return
        # Views (union sources, kpi.warehouse.views) are made after the tables they read.
        views = [t for t in tables if is_view(t)]
        tables = [t for t in tables if not is_view(t)]
        # Locked: two fresh runs would both CREATE SCHEMA/TABLE and collide in the catalogue.
        with self.transaction(lock=[DDL]) as conn:
            default = conn.dialect.default_schema_name
            schemas = sorted({t.schema for t in tables if t.schema})
            stale = [c for c in map(stale_reader_copy, tables) if c is not None]
            # One catalogue query for every table, rather than two per table; the readers'
            # schema too, where an older version kept copies of working tables.
            # (PostgreSQL has no default schema when the search_path names none that exists.)
            looked_up = {*schemas, default, *(c.schema for c in stale)} - {None}
            existing = existing_columns(conn, sorted(looked_up))
            # A schema holding a table exists: a run on a made warehouse creates none.
            present = {schema for schema, _ in existing}
            for schema in schemas:
                if schema not in present:
                    conn.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
            for copy in stale:
                if (copy.schema, copy.name) in existing:
                    conn.execute(sa.schema.DropTable(copy, if_exists=True))
            for table in tables:
                have = existing.get((table.schema or default, table.name))
                if have:
                    add_missing_columns(conn, table, have)
                    self._add_unique_keys(conn, table)
                else:
                    table.create(conn, checkfirst=True)  # with its unique key (PostgreSQL)
            # A reader table made by an older version gets the comments declared since, and
            # the primary key its declaration has now.
            sync_comments(conn, tables, KPI_SCHEMA)
            add_primary_keys(
                conn,
                [t for t in tables if existing.get((t.schema, t.name))],
                _duplicate_key_error,
            )
            for view in views:
                if view.schema:
                    conn.execute(sa.schema.CreateSchema(view.schema, if_not_exists=True))
                create_or_replace_view(conn, view)
        self._ensured |= signatures

    @staticmethod
    def _add_unique_keys(conn: Connection, table: sa.Table) -> None:
        """Add ``table``'s unique key (kpi.warehouse.schema.unique_key) to a table made before it;
        IF NOT EXISTS, so a no-op once there. PostgreSQL only: DuckDB has none (too slow).

        Rows that already break the key fail with :class:`DuplicateKeyError`, naming the
        table, the key and an example, rather than PostgreSQL's unique violation."""
        if conn.dialect.name != "postgresql":
            return
        for index in sorted(table.indexes, key=lambda i: i.name):
            if not index.unique:
                continue
            try:
                # A savepoint: after a failure the transaction can still count duplicates.
                with conn.begin_nested():
                    conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))
            except sa.exc.IntegrityError:
                raise _duplicate_key_error(conn, table, list(index.columns)) from None

    @contextlib.contextmanager
    def transaction(self, lock: Iterable[sa.Table | str] = ()) -> Iterator[Connection]:
        """One transaction for several of the ``*_in`` writes below: all of them or none.

        ``lock``: every table the transaction writes, locked at its start (kpi.warehouse.locks)
        so that a concurrent writer of them waits; the ``*_in`` writes lock their own table
        too, but a transaction writing several should name them all here (one sorted order).
        """
        with locked_transaction(self.engine, lock) as conn:
            yield conn

    def rebuild_tables(self, builds: list[tuple[sa.Table, sa.Select]]) -> dict[str, int]:
        """Drop, create and fill each (table, select) in one transaction; rows per table.

        Only for derived scratch tables that hold no history (the daily and monthly cubes):
        their columns follow the catalogue, so they are rebuilt rather than migrated. One
        transaction for all of them, so a reader never sees a cube of this run beside
        another of the last.
        """
        with self.transaction(lock=[DDL, *(t for t, _ in builds)]) as conn:
            return self.rebuild_tables_in(conn, builds)

    @staticmethod
    def rebuild_tables_in(
        conn: Connection, builds: Sequence[tuple[sa.Table, sa.Select | Compiled]]
    ) -> dict[str, int]:
        """``rebuild_tables`` inside the caller's transaction; a statement already compiled
        (``Compiled``, kpi.warehouse.statements) is run as it is."""
        lock_tables(conn, [DDL, *(t for t, _ in builds)])
        counts = {}
        for schema in sorted({t.schema for t, _ in builds if t.schema}):
            conn.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
        for table, _ in reversed(builds):
            conn.execute(sa.schema.DropTable(table, if_exists=True))
            _drop_stale_reader_copy(conn, table)
        for table, select in builds:
            conn.execute(sa.schema.CreateTable(table))
            if isinstance(select, Compiled):
                result = conn.exec_driver_sql(*select.insert_into(table, conn.dialect))
            else:
                names = [c.name for c in select.selected_columns]
                result = conn.execute(table.insert().from_select(names, select))
            counts[table.name] = max(result.rowcount, 0)
            # A new table has no statistics at all: the next statement reading it would be
            # planned as if it were empty.
            analyze_in(conn, table, ANALYZE_MIN_ROWS)
        return counts

    def replace_rows(
        self, table: sa.Table, where: ColumnElement | None, rows: pd.DataFrame
    ) -> tuple[int, int]:
        """Delete the rows matching ``where`` and insert ``rows``, in one transaction.

        Returns (rows deleted, rows inserted).
        """
        return self.replace_rows_together([(table, where, rows)])[0]

    def replace_rows_together(
        self, replacements: Sequence[tuple[sa.Table, ColumnElement | None, pd.DataFrame]]
    ) -> list[tuple[int, int]]:
        """Delete and insert for several ``(table, where, rows)`` in one transaction.

        For writes that belong together (a partition's raw rows and its quarantined rows):
        if any of them fails, none of the tables changes. Returns (rows deleted, rows
        inserted) per replacement, in order.
        """
        return self.replace_rows_then_read(replacements, [])[0]

    def replace_rows_then_read(
        self,
        replacements: Sequence[tuple[sa.Table, ColumnElement | None, pd.DataFrame]],
        reads: Sequence[sa.Select],
        keys: Sequence[list[str] | None] = (),
    ) -> tuple[list[tuple[int, int]], list[list[tuple]]]:
        """``replace_rows_together``, then each of ``reads`` in the same transaction, before
        its COMMIT, while the write locks of the replaced tables are still held.

        For counts that must describe this write alone (received = loaded + quarantined): read
        after the commit, a concurrent writer of the same table that took the lock as soon as
        it was released could already have changed them. ``keys`` (one per replacement, or
        None) are business keys: rows outside ``where`` holding a key of the rows inserted are
        deleted too, so a row re-delivered with another day replaces the row of its old day
        instead of standing beside it. Returns ((rows deleted, rows inserted) per
        replacement, the rows of each read), in order.
        """
        counts = []
        keyed = list(keys) + [None] * (len(replacements) - len(keys))
        with self.transaction(lock=[t for t, _, _ in replacements]) as conn:
            for (table, where, rows), key in zip(replacements, keyed, strict=True):
                deleted = self._delete(conn, table, where)
                if key and not rows.empty:
                    deleted += self.delete_keys_in(conn, table, key, rows)
                counts.append((deleted, self.insert_rows_in(conn, table, rows)))
            results = [[tuple(row) for row in conn.execute(query)] for query in reads]
        return counts, results

    def replace_from_select(
        self, table: sa.Table, where: ColumnElement | None, selects: list[sa.Select]
    ) -> tuple[int, int]:
        """Delete ``where`` and insert the result of ``selects``, computed in the warehouse."""
        with self.transaction(lock=[table]) as conn:
            return self.replace_from_select_in(conn, table, where, selects)

    @classmethod
    def replace_from_select_in(
        cls,
        conn: Connection,
        table: sa.Table,
        where: ColumnElement | None,
        selects: list[sa.Select | Compiled],
    ) -> tuple[int, int]:
        """``replace_from_select`` inside the caller's transaction; a statement already
        compiled (``Compiled``, kpi.warehouse.statements) is run as it is."""
        lock_tables(conn, [table])
        deleted = cls._delete(conn, table, where)
        inserted = 0
        for select in selects:
            if isinstance(select, Compiled):
                result = conn.exec_driver_sql(*select.insert_into(table, conn.dialect))
            else:
                names = [c.name for c in select.selected_columns]
                result = conn.execute(table.insert().from_select(names, select))
            inserted += max(result.rowcount, 0)
        # psycopg reports no row count (-1) for SQLAlchemy's INSERT ... SELECT: the
        # transaction's own statistics tell (analyze_in).
        analyze_in(conn, table, None)
        return deleted, inserted

    @classmethod
    def replace_from_selects_overlapped_in(
        cls,
        conn: Connection,
        table: sa.Table,
        where: ColumnElement | None,
        selects: Iterable[sa.Select | Compiled],
    ) -> int:
        """``replace_from_select_in`` for many statements: each one is built and compiled
        (Python, ``selects`` may be a generator) while the warehouse runs the one before,
        on a worker thread that alone uses ``conn`` (DuckDB and the PostgreSQL driver leave
        Python's lock while they plan and run). A statement already compiled (``Compiled``,
        kpi.warehouse.statements: from the cache of compiled statements) is run as it is.
        Returns the rows deleted.

        For statements that cost about as much to build as to run (kpi_comparisons, when
        compiled afresh: 85-160 statements of ~20 ms each in Python), this halves the wait.
        """
        lock_tables(conn, [table])
        deleted = cls._delete(conn, table, where)
        dialect = conn.dialect
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as worker:
            running: concurrent.futures.Future | None = None
            for select in selects:
                if not isinstance(select, Compiled):
                    select = compile_select(dialect, select)
                statement = select.insert_into(table, dialect)
                if running is not None:
                    running.result()
                running = worker.submit(conn.exec_driver_sql, *statement)
            if running is not None:
                running.result()
        analyze_in(conn, table, None)
        return deleted

    @classmethod
    def replace_from_selects_concurrently_in(
        cls,
        conn: Connection,
        table: sa.Table,
        where: ColumnElement | None,
        selects: Iterable[Compiled],
        workers: int,
    ) -> int:
        """DuckDB, for statements with few rows each (an incremental refresh): the SELECTs
        run ``workers`` at a time on other connections (kpi.warehouse.statements), their
        rows are inserted by ``conn`` in its transaction. They must read only what is
        committed, not ``table``. Returns the rows deleted."""
        lock_tables(conn, [table])
        deleted = cls._delete(conn, table, where)
        # One frame of Python values: None stays NULL (a DataFrame per statement, concatenated,
        # cost more than the statements on DuckDB and turned NULLs into NaN).
        by_columns: dict[tuple[str, ...], list[tuple]] = {}
        for columns, rows in select_concurrently(conn.engine, selects, workers):
            by_columns.setdefault(columns, []).extend(rows)
        for columns, rows in by_columns.items():
            cls.insert_rows_in(conn, table, pd.DataFrame.from_records(rows, columns=columns))
        return deleted

    @classmethod
    def delete_keys_in(
        cls, conn: Connection, table: sa.Table, key: list[str], keys: pd.DataFrame
    ) -> int:
        """Delete the rows of ``table`` whose ``key`` columns equal those of a row of ``keys``,
        inside the caller's transaction; rows deleted.

        The keys go to a temporary table and the delete is one semi-join, which DuckDB and
        PostgreSQL run as a hash join. A list of key tuples (``(k1, k2) IN (...)``) was
        compared row by row on PostgreSQL (25 s for 12,000 GA4 keys) and refused past its
        65,535 bound values. A key with a NULL part, which equality never matches, is matched
        by ``IS NULL`` instead, in statements of at most MAX_PARAMETERS values (such keys are
        rare: key columns are meant to be filled).
        """
        if not key:
            raise ValueError(f"{table.fullname}: no key columns to match rows by")
        lock_tables(conn, [table])
        keys = _python_values(keys[key]).drop_duplicates()
        partial = keys.isna().any(axis=1)
        deleted = 0
        if (~partial).any():
            # Dropped below, and with the transaction if it fails: a name per table suffices.
            staged = temporary_table(f"kpi_keys_{table.name}", [(k, table.c[k].type) for k in key])
            staged.create(conn)
            cls.insert_rows_in(conn, staged, keys[~partial])
            match = sa.exists().where(*[staged.c[k] == table.c[k] for k in key])
            deleted += cls._delete(conn, table, match)
            conn.execute(sa.schema.DropTable(staged))
        columns = [table.c[k] for k in key]
        rows = list(keys[partial].itertuples(index=False))
        per_statement = max(1, MAX_PARAMETERS // len(key))
        for i in range(0, len(rows), per_statement):
            match = sa.or_(
                *[
                    sa.and_(
                        *[
                            c.is_(None) if v is None else c == v
                            for c, v in zip(columns, r, strict=True)
                        ]
                    )
                    for r in rows[i : i + per_statement]
                ]
            )
            deleted += cls._delete(conn, table, match)
        return deleted

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A connection for reads, in a transaction that starts with the engine's
        PostgreSQL settings (some reads scan raw tables: kpi.warehouse.session_settings)."""
        with self.engine.connect() as conn, conn.begin():
            session_settings.apply(conn)
            yield conn

    def read(self, query: sa.Select | sa.TextClause, **params) -> pd.DataFrame:
        with self._reading() as conn:
            result = conn.execute(query, params)
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def rows(self, query: sa.Select | sa.CompoundSelect) -> list[tuple]:
        """The rows of ``query`` as the driver returns them (no pandas conversions)."""
        with self._reading() as conn:
            return [tuple(row) for row in conn.execute(query)]

    def scalar(self, query: sa.Select):
        with self._reading() as conn:
            return conn.execute(query).scalar()

    def count(self, table: sa.Table, where: ColumnElement | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(table)
        if where is not None:
            query = query.where(where)
        return int(self.scalar(query) or 0)

    def dispose(self) -> None:
        self.engine.dispose()

    # -- internals ----------------------------------------------------------------------------

    @staticmethod
    def _delete(conn: Connection, table: sa.Table, where: ColumnElement | None) -> int:
        stmt = table.delete() if where is None else table.delete().where(where)
        return max(conn.execute(stmt).rowcount, 0)

    @staticmethod
    def insert_rows_in(conn: Connection, table: sa.Table, rows: pd.DataFrame) -> int:
        """Insert ``rows`` inside the caller's transaction; rows inserted."""
        if rows.empty:
            return 0
        columns = [c for c in rows.columns if c in table.c]
        unknown = [c for c in rows.columns if c not in table.c]
        if unknown:
            raise ValueError(f"{table.fullname}: columns not in the table: {unknown}")
        frame = rows[columns]
        if conn.dialect.name == "duckdb":
            # DuckDB reads a registered DataFrame in bulk; row-by-row inserts are very slow.
            # A name of its own per table, not per call: a statement naming a new view each
            # time could never be taken from the engine's compiled cache. The view lives
            # only during this statement, on this connection.
            view = f"kpi_frame_{table.name}"
            raw = conn.connection.driver_connection
            # A few rows (a daily run's open periods) go in faster as they are: the
            # conversion costs more than DuckDB's value-by-value read of them.
            bulk = len(frame) >= BULK_DATE_ROWS
            raw.register(view, _dates_as_datetime64(frame, table) if bulk else frame)
            try:
                source = sa.table(view, *[sa.column(c) for c in columns])
                conn.execute(table.insert().from_select(columns, sa.select(*source.c)))
            finally:
                # After a failed insert DuckDB refuses everything until rollback; the view
                # dies with the connection's transaction, and the insert's error must win.
                with contextlib.suppress(Exception):
                    raw.unregister(view)
            return len(frame)
        records = _python_values(frame).to_dict("records")
        conn.execute(table.insert(), records)
        analyze_in(conn, table, len(frame))
        return len(frame)


# Rows a write must change before PostgreSQL's statistics of the table are refreshed at once.
# Autovacuum refreshes them too, but only after 10% of a table changed and a minute or more
# later: a bulk load followed at once by KPI statements reading it was planned on the stats
# of the empty table (nested loops over 3,400 x 3,825 rows: one comparison statement took
# 8.6 s instead of 0.02 s, the 425-day demo's comparisons 100 s instead of 8).
ANALYZE_MIN_ROWS = 1000


def analyze_in(conn: Connection, table: sa.Table, changed: int | None) -> None:
    """``ANALYZE`` ``table`` inside the caller's transaction on PostgreSQL, when a write
    changed at least ``ANALYZE_MIN_ROWS`` rows of it (None: the rows this transaction
    inserted and deleted so far); other warehouses keep their own."""
    if conn.dialect.name != "postgresql":
        return
    name = conn.dialect.identifier_preparer.format_table(table)
    if changed is None:
        stats = sa.text(
            "SELECT coalesce(n_tup_ins + n_tup_del, 0) FROM pg_stat_xact_user_tables "
            "WHERE relid = to_regclass(:name)"
        )
        changed = int(conn.execute(stats, {"name": name}).scalar() or 0)
    if changed >= ANALYZE_MIN_ROWS:
        conn.execute(sa.text(f"ANALYZE {name}"))


def _python_values(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as Python objects, with every missing value (NaN, NaT, pd.NA) as None."""
    return frame.astype(object).where(frame.notna(), None)


_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


# Rows from which converting date columns to datetime64 pays (kpi.compute.period_tables'
# open periods, measured: 9 rows 8.8 -> 5.3 ms without it; 480 rows 11.7 ms with it, 13.2
# without).
BULK_DATE_ROWS = 100


def _dates_as_datetime64(frame: pd.DataFrame, table: sa.Table) -> pd.DataFrame:
    """``frame`` with each column bound for a DATE column of ``table`` that holds
    ``datetime.date`` objects (and None) as datetime64.

    DuckDB converts a column of Python objects value by value, but reads datetime64 in
    bulk: a calendar of 1,300 periods with 29 date columns went in twice as fast. A column
    with anything else (a datetime, NaN, NaT, text) is left as it is.
    """
    converted = {}
    for name in frame.columns:
        column = frame[name]
        if column.dtype != object or not isinstance(table.c[name].type, sa.Date):
            continue
        values = column.tolist()
        if any(v is not None and type(v) is not dt.date for v in values):
            continue
        days = np.fromiter(
            (v.toordinal() - _EPOCH_ORDINAL if v is not None else 0 for v in values),
            dtype=np.int64,
            count=len(values),
        ).astype("datetime64[D]")
        days[[v is None for v in values]] = np.datetime64("NaT")
        converted[name] = pd.Series(days, index=column.index)
    return frame.assign(**converted) if converted else frame


def _duplicate_key_error(
    conn: Connection, table: sa.Table, key: list[sa.Column]
) -> DuplicateKeyError:
    """How many keys of ``table`` more than one row holds, with the most repeated one.

    GROUP BY puts NULLs together, as the index does (NULLS NOT DISTINCT)."""
    groups = (
        sa.select(*key, sa.func.count().label("n"))
        .group_by(*key)
        .having(sa.func.count() > 1)
        .subquery()
    )
    keys, rows = conn.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(groups.c.n), 0))
    ).one()
    example = conn.execute(
        sa.select(groups).order_by(groups.c.n.desc(), *[groups.c[c.name] for c in key]).limit(1)
    ).first()
    names = ", ".join(c.name for c in key)
    shown = ""
    if example is not None:
        values = ", ".join(_sql_literal(v) for v in example[:-1])
        shown = f"; e.g. ({names}) = ({values}) is on {example[-1]} rows"
    return DuplicateKeyError(
        f"{table.fullname}: cannot add its unique key ({names}): {keys} key(s) are held by "
        f"{rows} rows{shown}. Keep one row per key (delete the others), then run again."
    )


def _sql_literal(value) -> str:
    """A key value as it reads in SQL: NULL, 'text', 2026-03-02, 12."""
    if value is None:
        return "NULL"
    return repr(value) if isinstance(value, str) else str(value)
