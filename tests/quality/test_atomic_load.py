"""A partition's raw rows and its quarantined rows are written in one transaction: when the
second write fails, neither table changes (a real DuckDB file and a real PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

import quality.writes
from assets.settings import catalog
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.schema import source_table
from quality.quarantine import quarantine_table
from quality.writes import write_with_quarantine
from tests.ingest.test_files_loading import (
    AD_HEADER,
    AD_ROWS,
    FIXTURE_DAYS,
    load,
    query,
    write_landing,
)

D = dt.date
WINDOW = (D(2026, 1, 5), D(2026, 1, 6))


def _ad_rows(campaigns: list[tuple[str, float]], line: int = 2) -> pd.DataFrame:
    """ad_spend rows as the file asset hands them over (already converted to EUR)."""
    return pd.DataFrame(
        [
            {
                "date": D(2026, 1, 5),
                "platform": "meta",
                "channel": "social",
                "campaign": campaign,
                "impressions": 100,
                "clicks": 10,
                "cost": cost,
                "original_cost": cost,
                "original_currency": "EUR",
                "fx_rate": 1.0,
                "_source_file": "a.csv",
                "_source_line": line + i,
                "_run_id": "run",
                "_loaded_at": dt.datetime(2026, 1, 7, tzinfo=dt.UTC),
            }
            for i, (campaign, cost) in enumerate(campaigns)
        ]
    )


def _write(wh: Warehouse, table: sa.Table, frame: pd.DataFrame, rejected=None):
    def days(rows: pd.DataFrame) -> pd.Series:
        return rows["date"]

    return write_with_quarantine(
        wh,
        table,
        table.c.date.between(*WINDOW),
        frame,
        "ad_spend",
        "run",
        days,
        lambda q: q.c._partition.between(*WINDOW),
        rejected,
        WINDOW,
    )


def _snapshot(wh: Warehouse, table: sa.Table) -> list[tuple]:
    frame = wh.read(sa.select(table).order_by(*table.c))
    return [tuple(r) for r in frame.astype(object).itertuples(index=False)]


def test_a_failing_quarantine_write_rolls_back_the_raw_write(warehouse_url):
    table = source_table("ad_spend", catalog().sources["ad_spend"], sa.MetaData())
    qtable = quarantine_table(table, sa.MetaData())
    wh = Warehouse(warehouse_url)
    try:
        wh.ensure_tables([table])
        # A first load: two good rows, one quarantined by the suite (negative cost).
        _, _, kept = _write(wh, table, _ad_rows([("a", 1.0), ("b", 2.0), ("refund", -3.0)]))
        assert (kept.loaded, kept.quarantined) == (2, 1)
        raw_before, quarantine_before = _snapshot(wh, table), _snapshot(wh, qtable)

        # The re-run of the same window brings other rows and a rejected line whose line
        # number is not a number: the quarantine table's BIGINT column refuses it, so the
        # database fails the second write after the raw rows were replaced. No mock: the
        # failure is the database's own.
        rejected = pd.DataFrame(
            {
                "_source_file": ["a.csv"],
                "_source_line": ["line seven"],
                "_problem": ["parse: a.csv:7: expected 8 fields"],
                "_partition_day": [D(2026, 1, 5)],
            }
        )
        with pytest.raises(sa.exc.SQLAlchemyError):
            _write(wh, table, _ad_rows([("c", 5.0)]), rejected)
        assert _snapshot(wh, table) == raw_before
        assert _snapshot(wh, qtable) == quarantine_before

        # The corrected re-run replaces both, and a second one changes nothing.
        for _ in range(2):
            rejected["_source_line"] = [7]
            _write(wh, table, _ad_rows([("c", 5.0), ("d", -1.0)]), rejected)
            assert wh.count(table) == 1
            reasons = wh.read(sa.select(qtable.c._failed_expectations).order_by("_source_line"))
            assert reasons["_failed_expectations"].tolist() == [
                "between(cost, min=0)",
                "parse: a.csv:7: expected 8 fields",
            ]
    finally:
        wh.dispose()


def test_a_run_whose_quarantine_write_fails_leaves_the_partition_as_it_was(
    warehouse_url, tmp_path, monkeypatch
):
    root = tmp_path / "landing"
    first = [*AD_ROWS, "2026-01-07,meta,social,refund,10,1,-2.00,EUR"]
    write_landing(root, {"a.csv": "\n".join([AD_HEADER, *first]) + "\n"})
    assert load(warehouse_url, root, window=FIXTURE_DAYS).success
    raw_sql = "select * from raw.ad_spend order by date, platform, campaign"
    quarantine_sql = "select * from raw.ad_spend__quarantine order by _source_line"
    raw_before, quarantine_before = (
        query(warehouse_url, raw_sql),
        query(warehouse_url, quarantine_sql),
    )
    registry_before = query(
        warehouse_url, "select count(*) from raw.file_loads where source = 'ad_spend'"
    )
    assert len(raw_before) == 3 and len(quarantine_before) == 1

    # A corrected delivery, which would replace both tables' rows of the window. The one
    # patch, because the fault cannot happen here for real: the pipeline never builds a
    # quarantine row its table refuses. A wrapper around the real quarantine_frame nulls the
    # quarantine ids, so the database itself rejects the second write (NOT NULL column).
    write_landing(
        root,
        {"b.csv": "\n".join([AD_HEADER, "2026-01-07,meta,social,late,10,1,-5.00,EUR"]) + "\n"},
    )
    real = quality.writes.quarantine_frame

    def without_ids(*args, **kwargs) -> pd.DataFrame:
        return real(*args, **kwargs).assign(_quarantine_id=None)

    monkeypatch.setattr(quality.writes, "quarantine_frame", without_ids)
    result = load(warehouse_url, root, window=FIXTURE_DAYS, raise_on_error=False)
    assert not result.success
    assert query(warehouse_url, raw_sql) == raw_before
    assert query(warehouse_url, quarantine_sql) == quarantine_before
    assert (
        query(warehouse_url, "select count(*) from raw.file_loads where source = 'ad_spend'")
        == registry_before
    )

    # Without the fault the same run loads both, once.
    monkeypatch.setattr(quality.writes, "quarantine_frame", real)
    for _ in range(2):
        assert load(warehouse_url, root, window=FIXTURE_DAYS).success
        assert len(query(warehouse_url, raw_sql)) == 3
        assert [
            r[1]
            for r in query(
                warehouse_url,
                "select _source_line, campaign from raw.ad_spend__quarantine order by campaign",
            )
        ] == ["late", "refund"]
