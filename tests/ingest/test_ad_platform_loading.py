"""Ad platform rows into the warehouse: the production resources pull through the official
clients (google-ads over TLS gRPC, facebook-business over HTTP) from the local fakes of both
APIs, and ``ingest.ad_platforms.loading`` writes them into a real DuckDB file and a real
PostgreSQL. Nothing is mocked; only the servers are not Google's and Meta's."""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd
import pytest
import sqlalchemy as sa

from demo.fake_google_ads import FakeGoogleAds
from demo.fake_google_ads.server import FakeAccount
from demo.fake_google_ads.tls import process_certificate
from demo.fake_meta import FakeMeta
from demo.fake_meta.server import FakeAdAccount
from ingest.ad_platforms.loading import load_campaign_days, repull_window
from kpi.compute.tables import KpiTables
from kpi.language.loader import load_catalog
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.schema import source_table
from resources.ad_platforms import GoogleAdsResource, MetaAdsResource

D = dt.date
DAYS = [D(2026, 3, 1) + dt.timedelta(days=i) for i in range(10)]
CUSTOMER, OTHER = "1234567890", "5550001111"
ACCOUNT = "1020304050"
LOG = logging.getLogger("test_ad_platform_loading")


def _google_rows(conversions: float = 2.0, usd: bool = False) -> list[dict]:
    return [
        {
            "date": day,
            "campaign_id": 11,
            "campaign": "brand_search",
            "channel_type": "SEARCH",
            "cost_micros": 1_234_567_890 + i,
            "clicks": 10 + i,
            "impressions": 100,
            "conversions": conversions,
            "conversions_value": 120.5,
        }
        for i, day in enumerate(DAYS)
    ]


@pytest.fixture
def google():
    accounts = {CUSTOMER: FakeAccount(rows=_google_rows()), OTHER: FakeAccount(rows=[])}
    with FakeGoogleAds(accounts, process_certificate(), refresh_token="r") as fake:
        yield fake


def _google_resource(fake: FakeGoogleAds, accounts: str = CUSTOMER) -> GoogleAdsResource:
    return GoogleAdsResource(
        account_ids=accounts,
        developer_token="dev",
        client_id="c",
        client_secret="s",
        refresh_token="r",
        endpoint=fake.endpoint,
        token_uri=fake.token_uri,
        initial_backoff_s=0.0,
    )


def _wh(url: str) -> Warehouse:
    wh = Warehouse(url)
    cat = load_catalog()
    rates = source_table("fx_rates", cat.sources["fx_rates"], sa.MetaData())
    wh.ensure_tables([rates])
    wh.replace_rows(
        rates,
        None,
        pd.DataFrame({"date": DAYS[:-1], "currency": "USD", "rate": 0.5}),  # none on the 10th
    )
    return wh


def _load(wh: Warehouse, resource, source: str, start=DAYS[0], end=DAYS[-1]):
    pulls, failures = resource.pull(start, end)
    assert failures == {}
    return load_campaign_days(
        wh, load_catalog(), source, resource.platform, pulls, start, end, "run-1", LOG
    )


def _table(wh: Warehouse, name: str) -> pd.DataFrame:
    return wh.read(sa.text(f"SELECT * FROM raw.{name} ORDER BY date, account, campaign_id"))


def test_the_repull_window_reaches_back_from_the_last_partition_not_before_history():
    assert repull_window(D(2026, 3, 31), D(2026, 3, 31), 30, D(2026, 1, 1)) == (
        D(2026, 3, 2),
        D(2026, 3, 31),
    )
    # A backfill of a whole month pulls the month, whatever the window.
    assert repull_window(D(2026, 1, 1), D(2026, 1, 31), 3, D(2025, 1, 1))[0] == D(2026, 1, 1)
    assert repull_window(D(2026, 1, 5), D(2026, 1, 5), 28, D(2026, 1, 1))[0] == D(2026, 1, 1)
    with pytest.raises(ValueError, match="at least 1 day"):
        repull_window(D(2026, 1, 5), D(2026, 1, 5), 0, D(2026, 1, 1))


