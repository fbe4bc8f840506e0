"""PostgreSQL plans KPI statements on fresh statistics: a bulk write analyzes its table.

Autovacuum refreshes statistics only after 10% of a table changed and a minute or more
later; a load followed at once by the KPI statements reading it was planned on the
statistics of the empty table (nested loops over thousands of rows: the 425-day demo's
comparisons took 100 s instead of 8). These tests read PostgreSQL's own catalogue.
"""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from kpi.warehouse.connection import ANALYZE_MIN_ROWS, Warehouse

pytestmark = pytest.mark.postgres


def _table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "facts",
        metadata,
        sa.Column("day", sa.Integer),
        sa.Column("value", sa.Float),
        schema="kpi",
    )


def _estimated_rows(wh: Warehouse) -> float:
    # reltuples: -1 (never analyzed) or 0 until statistics are gathered
    return float(wh.scalar(sa.select(sa.text("reltuples FROM pg_class WHERE relname = 'facts'"))))


def _analyzed(wh: Warehouse) -> bool:
    query = sa.text(
        "SELECT last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL "
        "FROM pg_stat_user_tables WHERE schemaname = 'kpi' AND relname = 'facts'"
    )
    with wh.engine.connect() as conn:
        return bool(conn.execute(query).scalar())


def test_a_bulk_insert_refreshes_the_statistics(postgres_url):
    wh = Warehouse(postgres_url)
    table = _table(sa.MetaData())
    wh.ensure_tables([table])
    rows = pd.DataFrame({"day": range(ANALYZE_MIN_ROWS * 3), "value": 1.5})
    wh.replace_rows(table, None, rows)
    assert _analyzed(wh)
    assert _estimated_rows(wh) == len(rows)
    wh.dispose()


def test_a_bulk_insert_from_a_select_refreshes_the_statistics(postgres_url):
    wh = Warehouse(postgres_url)
    table = _table(sa.MetaData())
    wh.ensure_tables([table])
    numbers = sa.select(
        sa.func.generate_series(1, 5000).label("day"), sa.literal(2.0).label("value")
    )
    wh.replace_from_select(table, None, [numbers])
    assert _estimated_rows(wh) == 5000
    wh.dispose()


def test_a_small_write_leaves_the_statistics_to_autovacuum(postgres_url):
    wh = Warehouse(postgres_url)
    table = _table(sa.MetaData())
    wh.ensure_tables([table])
    wh.replace_rows(table, None, pd.DataFrame({"day": [1, 2, 3], "value": 1.0}))
    assert not _analyzed(wh)
    wh.dispose()
