"""One engine per warehouse URL and settings in a process (kpi/warehouse/engines.py): kept
between warehouses, with the statements it compiled, yet each warehouse's ``dispose`` still
frees the DuckDB file; in-memory databases and other settings never shared; the least
recently used engine closed beyond the kept number; a forked process starting without its
parent's engines."""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from kpi.compute.tables import KpiTables
from kpi.language.loader import load_catalog
from kpi.refresh import refresh_calendar, refresh_kpi_values
from kpi.warehouse import engines
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.schema import temporary_table
from kpi.warehouse.session_settings import settings_of


def test_a_warehouse_gets_the_engine_made_before_for_its_url_and_dispose_frees_the_file(
    tmp_path,
):
    path = tmp_path / "w.duckdb"
    first = Warehouse(f"duckdb:///{path}")
    table = sa.Table("t", sa.MetaData(), sa.Column("x", sa.Integer))
    first.ensure_tables([table])
    first.replace_rows(table, None, pd.DataFrame({"x": [1, 2]}))
    first.dispose()
    # Another process can write the file: the shared engine holds no connection.
    writer = textwrap.dedent(
        f"""
        import duckdb
        con = duckdb.connect({str(path)!r})
        con.execute("INSERT INTO t VALUES (3)")
        con.close()
        """
    )
    subprocess.run([sys.executable, "-c", writer], check=True, capture_output=True)
    second = Warehouse(f"duckdb:///{path}")
    try:
        assert second.engine is first.engine
        assert second.count(table) == 3
    finally:
        second.dispose()


def test_other_settings_and_in_memory_databases_get_engines_of_their_own(tmp_path):
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    plain, tuned = Warehouse(url), Warehouse(url, postgres_settings={"work_mem": "8MB"})
    same_tuned = Warehouse(url, postgres_settings={"work_mem": "8MB"})
    assert plain.engine is not tuned.engine and tuned.engine is same_tuned.engine
    assert settings_of(plain.engine) == {"jit": "off"}
    assert settings_of(tuned.engine) == {"work_mem": "8MB"}
    # Each connection to ":memory:" is a database of its own: a shared pool would share it.
    one, two = Warehouse("duckdb:///:memory:"), Warehouse("duckdb:///:memory:")
    assert one.engine is not two.engine
    table = sa.Table("t", sa.MetaData(), sa.Column("x", sa.Integer))
    one.ensure_tables([table])
    assert not sa.inspect(two.engine).has_table("t")
    for wh in (plain, tuned, same_tuned, one, two):
        wh.dispose()


def test_the_least_recently_used_engine_is_closed_beyond_the_kept_number(tmp_path, monkeypatch):
    monkeypatch.setattr(engines, "KEPT_ENGINES", 2)
    urls = [f"duckdb:///{tmp_path / f'w{i}.duckdb'}" for i in range(3)]
    made = [engines.shared_engine(url) for url in urls[:2]]
    with made[0].connect() as conn:  # a connection back in its pool, open
        conn.execute(sa.text("SELECT 1"))
    assert made[0].pool.checkedin() == 1
    engines.shared_engine(urls[0])  # now the most recently used: w1 goes next
    engines.shared_engine(urls[2])
    assert engines.shared_engine(urls[0]) is made[0]
    assert engines.shared_engine(urls[1]) is not made[1]
    # An engine closed when it leaves: none of its connections stay open.
    with made[0].connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    engines.shared_engine(urls[2])
    engines.shared_engine(urls[1])  # w0 is the least recently used now
    assert made[0].pool.checkedin() == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork: POSIX only")
def test_a_forked_process_starts_without_its_parents_engines(tmp_path):
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    parent = engines.shared_engine(url)
    with parent.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 only if it gets an engine of its own
        ok = not engines._engines and engines.shared_engine(url) is not parent
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's pool is untouched (dispose(close=False) in the child).
    assert engines.shared_engine(url) is parent and parent.pool.checkedin() == 1
    parent.dispose()