def test_a_revision_of_day_minus_5_is_replaced_and_three_reruns_add_nothing(warehouse_url, google):
    wh = _wh(warehouse_url)
    first = _load(wh, _google_resource(google), "google_ads")
    assert (first.conservation.received, first.conservation.loaded) == (10, 10)
    before = _table(wh, "google_ads")
    # Google Ads attributes late conversions to day D-5 (the 5th of the 10 days).
    revised = _google_rows()
    revised[4] = {**revised[4], "conversions": 7.0}
    google.set_rows(CUSTOMER, revised)
    for _ in range(3):
        again = _load(wh, _google_resource(google), "google_ads")
        assert (again.deleted, again.inserted) == (10, 10)
    after = _table(wh, "google_ads")
    assert len(after) == 10 == after[["account", "campaign_id", "date"]].drop_duplicates().shape[0]
    changed = after[after["conversions_claimed"] != before["conversions_claimed"]]
    assert list(changed["date"].astype(str)) == [str(DAYS[4])]
    assert changed["conversions_claimed"].iloc[0] == 7.0
    # Cost exact from micros: 1,234,567,890 micros are 1234.56789 (EUR account: rate 1).
    assert after["original_cost"].iloc[0] == 1234.56789 == after["cost"].iloc[0]
    wh.dispose()


def test_a_window_replaces_only_its_accounts_and_days_never_the_files(warehouse_url, google):
    wh = _wh(warehouse_url)
    cat = load_catalog()
    files = source_table("ad_spend", cat.sources["ad_spend"], sa.MetaData())
    wh.ensure_tables([files])
    wh.replace_rows(
        files,
        None,
        pd.DataFrame(
            [
                {
                    "date": DAYS[0],
                    "platform": "linkedin",
                    "channel": "social",
                    "campaign": "li",
                    "impressions": 5,
                    "clicks": 1,
                    "cost": 3.0,
                }
            ]
        ),
    )
    _load(wh, _google_resource(google), "google_ads")
    # Another account's window, and a shorter window of the first account: neither touches
    # the rows outside it.
    google.set_rows(CUSTOMER, [])
    _load(wh, _google_resource(google, accounts=CUSTOMER), "google_ads", DAYS[8], DAYS[9])
    kept = _table(wh, "google_ads")
    assert list(kept["date"]) == DAYS[:8]
    # The KPI steps make the view over every origin of ad spend.
    wh.ensure_tables(KpiTables.for_catalog(cat).all_tables())
    union = wh.read(sa.text("SELECT platform, count(*) AS n FROM raw.paid_media GROUP BY 1"))
    assert dict(zip(union["platform"], union["n"], strict=True)) == {"google_ads": 8, "linkedin": 1}
    wh.dispose()


def test_account_currency_is_converted_and_a_day_without_a_rate_is_quarantined(warehouse_url):
    rows = [
        {
            "date": day,
            "campaign_id": 7,
            "campaign": "us_social",
            "spend": "10.01",
            "clicks": 3,
            "impressions": 30,
            "actions": [{"action_type": "purchase", "value": "2"}],
            "action_values": [{"action_type": "purchase", "value": "80.00"}],
        }
        for day in DAYS
    ]
    accounts = {ACCOUNT: FakeAdAccount(currency="USD", time_zone="America/New_York", rows=rows)}
    with FakeMeta(accounts, access_token="t", page_size=3) as fake:
        resource = MetaAdsResource(
            account_ids=f"act_{ACCOUNT}",
            access_token="t",
            graph_url=fake.url,
            initial_backoff_s=0.0,
        )
        wh = _wh(warehouse_url)
        load = _load(wh, resource, "meta_ads")
    assert (load.conservation.loaded, load.conservation.quarantined) == (9, 1)
    assert load.other_zones == {f"act_{ACCOUNT}": "America/New_York"}
    loaded = _table(wh, "meta_ads")
    assert set(loaded["cost"]) == {5.005}  # 10.01 USD at 0.5
    assert set(loaded["conversions_value_claimed"]) == {40.0}  # converted as cost is
    assert set(loaded["original_currency"]) == {"USD"} and set(loaded["channel"]) == {"social"}
    held = wh.read(sa.text("SELECT * FROM raw.meta_ads__quarantine"))
    assert len(held) == 1
    reason = held["_failed_expectations"].iloc[0]
    assert "an exchange rate USD -> EUR for 2026-03-10 in the fx_rates source" in reason
    wh.dispose()
