"""The PostgreSQL settings the warehouse's transactions start with
(kpi/warehouse/session_settings.py): set for the transaction only, on a real server."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from kpi.warehouse.connection import Warehouse
from kpi.warehouse.session_settings import parse_settings, settings_of


def _current(conn: sa.Connection, *names: str) -> dict[str, str]:
    return {n: conn.execute(sa.select(sa.func.current_setting(n))).scalar_one() for n in names}


def _server_defaults(url: str) -> dict[str, str]:
    """The values a plain session of the server has (none of the warehouse's settings)."""
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            return _current(conn, "jit", "work_mem")
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_each_transaction_starts_with_the_settings_and_none_outlives_it(postgres_url):
    server = _server_defaults(postgres_url)
    # The test would prove nothing if the server already had the values.
    assert server["jit"] != "off"
    wh = Warehouse(postgres_url)
    try:
        with wh.transaction() as conn:
            assert _current(conn, "jit", "work_mem") == {**server, "jit": "off"}
        # The pool hands back the same session: the settings ended with the transaction.
        with wh.engine.connect() as conn:
            assert _current(conn, "jit", "work_mem") == server
        # The reads too (some scan raw tables).
        assert wh.scalar(sa.select(sa.func.current_setting("jit"))) == "off"
        assert wh.rows(sa.select(sa.func.current_setting("jit"))) == [("off",)]
        # A write's first statement sets them, before its locks, deletes and inserts.
        table = sa.Table("t", sa.MetaData(), sa.Column("x", sa.Integer))
        wh.ensure_tables([table])
        seen: list[str] = []
        sa.event.listen(wh.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
        assert wh.replace_rows(table, None, pd.DataFrame({"x": [1, 2]})) == (0, 2)
        assert "set_config" in seen[0] and len(seen) >= 3
        assert not any("set_config" in statement for statement in seen[1:])
    finally:
        wh.dispose()


@pytest.mark.postgres
def test_the_settings_can_be_chosen_or_left_to_the_server(postgres_url):
    server = _server_defaults(postgres_url)
    chosen = Warehouse(postgres_url, postgres_settings={"work_mem": "8MB"})
    none = Warehouse(postgres_url, postgres_settings={})
    try:
        with chosen.transaction() as conn:
            assert _current(conn, "jit", "work_mem") == {"jit": server["jit"], "work_mem": "8MB"}
        with none.transaction() as conn:
            assert _current(conn, "jit", "work_mem") == server
    finally:
        chosen.dispose()
        none.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"no_such_setting": "1"}, "no_such_setting"),
        # A value is a bound parameter, never SQL: one that holds SQL is only a bad value.
        ({"work_mem": "1MB'; DROP TABLE t; --"}, "work_mem"),
    ],
)
def test_a_setting_the_server_refuses_fails_naming_it(postgres_url, settings, named):
    wh = Warehouse(postgres_url, postgres_settings=settings)
    try:
        with pytest.raises(sa.exc.DBAPIError, match=named), wh.transaction():
            pass
    finally:
        wh.dispose()


def test_a_name_that_is_not_a_parameter_name_is_refused_before_any_connection():
    with pytest.raises(ValueError) as error:
        Warehouse(
            "duckdb:///:memory:",
            postgres_settings={"work mem": "1", "jit;": "off", "auto_explain.log_min_duraton": "0"},
        )
    # A dotted (an extension's) name too: PostgreSQL would take a misspelt one silently.
    assert "['auto_explain.log_min_duraton', 'jit;', 'work mem']" in str(error.value)
    assert "work_mem" in str(error.value)  # what a name looks like


def test_a_warehouse_on_a_given_engine_keeps_its_settings(duckdb_url):
    first = Warehouse(duckdb_url, postgres_settings={"work_mem": "8MB"})
    try:
        assert settings_of(Warehouse(engine=first.engine).engine) == {"work_mem": "8MB"}
        Warehouse(engine=first.engine, postgres_settings={})
        assert settings_of(first.engine) == {}
    finally:
        first.dispose()


def test_duckdb_ignores_them(duckdb_url):
    wh = Warehouse(duckdb_url, postgres_settings={"work_mem": "8MB"})
    try:
        with wh.transaction() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    finally:
        wh.dispose()


def test_the_settings_are_read_as_name_value_pairs():
    assert parse_settings(None) is None and parse_settings(" ") is None  # the defaults
    assert parse_settings("none") == {}
    assert parse_settings("jit=on, work_mem = 1GB") == {"jit": "on", "work_mem": "1GB"}
    with pytest.raises(ValueError) as error:
        parse_settings("jit=on,work_mem,=5,x=")
    assert "['work_mem', '=5', 'x=']" in str(error.value)
    assert "jit=off,work_mem=64MB" in str(error.value)  # what is expected
