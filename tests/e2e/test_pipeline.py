"""The whole pipeline in real Dagster runs: fake GA4 over gRPC, landing files, a real
warehouse (DuckDB file and PostgreSQL), Great Expectations checks, KPI SQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from dagster import AssetCheckSeverity, AssetKey, DagsterInstance

from demo.generator import ga4_traffic, outage_day
from demo.landing import write_demo_landing
from kpi.compute.tables import KpiTables
from kpi.language.loader import load_catalog
from kpi.warehouse.connection import Warehouse
from tests.support import fake_ga4, run_pipeline, traffic_rows

D = dt.date
RAW_TABLES = [
    "ga4_traffic",
    "ga4_users_monthly",
    "ga4_ecommerce",
    "ga4_users_weekly",
    "ad_spend",
    "orders",
    "survey_answers",
    "fx_rates",
    "donations",
    "volunteer_hours",
    "operations",
    "market",
]


def _counts(url: str) -> dict[str, int]:
    wh = Warehouse(url)
    try:
        tables = [
            *(f"raw.{name}" for name in RAW_TABLES),
            "kpi.periods",
            "kpi.kpi_values",
            "kpi.kpi_targets",
            "kpi.kpi_comparisons",
            "kpi.kpi_catalog",
            "kpi.kpi_changes",
            "kpi.kpi_scorecard",
        ]
        out = {}
        for name in tables:
            schema, table = name.split(".")
            out[name] = wh.count(sa.table(table, schema=schema))
        return out
    finally:
        wh.dispose()


@pytest.mark.slow
def test_whole_job_on_demo_data_is_idempotent(warehouse_url, tmp_path):
    start, end = D(2026, 2, 1), D(2026, 3, 10)
    landing = tmp_path / "landing"
    write_demo_landing(landing, start, end)
    with fake_ga4(ga4_traffic(start, end)) as server:
        first = run_pipeline(warehouse_url, server.endpoint, landing, start, end)
        assert first.success
        counts = _counts(warehouse_url)
        # 38 days of demo data: every raw table and every KPI table is filled.
        assert all(n > 0 for n in counts.values()), counts
        # Days, weeks (Mon 2026-01-26 .. Mon 2026-03-09), months, one quarter, one year.
        assert counts["kpi.periods"] == 38 + 7 + 2 + 1 + 1

        # Re-running the last three days (the daily lookback) changes no row count...
        again = run_pipeline(warehouse_url, server.endpoint, landing, D(2026, 3, 8), end, end)
        assert again.success
        assert _counts(warehouse_url) == counts

        _assert_stored_values_match_self_contained_queries(warehouse_url)

    checks = first.get_asset_check_evaluations()
    raw_checks = [c for c in checks if c.asset_key.to_user_string() in RAW_TABLES]
    assert {c.asset_key.to_user_string() for c in raw_checks} == set(RAW_TABLES)
    assert all(c.passed for c in raw_checks if c.check_name == "quality_suite")


def _assert_stored_values_match_self_contained_queries(url: str) -> None:
    """Every row the run wrote (daily cubes, period rollups, one fused statement for the
    plain KPIs) equals the row of the self-contained query ``kpi compile`` prints for that
    KPI, grain and slice: the two paths agree on the whole shipped catalogue."""
    tables = KpiTables.for_catalog(load_catalog())  # without cubes: self-contained queries
    v = tables.values
    keys = ["kpi_id", "grain", "period_start", *tables.catalog.dimensions]
    numbers = ["value", "numerator", "denominator", "sample_size"]
    wh = Warehouse(url)
    try:
        stored = wh.read(sa.select(*[v.c[c] for c in keys + numbers]))
        queries = [q for k in tables.catalog.kpis for q in tables.compiler.compile_all(k)]
        expected = pd.concat([wh.read(q)[keys + numbers] for q in queries], ignore_index=True)
    finally:
        wh.dispose()
    assert len(stored) == len(expected) > 0
    both = stored.fillna({d: "*" for d in tables.catalog.dimensions}).merge(
        expected.fillna({d: "*" for d in tables.catalog.dimensions}),
        on=keys,
        how="outer",
        suffixes=("_stored", "_query"),
        indicator=True,
    )
    assert (both["_merge"] == "both").all(), both[both["_merge"] != "both"].head()
    for column in numbers:
        a = both[f"{column}_stored"].astype(float)
        b = both[f"{column}_query"].astype(float)
        same = np.isclose(a, b, rtol=1e-9, atol=0) | (a.isna() & b.isna())
        assert same.all(), both.loc[~same, [*keys, f"{column}_stored", f"{column}_query"]]


CASE = (
    Path(__file__).resolve().parents[1] / "kpi_cases" / "conversion_rate_and_aov_ratio_of_sums.yaml"
)
SHIPPED = Path(__file__).resolve().parents[2] / "kpi_definitions"


def test_the_hand_worked_conversion_case_uses_the_shipped_definitions():
    """The hand-worked conversion rate and AOV (tests/kpi_cases/, run on both warehouses by
    test_kpi_cases.py) are computed with the shipped catalogue's definitions: the same
    measures over the same GA4 columns, time zone and dimension columns."""
    case = yaml.safe_load(CASE.read_text())
    shipped_kpis = {
        k["id"]: k
        for path in SHIPPED.glob("*.yaml")
        if path.name != "sources.yaml"
        for k in (yaml.safe_load(path.read_text()) or {}).get("kpis") or []
    }
    shipped = yaml.safe_load((SHIPPED / "sources.yaml").read_text())
    for kpi in case["kpis"]:
        ours, theirs = kpi, shipped_kpis[kpi["id"]]
        for field in ("type", "measure", "numerator", "denominator", "dimensions", "grains"):
            assert ours.get(field) == theirs.get(field), (kpi["id"], field)
    ours, theirs = case["sources"]["ga4_traffic"], shipped["sources"]["ga4_traffic"]
    assert ours["table"] == theirs["table"] and ours["time"] == theirs["time"]
    assert ours["dimensions"] == {d: theirs["dimensions"][d] for d in ("channel", "device")}
    for name, column in ours["columns"].items():
        assert column == {k: theirs["columns"][name][k] for k in column}, name
    assert case["reporting"]["time_zone"] == shipped["reporting"]["time_zone"]


def _materialized(result) -> set[str]:
    return {
        m.asset_key.to_user_string()
        for m in result.get_asset_materialization_events()
        for m in [m.event_specific_data.materialization]
    }


KPI_ASSETS = {"kpi_periods", "kpi_values", "kpi_targets", "kpi_comparisons"}


@pytest.mark.slow
def test_broken_raw_row_is_quarantined_and_outage_day_warns_while_kpis_run(duckdb_url, tmp_path):
    # Demo traffic ending 2026-03-10 has its tracking outage (-80 % sessions) on 2026-01-29;
    # the run covers nine days before it, enough history for the volume comparison.
    outage = outage_day(D(2026, 3, 10))
    assert outage == D(2026, 1, 29)
    broken = traffic_rows([(D(2026, 1, 22), "Direct", "desktop", -40, 10, 1, 20.0)])
    broken["sessionCampaignName"] = "broken-tag"  # its own key: only between() fails
    rows = pd.concat([ga4_traffic(D(2026, 1, 20), D(2026, 3, 10)), broken], ignore_index=True)
    landing = tmp_path / "landing"  # files are not the point here: not in the selection
    landing.mkdir()
    instance = DagsterInstance.ephemeral()
    with fake_ga4(rows) as server:
        result = run_pipeline(
            duckdb_url,
            server.endpoint,
            landing,
            D(2026, 1, 20),
            D(2026, 1, 31),
            instance=instance,
            # kpi_periods is the one asset downstream of ga4_traffic: that it and kpi_values
            # run shows the warning blocks nothing (the rest of the KPI chain depends on them).
            assets=["ga4_traffic", "kpi_catalog", "kpi_periods", "kpi_values"],
        )
    assert result.success
    ga4_check = next(
        c
        for c in result.get_asset_check_evaluations()
        if c.asset_key == AssetKey("ga4_traffic") and c.check_name == "quality_suite"
    )
    # The outage is a warning: visible, not blocking.
    assert not ga4_check.passed
    assert ga4_check.severity == AssetCheckSeverity.WARN
    anomalies = ga4_check.metadata["volume_anomalies"].value
    assert [a.split(":")[0] for a in anomalies] == ["2026-01-29"]
    assert "volume(sum(sessions)" in ga4_check.metadata["failures"].value
    assert ga4_check.metadata["rows_quarantined"].value == 1
    assert ga4_check.metadata["rows_conserved"].value is True
    received = ga4_check.metadata["rows_received"].value
    assert received == ga4_check.metadata["rows_loaded"].value + 1

    wh = Warehouse(duckdb_url)
    try:
        quarantined = wh.read(
            sa.text("select date, sessions, _failed_expectations from raw.ga4_traffic__quarantine")
        )
        negative = wh.count(sa.table("ga4_traffic", schema="raw"), sa.text("sessions < 0"))
    finally:
        wh.dispose()
    assert quarantined.values.tolist() == [[D(2026, 1, 22), -40, "between(sessions, min=0)"]]
    assert negative == 0
    assert _materialized(result) >= {"ga4_traffic", "kpi_periods", "kpi_values"}


def test_table_level_failure_fails_blocking_check_and_blocks_kpis(duckdb_url, tmp_path):
    # No traffic at all for the window: ga4_traffic's row_count(min=1) fails. The files are
    # not in the selection, so GA4 is what blocks.
    landing = tmp_path / "landing"
    landing.mkdir()
    instance = DagsterInstance.ephemeral()
    with fake_ga4(traffic_rows([])) as server:
        result = run_pipeline(
            duckdb_url,
            server.endpoint,
            landing,
            D(2026, 1, 1),
            D(2026, 1, 31),
            instance=instance,
            raise_on_error=False,
            assets=["ga4_traffic", "kpi_catalog", *KPI_ASSETS],
        )
    assert not result.success
    ga4_check = next(
        c
        for c in result.get_asset_check_evaluations()
        if c.asset_key == AssetKey("ga4_traffic") and c.check_name == "quality_suite"
    )
    assert not ga4_check.passed
    assert ga4_check.severity == AssetCheckSeverity.ERROR
    assert "row_count(min=1)" in ga4_check.metadata["failures"].value
    materialized = _materialized(result)
    assert "ga4_traffic" in materialized
    assert not materialized & KPI_ASSETS
    # The catalog reads only the definitions, so it is refreshed even when data is bad.
    assert "kpi_catalog" in materialized
