"""The warehouse writer: transactional replaces, additive migrations, a clear lock error."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from kpi.warehouse.connection import (
    BULK_DATE_ROWS,
    Warehouse,
    WarehouseBusyError,
    redact_url,
)
from kpi.warehouse.views import VIEW_INFO


def _table(*extra: sa.Column) -> sa.Table:
    return sa.Table(
        "facts",
        sa.MetaData(),
        sa.Column("day", sa.Integer, nullable=False),
        sa.Column("amount", sa.Double),
        *extra,
        schema="raw",
    )


def _loaded_table(
    wh: Warehouse, name: str, columns: dict[str, type], rows: dict[str, list]
) -> sa.Table:
    """``raw.<name>`` with ``columns`` (name: SQLAlchemy type), created and holding ``rows``."""
    table = sa.Table(
        name, sa.MetaData(), *[sa.Column(c, t) for c, t in columns.items()], schema="raw"
    )
    wh.ensure_tables([table])
    wh.replace_rows(table, None, pd.DataFrame(rows))
    return table


def test_replace_is_atomic_and_idempotent(warehouse_url):
    wh = Warehouse(warehouse_url)
    table = _table()
    wh.ensure_tables([table])
    first = pd.DataFrame({"day": [1, 1, 2], "amount": [1.0, 2.0, 3.0]})
    assert wh.replace_rows(table, table.c.day == 1, first) == (0, 3)
    # The same replace again: same rows, nothing duplicated.
    assert wh.replace_rows(table, table.c.day.in_([1, 2]), first) == (3, 3)
    assert wh.count(table) == 3
    # A failing insert (NULL into a NOT NULL column) rolls back the delete as well.
    bad = pd.DataFrame({"day": [1, None], "amount": [9.0, 9.0]})
    with pytest.raises(sa.exc.DBAPIError):
        wh.replace_rows(table, table.c.day.in_([1, 2]), bad)
    kept = wh.read(sa.select(table).order_by(table.c.day, table.c.amount))
    assert kept["amount"].tolist() == [1.0, 2.0, 3.0]
    wh.dispose()


def test_new_columns_are_added_to_existing_tables(warehouse_url):
    wh = Warehouse(warehouse_url)
    wh.ensure_tables([_table()])
    wh.replace_rows(_table(), None, pd.DataFrame({"day": [1], "amount": [5.0]}))
    wider = _table(sa.Column("channel", sa.String, comment="the conformed channel"))
    wh.ensure_tables([wider])
    wh.ensure_tables([wider])  # twice: nothing to add the second time
    rows = wh.read(sa.select(wider))
    assert rows.to_dict("records") == [{"day": 1, "amount": 5.0, "channel": None}]
    # BI tools show column comments: an added column gets its comment too.
    if wh.dialect == "duckdb":  # duckdb_engine's inspector cannot read comments
        comment = wh.read(
            sa.text(
                "select comment from duckdb_columns() where schema_name = :s "
                "and table_name = :t and column_name = 'channel'"
            ),
            s=wider.schema,
            t=wider.name,
        ).iloc[0, 0]
    else:
        columns = sa.inspect(wh.engine).get_columns(wider.name, schema=wider.schema)
        comment = next(c.get("comment") for c in columns if c["name"] == "channel")
    assert comment == "the conformed channel"
    wh.dispose()


def test_tables_are_ensured_on_postgresql_without_a_default_schema(postgres_url):
    # A search_path naming no schema that exists: SQLAlchemy finds no default schema (None),
    # and the tables, all in named schemas, are made (and found made) all the same.
    url = sa.make_url(postgres_url).update_query_dict({"options": "-csearch_path=nowhere"})
    wh = Warehouse(url.render_as_string(hide_password=False))
    with wh.engine.connect():
        assert wh.engine.dialect.default_schema_name is None
    wh.ensure_tables([_table()])
    wh.replace_rows(_table(), None, pd.DataFrame({"day": [1], "amount": [5.0]}))
    again = Warehouse(wh.url, engine=wh.engine)
    again.ensure_tables([_table(sa.Column("channel", sa.String))])
    assert wh.read(sa.select(_table()))["amount"].tolist() == [5.0]
    wh.dispose()


def _view(facts: sa.Table, factor: int) -> sa.Table:
    """A view of ``facts`` with its amount times ``factor``, as union sources declare one."""
    select = sa.select(facts.c.day, (facts.c.amount * factor).label("amount"))
    return sa.Table(
        "facts_tripled",
        sa.MetaData(),
        sa.Column("day", sa.Integer),
        sa.Column("amount", sa.Double),
        schema="raw",
        info={VIEW_INFO: select},
    )


def test_a_declaration_is_ensured_once_per_warehouse_and_a_changed_one_again(warehouse_url):
    wh = Warehouse(warehouse_url)
    statements: list[str] = []
    sa.event.listen(wh.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    wh.ensure_tables([_table()])
    assert statements, "the first call looks at the catalogue"
    statements.clear()
    wh.ensure_tables([_table()])  # an equal declaration (another Table object)
    assert statements == []
    # A new column is a new declaration: added, in the same instance.
    wider = _table(sa.Column("channel", sa.String))
    wh.ensure_tables([wider])
    assert any("ADD COLUMN" in s for s in statements)
    assert "channel" in wh.read(sa.select(wider)).columns
    # A view is its SQL: an equal one (another SELECT object) is skipped, another is remade.
    statements.clear()
    wh.ensure_tables([_view(wider, 2)])
    assert statements
    statements.clear()
    wh.ensure_tables([_view(wider, 2)])
    assert statements == []
    wh.ensure_tables([_view(wider, 3)])
    assert any("CREATE OR REPLACE VIEW" in s or "CREATE VIEW" in s for s in statements)
    wh.replace_rows(wider, None, pd.DataFrame({"day": [1], "amount": [5.0], "channel": ["x"]}))
    assert wh.read(sa.select(_view(wider, 3))).amount.tolist() == [15.0]
    # Another instance (another run) looks again: a table dropped in between comes back.
    with wh.transaction() as conn:
        conn.execute(sa.text("DROP VIEW raw.facts_tripled"))
        conn.execute(sa.text("DROP TABLE raw.facts"))
    wh.dispose()
    again = Warehouse(warehouse_url)
    again.ensure_tables([wider])
    assert again.count(wider) == 0
    again.dispose()


def test_a_locked_duckdb_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "w.duckdb"
    holder = textwrap.dedent(
        f"""
        import time, duckdb
        con = duckdb.connect({str(path)!r})
        con.execute("create table t (a int)")
        print("locked", flush=True)
        time.sleep(30)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        wh = Warehouse(f"duckdb:///{path}")
        with pytest.raises(WarehouseBusyError, match="one writer per file") as info:
            wh.count(sa.table("t"))
        assert f"PID {proc.pid}" in str(info.value)
    finally:
        proc.kill()
        proc.wait()
    time.sleep(0.1)
    # Once the other process is gone the same warehouse works.
    assert Warehouse(f"duckdb:///{path}").count(sa.table("t")) == 0


