"""The demo's ad platforms: its Google Ads and Meta spend served by local fakes of both APIs
(demo.fake_google_ads, demo.fake_meta) and pulled by the production resources, so a new
user sees API-sourced spend without credentials.

The spend is the generator's (demo.generator.ad_spend): the rows of ``google_ads`` and
``meta`` come from the APIs, LinkedIn's from the landing files. ``DEMO_AD_SOURCE=files``
puts every platform in the files instead (the APIs are then not configured), which is how
the tests show that both roads give the same KPIs.
"""

from __future__ import annotations

import datetime as dt
import os
import zlib

import pandas as pd
from dagster import InitResourceContext
from pydantic import PrivateAttr

from demo.fake_google_ads import FakeGoogleAds
from demo.fake_google_ads.server import FakeAccount
from demo.fake_google_ads.tls import process_certificate
from demo.fake_meta import FakeMeta
from demo.fake_meta.server import FakeAdAccount
from demo.generator import ad_spend
from demo.window import parse_window
from resources.ad_platforms import GoogleAdsResource, MetaAdsResource

DEMO_CUSTOMER_ID = "1234567890"
DEMO_AD_ACCOUNT = "act_1020304050"
# The platforms the demo pulls from APIs (the generator's names).
API_PLATFORMS = ("google_ads", "meta")
_CHANNEL_TYPES = {"search": "SEARCH", "display": "DISPLAY"}
_PLACEMENTS = {"social": "facebook", "display": "audience_network"}
# What the platforms claim: a share of clicks, each at an average order value (the
# platforms' own attribution; the orders source has what was observed).
_CLAIMED_PER_CLICK = 0.016
_CLAIMED_VALUE = 58.0


def api_platforms() -> tuple[str, ...]:
    """The platforms the demo pulls from APIs: none with ``DEMO_AD_SOURCE=files``."""
    return () if os.environ.get("DEMO_AD_SOURCE", "api") == "files" else API_PLATFORMS


def _campaign_id(name: str) -> int:
    return 10_000_000 + zlib.crc32(name.encode()) % 9_000_000  # stable across runs


def _claimed(clicks: int) -> int:
    return round(clicks * _CLAIMED_PER_CLICK)


def google_ads_rows(spend: pd.DataFrame) -> list[dict]:
    """The generator's Google Ads rows as the fake serves them (cost in micros)."""
    return [
        {
            "date": r.date,
            "campaign_id": _campaign_id(r.campaign),
            "campaign": r.campaign,
            "channel_type": _CHANNEL_TYPES[r.channel],
            "cost_micros": int(round(r.cost * 1_000_000)),  # noqa: RUF046 (numpy float)
            "clicks": int(r.clicks),
            "impressions": int(r.impressions),
            "conversions": float(_claimed(r.clicks)),
            "conversions_value": _claimed(r.clicks) * _CLAIMED_VALUE,
        }
        for r in spend[spend["platform"] == "google_ads"].itertuples(index=False)
    ]


def meta_rows(spend: pd.DataFrame) -> list[dict]:
    """The generator's Meta rows as the fake serves them (spend as Meta's strings)."""
    rows = []
    for r in spend[spend["platform"] == "meta"].itertuples(index=False):
        claimed = _claimed(r.clicks)
        rows.append(
            {
                "date": r.date,
                "campaign_id": _campaign_id(r.campaign),
                "campaign": r.campaign,
                "publisher_platform": _PLACEMENTS[r.channel],
                "spend": f"{r.cost:.2f}",
                "clicks": int(r.clicks),
                "impressions": int(r.impressions),
                "actions": [{"action_type": "purchase", "value": str(claimed)}]
                if claimed
                else None,
                "action_values": (
                    [{"action_type": "purchase", "value": f"{claimed * _CLAIMED_VALUE:.2f}"}]
                    if claimed
                    else None
                ),
            }
        )
    return rows


def _spend(start: dt.date, end: dt.date) -> pd.DataFrame:
    """The generator's spend of ``start..end`` within the demo window (the generator is
    deterministic per day, so a window's rows are those of the whole history's)."""
    first, last = parse_window(os.environ.get("DEMO_START"), os.environ.get("DEMO_END"))
    start, end = max(start, first), min(end, last)
    return ad_spend(start, end) if start <= end else ad_spend(first, first).iloc[0:0]


class DemoGoogleAdsResource(GoogleAdsResource):
    """:class:`GoogleAdsResource` on the demo customer, served by a fake started for the run."""

    _fake: FakeGoogleAds | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        if not self.configured:
            return
        # Rows are generated per pull, for its window only (see ``pull``): a daily run on
        # a long demo history would otherwise generate every day of it each time.
        fake = FakeGoogleAds(
            {DEMO_CUSTOMER_ID: FakeAccount(rows=[])},
            process_certificate(),
            refresh_token=self.refresh_token or "",
            batch_size=10_000,
        )
        self._fake = fake.__enter__()
        # Resources are frozen: the fake's address is known only now.
        object.__setattr__(self, "endpoint", fake.endpoint)
        object.__setattr__(self, "token_uri", fake.token_uri)

    def pull(self, start: dt.date, end: dt.date):
        if self._fake is not None:
            self._fake.set_rows(DEMO_CUSTOMER_ID, google_ads_rows(_spend(start, end)))
        return super().pull(start, end)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._fake is not None:
            self._fake.__exit__(None, None, None)
        self._fake = None


class DemoMetaResource(MetaAdsResource):
    """:class:`MetaAdsResource` on the demo ad account, served by a fake started for the run."""

    _fake: FakeMeta | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        if not self.configured:
            return
        fake = FakeMeta(
            {DEMO_AD_ACCOUNT.removeprefix("act_"): FakeAdAccount(rows=[])},
            access_token=self.access_token or "",
            page_size=500,
        )
        self._fake = fake.__enter__()
        object.__setattr__(self, "graph_url", fake.url)

    def pull(self, start: dt.date, end: dt.date):
        if self._fake is not None:
            account = DEMO_AD_ACCOUNT.removeprefix("act_")
            self._fake.set_rows(account, meta_rows(_spend(start, end)))
        return super().pull(start, end)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._fake is not None:
            self._fake.__exit__(None, None, None)
        self._fake = None


def demo_ad_platform_resources() -> dict:
    """The demo's ad platform resources (unconfigured with ``DEMO_AD_SOURCE=files``)."""
    on = bool(api_platforms())
    return {
        "google_ads_api": DemoGoogleAdsResource(
            account_ids=DEMO_CUSTOMER_ID if on else None,
            developer_token="demo-developer-token",
            client_id="demo-client",
            client_secret="demo-client-secret",
            refresh_token="demo-refresh-token",
        ),
        "meta_api": DemoMetaResource(
            account_ids=DEMO_AD_ACCOUNT if on else None, access_token="demo-access-token"
        ),
    }
