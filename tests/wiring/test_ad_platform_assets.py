"""The ad platform assets in real Dagster runs (``materialize``) on a real DuckDB file,
pulling through the official clients from the local fakes of Google Ads and Meta."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa
from dagster import AssetKey, DagsterInstance, materialize
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from assets.ad_platforms.campaign_days import ONCE_CHECK, ad_platform_assets
from demo.fake_google_ads import FakeGoogleAds
from demo.fake_google_ads.server import FakeAccount
from demo.fake_google_ads.tls import process_certificate
from kpi.language.loader import load_catalog
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.schema import source_table
from resources.ad_platforms import GoogleAdsResource, MetaAdsResource
from resources.warehouse import WarehouseResource
from tests.support import quality_resource

DAY = dt.date(2026, 3, 10)
GOOD, REFUSED = "1234567890", "9998887777"
SECRETS = ("dev-S3CRET-token", "client-S3CRET", "refresh-S3CRET")
GOOGLE = next(a for a in ad_platform_assets if a.key == AssetKey("google_ads"))


def _rows() -> list[dict]:
    return [
        {
            "date": DAY - dt.timedelta(days=i),
            "campaign_id": 5,
            "campaign": "brand_search",
            "cost_micros": 2_500_000,
            "clicks": 4,
            "impressions": 40,
            "conversions": 1.0,
            "conversions_value": 50.0,
        }
        for i in range(3)
    ]


def _run(url: str, google: GoogleAdsResource):
    return materialize(
        [GOOGLE],
        resources={
            "google_ads_api": google,
            "meta_api": MetaAdsResource(),
            "warehouse": WarehouseResource(url=url),
            "quality": quality_resource(),
        },
        tags={
            ASSET_PARTITION_RANGE_START_TAG: DAY.isoformat(),
            ASSET_PARTITION_RANGE_END_TAG: DAY.isoformat(),
        },
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def _resource(fake: FakeGoogleAds, accounts: str, refresh: str = SECRETS[2]) -> GoogleAdsResource:
    return GoogleAdsResource(
        account_ids=accounts,
        developer_token=SECRETS[0],
        client_id="client",
        client_secret=SECRETS[1],
        refresh_token=refresh,
        endpoint=fake.endpoint,
        token_uri=fake.token_uri,
        repull_days=3,
        initial_backoff_s=0.0,
    )


def _texts(result) -> str:
    """Every event's message and metadata, as the UI and the logs show them."""
    return "\n".join(f"{e.message} {e.event_specific_data}" for e in result.all_events)


def test_an_unconfigured_platform_writes_nothing_and_says_what_to_set(duckdb_url):
    result = _run(duckdb_url, GoogleAdsResource())
    assert result.success
    (materialization,) = result.asset_materializations_for_node("google_ads")
    assert materialization.metadata["configured"].value is False
    assert "GOOGLE_ADS_CUSTOMER_IDS" in materialization.metadata["note"].value


def test_a_refused_account_fails_the_run_naming_it_while_the_others_load(duckdb_url):
    accounts = {GOOD: FakeAccount(rows=_rows())}  # the fake refuses any other customer
    with FakeGoogleAds(accounts, process_certificate(), refresh_token=SECRETS[2]) as fake:
        result = _run(duckdb_url, _resource(fake, f"{GOOD},999-888-7777"))
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.event_specific_data.error.message
    assert message.endswith(
        "google_ads: 1 account(s) failed (account 999-888-7777: the Google account has no "
        f"access to customer {REFUSED} (USER_PERMISSION_DENIED) (request id fake-request-1): "
        "grant it access to that account, or set GOOGLE_ADS_LOGIN_CUSTOMER_ID to the manager "
        "account that links it); the others were loaded for 2026-03-08..2026-03-10 "
        "(1234567890); the failed ones keep their rows\n"
    ), message
    wh = Warehouse(duckdb_url)
    try:
        loaded = wh.read(sa.text("SELECT account, date FROM raw.google_ads ORDER BY date"))
    finally:
        wh.dispose()
    assert list(loaded["account"]) == [GOOD] * 3  # the re-pull window: 3 days to the 10th
    assert not any(secret in _texts(result) for secret in SECRETS)


def test_an_expired_refresh_token_fails_with_what_to_fix_and_no_secret(duckdb_url):
    with FakeGoogleAds({GOOD: FakeAccount(rows=_rows())}, process_certificate()) as fake:
        result = _run(duckdb_url, _resource(fake, GOOD, refresh="refresh-S3CRET"))
    assert not result.success
    text = _texts(result)
    assert "create a new GOOGLE_ADS_REFRESH_TOKEN" in text
    assert "nothing was loaded or deleted" in text
    assert not any(secret in text for secret in SECRETS)


def test_spend_also_in_the_files_fails_the_blocking_check_with_the_days(duckdb_url):
    wh = Warehouse(duckdb_url)
    files = source_table("ad_spend", load_catalog().sources["ad_spend"], sa.MetaData())
    wh.ensure_tables([files])
    row = {
        "platform": "google_ads",
        "channel": "search",
        "campaign": "brand_search",
        "impressions": 40,
        "clicks": 4,
        "cost": 2.5,
    }
    wh.replace_rows(files, None, pd.DataFrame([{**row, "date": DAY}]))
    wh.dispose()
    with FakeGoogleAds(
        {GOOD: FakeAccount(rows=_rows())}, process_certificate(), refresh_token=SECRETS[2]
    ) as fake:
        result = _run(duckdb_url, _resource(fake, GOOD))
    once = next(c for c in result.get_asset_check_evaluations() if c.check_name == ONCE_CHECK)
    assert not once.passed and once.severity.value == "ERROR"
    assert once.description == (
        "the landing files also hold google_ads spend on 1 day(s) (2026-03-10..2026-03-10): "
        "remove it from the ad_spend files, or stop pulling the platform "
        "(GOOGLE_ADS_CUSTOMER_IDS)"
    )