def test_passwords_never_shown():
    url = "postgresql://kpi:s3cret-pw@db.internal:5432/warehouse"
    assert "s3cret-pw" not in redact_url(url)
    assert "db.internal" in redact_url(url)


@pytest.mark.parametrize("copies", [1, BULK_DATE_ROWS])
def test_frame_dates_and_timestamps_round_trip(warehouse_url, copies):
    """DuckDB gets the date columns of a frame of BULK_DATE_ROWS rows or more as datetime64
    (see _dates_as_datetime64), of a smaller one as the date objects: either way the values
    that come back must be the dates (before 1970 too), NULLs and timestamps that went in,
    and a column of only NULLs loads into a boolean column."""
    table = sa.Table(
        "stamped",
        sa.MetaData(),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("day", sa.Date),
        sa.Column("moment", sa.DateTime(timezone=True)),
        sa.Column("flag", sa.Boolean),
        sa.Column("label", sa.String),
        sa.Column("other_day", sa.Date),
        schema="raw",
    )
    wh = Warehouse(warehouse_url)
    wh.ensure_tables([table])
    moment = dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.UTC)
    rows = pd.DataFrame(
        {
            "n": [1, 2, 3],
            "day": [dt.date(1969, 12, 31), None, dt.date(2026, 2, 28)],
            "moment": [moment, None, moment],
            "flag": [None, None, None],
            # A date bound for a text column stays a date's text, not a timestamp's.
            "label": [dt.date(2026, 1, 2), None, "x"],
            # NaN beside dates (as pandas makes them): left to DuckDB as it is.
            "other_day": [dt.date(2026, 1, 2), float("nan"), None],
        },
        dtype=object,
    )
    rows = pd.concat([rows] * copies, ignore_index=True)
    rows["n"] = range(1, len(rows) + 1)
    assert wh.replace_rows(table, None, rows) == (0, 3 * copies)
    back = wh.rows(sa.select(table).order_by(table.c.n))
    want = [
        (1, dt.date(1969, 12, 31), None, "2026-01-02", dt.date(2026, 1, 2)),
        (2, None, None, None, None),
        (3, dt.date(2026, 2, 28), None, "x", None),
    ]
    got = [(n, day, flag, label, other) for n, day, _, flag, label, other in back]
    assert got == [(3 * k + n, *rest) for k in range(copies) for n, *rest in want]
    moments = [m.astimezone(dt.UTC) if m else None for _, _, m, *_ in back]
    assert moments == [moment, None, moment] * copies
    wh.dispose()


