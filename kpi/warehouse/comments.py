"""A comment on every column a BI user reads, and on the table itself.

The reader tables declare most comments where their columns are; the columns they share
(``kpi_id``, ``grain``, ``period_start``, the dimension slices...) and the many windows of
``kpi.periods`` are described once here. ``describe`` fills them in on the SQLAlchemy
table (so ``CREATE TABLE`` writes them), ``sync_comments`` writes them on a warehouse made
by an older version, and ``comment_view`` on the scorecard view (``CREATE OR REPLACE
VIEW`` forgets a view's comments on DuckDB).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

SHARED: dict[str, str] = {
    "kpi_id": "KPI id, as in kpi_definitions/ and kpi.kpi_catalog",
    "kpi_name": "the KPI's display name",
    "area": "key area: marketing, sales, customer_service, product, operations, nonprofit",
    "direction": "which way is better: higher_is_better, lower_is_better or within_band",
    "grain": "period length: day, week, month, quarter or year",
    "period_start": "first day of the period, in the reporting time zone",
    "period_end": "last day of the period (the whole period, also while it is open)",
    "is_complete_period": "true once the period has ended and all its days are loaded; "
    "false for the open period, whose values are to date",
    "computed_at": "when this row was computed (UTC)",
    "definition_version": "hash of the KPI definition the row was computed with",
    "value": "the KPI value of the day",
    "is_anomaly": "true when the day's value is outside its control band",
    "sample_size": "rows or units the value is computed from; below the KPI's "
    "min_sample_size the status is insufficient_data",
    "benchmark_value": "external benchmark for the period (NULL: none declared)",
    "benchmark_min": "lower edge of the benchmark band, to date",
    "benchmark_max": "upper edge of the benchmark band, to date",
    "benchmark_source": "where the benchmark comes from",
    "status": "on_track, at_risk or off_track by the KPI's thresholds on attainment (which "
    "knows whether higher or lower is better), no_target when there is no target, "
    "insufficient_data without a value or below the minimum sample",
    "fired_at": "when the rule fired and the alert was attempted (UTC)",
    "first_seen_at": "first run that computed this definition version",
    "last_seen_at": "last run that computed this definition version",
    "days_in_period": "days in the whole period",
    "elapsed_days": "days of the period up to window_end (all of them once it is complete)",
    "window_end": "last day the period's values cover: period_end, or the as-of date "
    "while the period is open",
}

_WINDOWS = {
    "month_to_date": "month-to-date",
    "quarter_to_date": "quarter-to-date",
    "year_to_date": "year-to-date",
    "rolling_7": "rolling 7-day",
    "rolling_28": "rolling 28-day",
    "rolling_90": "rolling 90-day",
    "all_time": "all-time (from the first day of data)",
}
_WHOSE = {
    "": "ending at window_end",
    "prev_": "of the previous period, the same number of days (like for like)",
    "ly_": "of the same period last year, like for like",
}


def _periods_comment(name: str) -> str | None:
    for prefix, whose in _WHOSE.items():
        for kind, words in _WINDOWS.items():
            if name == f"{prefix}{kind}_start":
                return f"first day of the {words} window {whose}"
    return {
        "prev_period_start": "first day of the previous period",
        "prev_window_end": "last day of the previous period compared with (like for like)",
        "ly_period_start": "first day of the same period last year",
        "ly_window_end": "last day of the same period last year compared with",
    }.get(name)


def _comment_for(table: sa.Table, name: str, sliced: bool) -> str | None:
    if name in SHARED:
        return SHARED[name]
    if table.name == "periods":
        return _periods_comment(name)
    if sliced:
        # The dimension columns come from the catalogue's conformed dimensions.
        return f"slice: the row's {name} value; NULL = the total over every {name}"
    return None


def describe(table: sa.Table) -> sa.Table:
    """``table`` with a comment on every column that has none yet."""
    sliced = table.name in ("kpi_values", "kpi_comparisons")
    for column in table.columns:
        if not column.comment:
            column.comment = _comment_for(table, column.name, sliced)
    return table


def described(build: Callable[..., sa.Table]) -> Callable[..., sa.Table]:
    """Decorate a reader table's builder with :func:`describe`."""

    @functools.wraps(build)
    def wrapper(*args, **kwargs) -> sa.Table:
        return describe(build(*args, **kwargs))

    return wrapper


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def stored_comments(conn: Connection, schema: str) -> dict[tuple[str, str | None], str | None]:
    """(table or view, column or None for the table) -> its comment in the warehouse."""
    if conn.dialect.name == "duckdb":
        columns = conn.execute(
            sa.text(
                "SELECT table_name, column_name, comment FROM duckdb_columns() "
                "WHERE schema_name = :s"
            ),
            {"s": schema},
        ).all()
        relations = conn.execute(
            sa.text(
                "SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = :s "
                "UNION ALL SELECT view_name, comment FROM duckdb_views() WHERE schema_name = :s"
            ),
            {"s": schema},
        ).all()
    elif conn.dialect.name == "postgresql":
        columns = conn.execute(
            sa.text(
                "SELECT c.relname, a.attname, col_description(c.oid, a.attnum) "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "JOIN pg_attribute a ON a.attrelid = c.oid "
                "WHERE n.nspname = :s AND a.attnum > 0 AND NOT a.attisdropped "
                "AND c.relkind IN ('r', 'v', 'p')"
            ),
            {"s": schema},
        ).all()
        relations = conn.execute(
            sa.text(
                "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :s AND c.relkind IN ('r', 'v', 'p')"
            ),
            {"s": schema},
        ).all()
    else:
        return {}
    out: dict[tuple[str, str | None], str | None] = {(t, c): m for t, c, m in columns}
    out.update({(t, None): m for t, m in relations})
    return out


def write_comments(
    conn: Connection,
    schema: str,
    relation: str,
    wanted: Mapping[str | None, str | None],
    stored: Mapping[tuple[str, str | None], str | None],
    kind: str = "TABLE",
) -> int:
    """``COMMENT ON`` every column (key None: the table or view) whose stored comment
    differs from ``wanted``; returns how many were written."""
    preparer = conn.dialect.identifier_preparer
    qualified = f"{preparer.quote_schema(schema)}.{preparer.quote(relation)}"
    written = 0
    for column, text in wanted.items():
        if not text or stored.get((relation, column)) == text:
            continue
        target = (
            f"{kind} {qualified}"
            if column is None
            else (f"COLUMN {qualified}.{preparer.quote(column)}")
        )
        conn.execute(sa.text(f"COMMENT ON {target} IS {_literal(text)}"))
        written += 1
    return written


def sync_comments(conn: Connection, tables: Iterable[sa.Table], schema: str) -> int:
    """Write the declared comments of ``tables`` of ``schema`` that the warehouse lacks (a
    table made by an older version); DuckDB and PostgreSQL only."""
    tables = [t for t in tables if t.schema == schema]
    if not tables or conn.dialect.name not in ("duckdb", "postgresql"):
        return 0
    stored = stored_comments(conn, schema)
    written = 0
    for table in tables:
        wanted: dict[str | None, str | None] = {None: table.comment}
        wanted.update({c.name: c.comment for c in table.columns})
        written += write_comments(conn, schema, table.name, wanted, stored)
    return written