def test_a_temporary_table_is_the_same_object_for_the_same_name_and_columns():
    a = temporary_table("tmp_x", [("day", sa.Date()), ("n", sa.Integer())])
    assert temporary_table("tmp_x", [("day", sa.Date()), ("n", sa.Integer())]) is a
    assert temporary_table("tmp_x", [("day", sa.Date()), ("n", sa.BigInteger())]) is not a
    assert temporary_table("tmp_y", [("day", sa.Date()), ("n", sa.Integer())]) is not a
    assert a._prefixes == ["TEMPORARY"]


def _catalogue(folder: Path) -> KpiTables:
    folder.mkdir()
    sources = {
        "reporting": {"time_zone": "UTC"},
        "dimensions": {"channel": {}},
        "sources": {
            "sales": {
                "table": "raw.sales",
                "time": {"column": "date", "type": "date", "time_zone": "UTC"},
                "columns": {
                    "date": {"type": "date"},
                    "channel": {"type": "string"},
                    "amount": {"type": "number", "additivity": "additive"},
                },
                "dimensions": {"channel": {"column": "channel"}},
            }
        },
    }
    kpi = {
        "id": "revenue",
        "name": "Revenue",
        "description": "revenue",
        "owner": "t@example.com",
        "unit": "currency",
        "direction": "higher_is_better",
        "grains": ["day", "month"],
        "dimensions": ["channel"],
        "type": "simple",
        "measure": {"source": "sales", "agg": "sum", "expr": "amount"},
    }
    (folder / "sources.yaml").write_text(yaml.safe_dump(sources))
    (folder / "test.yaml").write_text(yaml.safe_dump({"area": "test", "kpis": [kpi]}))
    return KpiTables.for_catalog(load_catalog(folder), use_cubes=True)


def test_a_daily_refresh_compiles_again_none_of_the_statements_of_the_one_before(
    warehouse_url, tmp_path, caplog
):
    """What SQLAlchemy logs for each statement it runs says whether its compiled form came
    from the engine's cache ("[cached since ...]") or was compiled ("[generated in ...]").
    A daily run opens a new warehouse, as each Dagster step does; from the second daily run
    on, every statement of the calendar and the KPI values is taken from the cache, except
    DDL, which SQLAlchemy never caches ("[no key ...]"). A statement naming a Table object
    made anew each run (a temporary table) would be compiled again every time."""
    tables = _catalogue(tmp_path / "defs")
    sales = tables.raw_tables["sales"]
    first = dt.date(2026, 1, 1)

    def day_rows(day: dt.date) -> pd.DataFrame:
        return pd.DataFrame(
            {"date": [day, day], "channel": ["paid", "organic"], "amount": [10.0, 4.5]}
        )

    def daily_run(day: dt.date) -> list[str]:
        wh = Warehouse(warehouse_url)
        try:
            wh.ensure_tables(tables.all_tables())
            wh.replace_rows(sales, sales.c.date == day, day_rows(day))
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="sqlalchemy.engine.Engine"):
                refresh_calendar(wh, tables, day)
                refresh_kpi_values(wh, tables)
            return [r.getMessage() for r in caplog.records]
        finally:
            wh.dispose()

    for k in range(3):  # the full refresh, then the first daily run: both compile
        daily_run(first + dt.timedelta(days=k))
    logged = daily_run(first + dt.timedelta(days=3))
    stats = [m for m in logged if m.startswith("[")]
    assert any(m.startswith("[cached since") for m in stats), logged
    compiled = [m for m in stats if m.startswith("[generated in")]
    assert compiled == []
    wh = Warehouse(warehouse_url)
    try:  # and the values are the day's
        v = tables.values
        rows = wh.rows(
            sa.select(v.c.channel, v.c.value).where(
                v.c.grain == "day", v.c.period_start == first + dt.timedelta(days=3)
            )
        )
    finally:
        wh.dispose()
    expected = [(None, 14.5), ("paid", 10.0), ("organic", 4.5)]
    assert sorted(rows, key=str) == sorted(expected, key=str)