def test_duckdb_keywords_are_quoted_from_the_warehouse_connection(tmp_path):
    """The dialect learns DuckDB's reserved words from the warehouse's first connection
    (kpi.warehouse.duckdb_dialect): a column named after one that PostgreSQL does not reserve still
    works, as do the other DuckDB-only ones."""
    wh = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    table = _loaded_table(
        wh,
        "facts",
        {"qualify": sa.Integer, "pivot": sa.String},
        {"qualify": [1, 2], "pivot": ["a", "b"]},
    )
    assert wh.rows(sa.select(table.c.pivot).where(table.c.qualify == 2)) == [("b",)]
    preparer = wh.engine.dialect.identifier_preparer
    assert {"qualify", "pivot", "summarize", "unpivot"} <= preparer.reserved_words
    wh.dispose()


def test_duckdb_engines_open_no_database_of_their_own(tmp_path):
    """Before its first connection duckdb_engine opens two in-memory databases (about 40 ms
    each), one to list DuckDB's settings, one for its keywords; ours opens neither. Seen in
    a fresh process: duckdb_engine's settings cache stays empty, and its keyword query, which
    adds DuckDB's keywords to PostgreSQL's shared set, never runs."""
    script = textwrap.dedent(
        f"""
        import sqlalchemy as sa
        from duckdb_engine.config import get_core_config
        from sqlalchemy.dialects.postgresql.base import PGIdentifierPreparer
        from kpi.warehouse.connection import Warehouse

        wh = Warehouse("duckdb:///{tmp_path / "w.duckdb"}")
        assert wh.scalar(sa.select(sa.literal(1))) == 1
        shared = PGIdentifierPreparer.reserved_words
        print(get_core_config.cache_info().currsize, "qualify" in shared)
        """
    )
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=root
    )
    assert out.stdout.split() == ["0", "False"]


def test_duckdb_settings_in_the_url_still_apply(tmp_path):
    wh = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}?threads=1")
    assert wh.scalar(sa.select(sa.func.current_setting("threads"))) == 1
    wh.dispose()


