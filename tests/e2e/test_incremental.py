"""Incremental daily runs give the tables a from-scratch run gives, row for row.

Real Dagster runs of the whole job (the daily work is what is tested): 60 days loaded, then
seven daily runs as the schedule makes them (the last three days, as of the last), with
GA4 revising day -2 before one of them and a landing file changing before another. A
second warehouse loads the final data in one run from scratch. Every table of the ``kpi``
schema must hold the same rows, apart from the columns that stamp when a row was written.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from demo.generator import ga4_traffic
from demo.landing import write_demo_landing
from kpi.warehouse.connection import Warehouse
from tests.support import PROPERTY_ID, fake_ga4, run_pipeline

D = dt.date
START, LOADED = D(2026, 1, 1), D(2026, 3, 1)  # 60 days
LAST = LOADED + dt.timedelta(days=7)
LOOKBACK = 3
# An event log of each run, not a table a run recomputes.
NOT_RECOMPUTED = {"kpi_alerts", "refresh_state"}


def _revise(traffic: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """GA4 restating ``day``: 7 more sessions and 2 more purchases on its first row."""
    revised = traffic.copy()
    first = revised.index[revised["date"] == day][0]
    revised.loc[first, "sessions"] += 7
    revised.loc[first, "transactions"] += 2
    revised.loc[first, "purchaseRevenue"] += 99.5
    return revised


def _change_ad_spend(landing: Path, day: dt.date) -> None:
    """A re-delivered ad-spend file with one cost of ``day`` corrected."""
    path = landing / "ad_spend" / f"ad_spend_{day:%Y-%m}.csv"
    frame = pd.read_csv(path, dtype=str)
    row = frame.index[frame["date"] == day.isoformat()][0]
    frame.loc[row, "cost"] = f"{float(frame.loc[row, 'cost']) + 123.45:.2f}"
    frame.to_csv(path, index=False, lineterminator="\n")


def _kpi_tables(url: str) -> dict[str, pd.DataFrame]:
    """Every table of the kpi schema, without the write-time stamps, rows sorted."""
    wh = Warehouse(url)
    try:
        inspector = sa.inspect(wh.engine)
        out = {}
        for name in inspector.get_table_names(schema="kpi"):
            if name in NOT_RECOMPUTED:
                continue
            frame = wh.read(sa.text(f"SELECT * FROM kpi.{name}"))
            frame = frame.drop(columns=[c for c in frame.columns if c.endswith("_at")])
            rows = sorted(frame.itertuples(index=False, name=None), key=_sort_key)
            out[name] = pd.DataFrame(rows, columns=frame.columns)
        return out
    finally:
        wh.dispose()


def _sort_key(row: tuple) -> tuple:
    return tuple((v is None, str(v) if not isinstance(v, float) else f"{v:.9g}") for v in row)


def _same(a, b) -> bool:
    if pd.isna(a) is True or pd.isna(b) is True:
        return pd.isna(a) is True and pd.isna(b) is True
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


@pytest.fixture
def scratch_url(request, warehouse_url, tmp_path) -> str:
    """A second, empty warehouse of the same kind."""
    if warehouse_url.startswith("duckdb"):
        return f"duckdb:///{tmp_path / 'scratch.duckdb'}"
    return request.getfixturevalue("make_postgres_url")()


@pytest.mark.slow
def test_daily_runs_equal_a_run_from_scratch(warehouse_url, scratch_url, tmp_path):
    landing = tmp_path / "landing"
    write_demo_landing(landing, START, LAST)
    traffic = ga4_traffic(START, LAST)
    with fake_ga4(traffic[traffic["date"] <= LOADED]) as server:
        assert run_pipeline(warehouse_url, server.endpoint, landing, START, LOADED).success
        for offset in range(1, 8):
            day = LOADED + dt.timedelta(days=offset)
            if offset == 3:
                traffic = _revise(traffic, day - dt.timedelta(days=2))
            if offset == 5:
                _change_ad_spend(landing, day - dt.timedelta(days=1))
            server.set_rows(PROPERTY_ID, traffic[traffic["date"] <= day])
            first = day - dt.timedelta(days=LOOKBACK - 1)
            assert run_pipeline(warehouse_url, server.endpoint, landing, first, day).success

    scratch = scratch_url
    with fake_ga4(traffic) as server:
        assert run_pipeline(scratch, server.endpoint, landing, START, LAST).success

    daily, full = _kpi_tables(warehouse_url), _kpi_tables(scratch)
    assert sorted(daily) == sorted(full)
    assert {"kpi_values", "kpi_comparisons", "kpi_targets", "periods"} <= set(daily)
    for name in full:
        a, b = daily[name], full[name]
        assert list(a.columns) == list(b.columns), name
        assert len(a) == len(b), f"{name}: {len(a)} rows after daily runs, {len(b)} from scratch"
        for got, expected in zip(a.itertuples(index=False), b.itertuples(index=False), strict=True):
            assert all(_same(x, y) for x, y in zip(got, expected, strict=True)), (
                f"{name}:\n  daily   {got}\n  scratch {expected}"
            )
