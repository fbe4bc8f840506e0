"""kpi/warehouse/distinct_on.py: DISTINCT ON the keys on DuckDB, a plain DISTINCT elsewhere,
the same rows on both real warehouses."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from kpi.cli import DIALECTS, load_dialect
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.distinct_on import distinct_on_in_duckdb

METADATA = sa.MetaData()
PERIODS = sa.Table(
    "spine_rows",
    METADATA,
    sa.Column("period_start", sa.Integer),
    sa.Column("campaign", sa.String),
    sa.Column("period_end", sa.Integer),  # a function of period_start, as in a spine
)


def _spine() -> sa.Select:
    t = PERIODS
    keys = distinct_on_in_duckdb(t.c.period_start, t.c.campaign)
    return sa.select(t.c.period_start, t.c.campaign, t.c.period_end).ext(keys)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_distinct_on_the_keys_on_duckdb_only(dialect):
    compiled, _ = load_dialect(dialect)
    sql = " ".join(str(_spine().compile(dialect=compiled)).split()).replace('"', "")
    sql = sql.replace("`", "")
    if dialect == "duckdb":
        expected = "SELECT DISTINCT ON (spine_rows.period_start, spine_rows.campaign) "
    else:  # PostgreSQL sorts for it (slower); BigQuery and Snowflake have none
        expected = "SELECT DISTINCT spine_rows.period_start"
    assert sql.startswith(expected), sql


def test_the_same_rows_on_each_warehouse(warehouse_url):
    wh = Warehouse(warehouse_url)
    try:
        wh.ensure_tables([PERIODS])
        rows = [(1, "spring", 7), (1, "spring", 7), (1, "summer", 7), (8, "spring", 14)]
        with wh.transaction() as conn:
            conn.execute(
                PERIODS.insert(),
                [
                    dict(zip(("period_start", "campaign", "period_end"), r, strict=True))
                    for r in rows
                ],
            )
        got = sorted(wh.rows(_spine()))
    finally:
        wh.dispose()
    assert got == [(1, "spring", 7), (1, "summer", 7), (8, "spring", 14)]