def test_keys_are_deleted_by_equality_and_null_parts_by_is_null(warehouse_url):
    wh = Warehouse(warehouse_url)
    try:
        table = _loaded_table(
            wh,
            "keyed",
            {"day": sa.Integer, "name": sa.String},
            {"day": [1, 1, 2, 2, 3], "name": ["a", "b", None, "x", "c"]},
        )
        # (1, a) is given twice; (4, z) matches nothing.
        wanted = pd.DataFrame({"day": [1, 2, 1, 4], "name": ["a", None, "a", "z"]})
        with wh.transaction() as conn:
            assert Warehouse.delete_keys_in(conn, table, ["day", "name"], wanted) == 2
        left = wh.rows(sa.select(table.c.day, table.c.name).order_by(table.c.day, table.c.name))
    finally:
        wh.dispose()
    assert left == [(1, "b"), (2, "x"), (3, "c")]


def test_keys_with_missing_parts_from_pandas_are_matched_by_is_null(warehouse_url):
    """pandas holds a missing number as NaN and a missing date as NaT: both must match a
    NULL key part, not be sent as a value."""
    wh = Warehouse(warehouse_url)
    try:
        table = _loaded_table(
            wh,
            "dated",
            {"day": sa.Date, "amount": sa.Double},
            {"day": [dt.date(2026, 1, 1), None, dt.date(2026, 1, 2)], "amount": [1.5, 2.5, None]},
        )
        wanted = pd.DataFrame(
            {
                "day": pd.to_datetime(["2026-01-01", None, "2026-01-02"]),  # NaT in the middle
                "amount": [1.5, 2.5, float("nan")],
            }
        )
        with wh.transaction() as conn:
            deleted = Warehouse.delete_keys_in(conn, table, ["day", "amount"], wanted)
        with pytest.raises(ValueError, match="no key columns"), wh.transaction() as conn:
            Warehouse.delete_keys_in(conn, table, [], wanted)
        left = wh.count(table)
    finally:
        wh.dispose()
    assert (deleted, left) == (3, 0)


def test_an_attached_database_with_the_same_tables_hides_no_missing_column_or_key(tmp_path):
    # The catalogue is read for the warehouse's own database only: a table of the same name
    # in an attached one (with the column and the key) must not make ours look complete.
    import duckdb

    other = tmp_path / "other.duckdb"
    with duckdb.connect(str(other)) as c:
        c.execute("CREATE SCHEMA s; CREATE TABLE s.t (k INTEGER PRIMARY KEY, v INTEGER, w INTEGER)")
    with duckdb.connect(str(tmp_path / "main.duckdb")) as c:
        c.execute("CREATE SCHEMA s; CREATE TABLE s.t (k INTEGER, v INTEGER)")  # older: no w, key
    wh = Warehouse(f"duckdb:///{tmp_path / 'main.duckdb'}")
    attach = f"ATTACH '{other}' AS other (READ_ONLY)"
    sa.event.listen(wh.engine, "connect", lambda dbapi, _: dbapi.execute(attach))
    t = sa.Table(
        "t",
        sa.MetaData(),
        sa.Column("k", sa.Integer, primary_key=True),
        sa.Column("v", sa.Integer),
        sa.Column("w", sa.Integer),
        schema="s",
    )
    wh.ensure_tables([t])
    own = "database_name = current_database() AND schema_name = 's' AND table_name = 't'"
    with wh.engine.connect() as conn:
        columns = conn.execute(sa.text(f"SELECT column_name FROM duckdb_columns() WHERE {own}"))
        assert {r[0] for r in columns} == {"k", "v", "w"}
        keyed = conn.execute(sa.text(f"SELECT has_primary_key FROM duckdb_tables() WHERE {own}"))
        assert keyed.scalar() is True
    wh.dispose()
