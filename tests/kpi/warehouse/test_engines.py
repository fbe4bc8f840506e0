"""Engines built on what the process learnt (kpi/warehouse/engines.py): each warehouse
has an engine and a pool of its own, so its ``dispose`` closes its connections only and
frees the DuckDB file, while the dialect and the compiled statements of the earlier
warehouses of its URL are reused; in-memory databases share nothing; the least recently
used URL's are forgotten beyond the kept number; the templates never connect."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
import yaml

from kpi.compute.tables import KpiTables
from kpi.language.loader import load_catalog
from kpi.refresh import refresh_calendar, refresh_kpi_values
from kpi.warehouse import engines
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.schema import temporary_table
from kpi.warehouse.session_settings import settings_of

TABLE = sa.Table("t", sa.MetaData(), sa.Column("x", sa.Integer))


def _compiled_cache(wh: Warehouse):
    return wh.engine.get_execution_options()["compiled_cache"]


def test_warehouses_of_a_url_share_the_dialect_and_compiled_statements_not_connections(
    tmp_path,
):
    path = tmp_path / "w.duckdb"
    first, second = Warehouse(f"duckdb:///{path}"), Warehouse(f"duckdb:///{path}")
    assert first.engine is not second.engine and first.engine.pool is not second.engine.pool
    assert first.engine.dialect is second.engine.dialect
    assert _compiled_cache(first) is _compiled_cache(second)
    first.ensure_tables([TABLE])
    first.replace_rows(TABLE, None, pd.DataFrame({"x": [1, 2]}))
    assert len(_compiled_cache(second)) > 0  # what the first compiled
    with first.engine.connect() as held:  # one warehouse's dispose leaves another's be
        second.count(TABLE)
        second.dispose()
        assert held.execute(sa.select(sa.func.count()).select_from(TABLE)).scalar() == 2
    first.dispose()
    # Both disposed, another process can write the file: no connection is left open.
    writer = textwrap.dedent(
        f"""
        import duckdb
        con = duckdb.connect({str(path)!r})
        con.execute("INSERT INTO t VALUES (3)")
        con.close()
        """
    )
    subprocess.run([sys.executable, "-c", writer], check=True, capture_output=True)
    third = Warehouse(f"duckdb:///{path}")
    try:
        assert third.count(TABLE) == 3
    finally:
        third.dispose()
    # The template the three were built on never connected.
    template, _ = engines._templates[f"duckdb:///{path}"]
    assert template.pool.checkedin() == template.pool.checkedout() == 0


def test_settings_are_each_warehouses_own_and_in_memory_databases_share_nothing(tmp_path):
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    plain, tuned = Warehouse(url), Warehouse(url, postgres_settings={"work_mem": "8MB"})
    assert plain.engine.dialect is tuned.engine.dialect
    assert settings_of(plain.engine) == {"jit": "off"}
    assert settings_of(tuned.engine) == {"work_mem": "8MB"}
    # Each connection to ":memory:" is a database of its own, and so is each warehouse.
    one, two = Warehouse("duckdb:///:memory:"), Warehouse("duckdb:///:memory:")
    assert one.engine.dialect is not two.engine.dialect
    one.ensure_tables([TABLE])
    assert not sa.inspect(two.engine).has_table("t")
    for wh in (plain, tuned, one, two):
        wh.dispose()


def test_the_least_recently_used_urls_are_forgotten_beyond_the_kept_number(tmp_path, monkeypatch):
    # A smaller limit than the module's, so that three URLs pass it; nothing is mocked.
    monkeypatch.setattr(engines, "KEPT_TEMPLATES", 2)
    urls = [f"duckdb:///{tmp_path / f'w{i}.duckdb'}" for i in range(3)]
    dialects = [engines.warehouse_engine(url).dialect for url in urls[:2]]
    engines.warehouse_engine(urls[0])  # now the most recently used: w1 goes next
    engines.warehouse_engine(urls[2])
    assert engines.warehouse_engine(urls[0]).dialect is dialects[0]
    assert engines.warehouse_engine(urls[1]).dialect is not dialects[1]


def test_a_duckdb_files_folder_is_made_again_when_it_went(tmp_path):
    folder = tmp_path / "data"
    url = f"duckdb:///{folder / 'w.duckdb'}"
    Warehouse(url).dispose()
    assert folder.is_dir()
    shutil.rmtree(folder)
    wh = Warehouse(url)
    try:
        wh.ensure_tables([TABLE])
        assert wh.count(TABLE) == 0
    finally:
        wh.dispose()


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
    from the compiled cache ("[cached since ...]") or was compiled ("[generated in ...]").
    A daily run opens a new warehouse, as each Dagster step does; from the second daily run
    on, every statement of the calendar and the KPI values is taken from the cache, except
    DDL, which SQLAlchemy never caches ("[no key ...]"). A statement naming a Table object
    made anew each run (a temporary table) would be compiled again every time: this test
    fails on any such statement added to the daily path, as it should."""
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
