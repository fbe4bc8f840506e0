"""The ``ours_pg`` contender of bench/kpi_bench.py: the same raw rows, the same KPIs,
computed by kpi.refresh inside PostgreSQL instead of DuckDB.

The generated DuckDB tables are copied into a database this script owns
(``kpi_bench_pg``, dropped and made again each run; a database of that name that the
bench did not make is refused), streamed with ``COPY ... FROM STDIN`` and analysed; the
copy is timed apart from the contender. After the run the PostgreSQL ``kpi_values`` of the
bench KPIs are copied back into the DuckDB file, so the agreement check compares them
with the floor's like the others. ``--explain`` keeps the plan of the slowest statement
(``EXPLAIN (ANALYZE, BUFFERS)``) in bench/plans/pg_slowest.txt.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import duckdb
import psycopg
import sqlalchemy as sa

DATABASE = "kpi_bench_pg"
MARKER = "made by bench/kpi_bench.py (ours_pg contender); safe to drop"
RAW = ("ga4_traffic", "ad_spend")
PLANS = Path(__file__).resolve().parent / "plans"


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def bench_url(admin_url: str, database: str = DATABASE) -> str:
    """The URL of the bench's own database on the server of ``admin_url``."""
    return str(sa.make_url(admin_url).set(database=database))


def prepare(
    db: Path,
    admin_url: str,
    raw_tables: dict[str, sa.Table],
    sources: tuple[str, ...] = RAW,
    database: str = DATABASE,
    marker: str = MARKER,
) -> tuple[str, float]:
    """A fresh database ``database`` holding the raw rows of ``db`` (the tables of
    ``sources``); (its URL, seconds to copy). A database of that name without ``marker``
    (the bench did not make it) is refused. Raises ``psycopg.OperationalError`` when the
    server cannot be reached."""
    from kpi.warehouse.connection import Warehouse

    with psycopg.connect(_plain(admin_url), autocommit=True, connect_timeout=5) as admin:
        found = admin.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [database],
        ).fetchone()
        if found is not None and found[0] != marker:
            raise SystemExit(f"database {database} exists and was not made by this benchmark")
        admin.execute(f"DROP DATABASE IF EXISTS {database}")
        admin.execute(f"CREATE DATABASE {database}")
        admin.execute(f"COMMENT ON DATABASE {database} IS '{marker}'")
    url = bench_url(admin_url, database)
    wh = Warehouse(url)
    # Without the sources' unique keys: the generated rows are not unique per declared key
    # (several rows of a campaign and day), and DuckDB, which the rows come from, has none.
    tables = []
    for name in sources:
        table = raw_tables[name].to_metadata(sa.MetaData())
        for index in list(table.indexes):
            table.indexes.discard(index)
        tables.append(table)
    wh.ensure_tables(tables)
    wh.dispose()
    start = time.perf_counter()
    source = duckdb.connect(str(db), read_only=True)
    with psycopg.connect(_plain(url)) as conn:
        for table in tables:
            names = [c.name for c in table.columns]
            columns = ", ".join(names)
            csv = db.with_suffix(f".{table.name}.csv")
            # DuckDB writes the CSV, PostgreSQL reads it: no row goes through Python.
            source.execute(
                f"COPY (SELECT {columns} FROM raw.{table.name}) TO '{csv}' (HEADER, DELIMITER ',')"
            )
            with (
                csv.open("rb") as data,
                conn.cursor().copy(
                    f"COPY raw.{table.name} ({columns}) FROM STDIN WITH (FORMAT csv, HEADER true)"
                ) as copy,
            ):
                while chunk := data.read(1 << 20):
                    copy.write(chunk)
            csv.unlink()
        conn.commit()
        conn.execute("ANALYZE")
    source.close()
    return url, time.perf_counter() - start


def copy_back(url: str, db: Path, results_schema: str, ids: list[str]) -> int:
    """The bench KPIs' rows of PostgreSQL ``kpi_values`` into ``<results>.ours_pg_values``."""
    with psycopg.connect(_plain(url)) as conn:
        rows = conn.execute(
            "SELECT kpi_id, grain, period_start, channel, device, value, numerator, "
            "denominator, sample_size FROM kpi.kpi_values WHERE kpi_id = ANY(%s)",
            [ids],
        ).fetchall()
    con = duckdb.connect(str(db))
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {results_schema}")
    con.execute(
        f"CREATE OR REPLACE TABLE {results_schema}.ours_pg_values (kpi_id VARCHAR, grain "
        "VARCHAR, period_start DATE, channel VARCHAR, device VARCHAR, value DOUBLE, numerator "
        "DOUBLE, denominator DOUBLE, sample_size BIGINT)"
    )
    if rows:
        con.executemany(
            f"INSERT INTO {results_schema}.ours_pg_values VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
        )
    con.close()
    return len(rows)


class StatementTimer:
    """The SQL of each statement an engine runs, with its seconds (to find the slowest)."""

    def __init__(self, engine: sa.Engine):
        self.times: list[tuple[float, str, object]] = []
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        conn.info["bench_t0"] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        elapsed = time.perf_counter() - conn.info.pop("bench_t0", time.perf_counter())
        self.times.append((elapsed, statement, parameters))

    def slowest(self) -> tuple[float, str, object]:
        return max(self.times, key=lambda t: t[0])


def explain_slowest(url: str, statement: str, parameters, seconds: float) -> Path:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of ``statement`` in a transaction rolled back after,
    with the PostgreSQL settings the pipeline's transactions start with."""
    from kpi.warehouse.session_settings import DEFAULT_POSTGRES_SETTINGS

    PLANS.mkdir(exist_ok=True)
    # A CTE may come first: WITH ... INSERT INTO target ...
    target = re.search(r"\bINSERT INTO (\S+)", statement)
    plain_insert = re.match(r"\s*INSERT INTO \S+ \([^)]*\)\s*(SELECT\b.*)$", statement, re.S)
    with psycopg.connect(_plain(url)) as conn:
        # With the settings the run's transactions start with (kpi.warehouse.session_settings).
        for name, value in DEFAULT_POSTGRES_SETTINGS.items():
            conn.execute("SELECT set_config(%s, %s, true)", (name, value))
        if target and target.group(1).startswith("tmp_") and plain_insert:
            # A temporary table of the run's connection is gone: its SELECT is the work.
            statement = plain_insert.group(1)
        elif target:  # an INSERT runs again on the table as the run found it: empty
            conn.execute(f"DELETE FROM {target.group(1)}")
        plan = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters).fetchall()
        conn.rollback()
    path = PLANS / "pg_slowest.txt"
    path.write_text(
        f"-- the slowest statement of ours_pg ({seconds:.2f} s in the run)\n{statement}\n\n"
        + "\n".join(r[0] for r in plan)
        + "\n"
    )
    return path
