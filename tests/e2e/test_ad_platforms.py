"""The demo's ad spend through the APIs equals the same spend through files.

The same generated spend reaches the warehouse two ways: every platform in the landing
files (``DEMO_AD_SOURCE=files``), or Google Ads and Meta pulled by the production resources
through the official clients from the demo's local fakes of both APIs (LinkedIn stays in
files). Every KPI reading ``paid_media`` must give the same values both ways; spend by
channel must add up to total spend. Whole-job runs, because the whole job is what is
tested: the raw assets, the union view and the KPI steps.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from demo.ad_platforms import demo_ad_platform_resources
from demo.generator import ga4_traffic
from demo.landing import write_demo_landing
from kpi.language.loader import load_catalog
from kpi.warehouse.connection import Warehouse
from tests.support import fake_ga4, run_pipeline

START, END = dt.date(2026, 3, 1), dt.date(2026, 4, 12)


def _run(tmp_path, monkeypatch, mode: str):
    monkeypatch.setenv("DEMO_AD_SOURCE", mode)
    monkeypatch.setenv("DEMO_START", START.isoformat())
    monkeypatch.setenv("DEMO_END", END.isoformat())
    landing = tmp_path / mode / "landing"
    write_demo_landing(landing, START, END)
    url = f"duckdb:///{tmp_path / mode / 'warehouse.duckdb'}"
    with fake_ga4(ga4_traffic(START, END)) as server:
        result = run_pipeline(
            url, server.endpoint, landing, START, END, ad_platforms=demo_ad_platform_resources()
        )
    assert result.success
    return url, result


def _values(url: str, kpis: list[str]) -> pd.DataFrame:
    wh = Warehouse(url)
    try:
        frame = wh.read(
            sa.text(
                "SELECT kpi_id, grain, period_start, channel, device, campaign, value "
                "FROM kpi.kpi_values WHERE kpi_id IN :k"
            ).bindparams(sa.bindparam("k", expanding=True)),
            k=kpis,
        )
    finally:
        wh.dispose()
    return frame.fillna({"channel": "*", "device": "*", "campaign": "*"})


@pytest.mark.slow
def test_spend_kpis_from_the_apis_equal_those_from_the_files(tmp_path, monkeypatch):
    cat = load_catalog()
    kpis = sorted(
        k
        for k in cat.kpis
        # Claims exist only on the API road (files carry no claimed conversions).
        if not cat.kpis[k].reconciles_claims
        and "paid_media"
        in {m.source for d in [cat.kpis[k], *cat.dependencies(k)] for _, m in d.measures}
    )
    assert {"ad_cost", "cost_per_click", "roas"} <= set(kpis)
    files_url, _ = _run(tmp_path, monkeypatch, "files")
    api_url, result = _run(tmp_path, monkeypatch, "api")

    # The API road really was taken: Google Ads and Meta rows came from the APIs, and only
    # LinkedIn's from the files; their quality suites passed.
    wh = Warehouse(api_url)
    try:
        origins = wh.read(
            sa.text(
                "SELECT platform, count(*) AS n FROM raw.ad_spend GROUP BY 1 UNION ALL "
                "SELECT 'api:' || platform, count(*) FROM raw.google_ads GROUP BY 1 UNION ALL "
                "SELECT 'api:' || platform, count(*) FROM raw.meta_ads GROUP BY 1"
            )
        )
    finally:
        wh.dispose()
    assert set(origins["platform"]) == {"linkedin", "api:google_ads", "api:meta"}
    checks = {
        c.asset_key.to_user_string(): c.passed
        for c in result.get_asset_check_evaluations()
        if c.check_name == "quality_suite"
    }
    assert checks["google_ads"] and checks["meta_ads"]

    by_files, by_api = _values(files_url, kpis), _values(api_url, kpis)
    keys = ["kpi_id", "grain", "period_start", "channel", "device", "campaign"]
    both = by_files.merge(by_api, on=keys, how="outer", suffixes=("_files", "_api"), indicator=True)
    assert (both["_merge"] == "both").all(), both[both["_merge"] != "both"].head()
    assert len(both) > 1000
    a, b = both["value_files"], both["value_api"]
    same = (a.isna() & b.isna()) | ((a - b).abs() <= 1e-9 * b.abs().clip(lower=1.0))
    assert same.all(), both[~same].head()

    # Spend by channel adds up to total spend, in every period of every grain.
    spend = by_api[(by_api["kpi_id"] == "ad_cost") & (by_api["device"] == "*")]
    spend = spend[spend["campaign"] == "*"]
    total = spend[spend["channel"] == "*"].set_index(["grain", "period_start"])["value"]
    channels = spend[spend["channel"] != "*"].groupby(["grain", "period_start"])["value"].sum()
    assert set(spend["channel"]) >= {"Paid Search", "Paid Social", "Display"}
    assert ((channels - total).abs() <= 1e-6).all() and len(total) == len(channels) > 40
