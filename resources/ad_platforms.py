"""The ad platform resources: Google Ads and Meta through their official clients.

Each pulls campaign x day rows for its accounts (``ingest.google_ads.pull``,
``ingest.meta.pull``); the assets (assets/ad_platforms) load them. Every setting comes from
an environment variable through ``EnvVar`` (pipelines/definitions.py), so secrets never
reach run config, logs or the UI; a platform without accounts is simply not configured, and
its asset says so instead of failing.
"""

from __future__ import annotations

import datetime as dt

from dagster import ConfigurableResource
from pydantic import Field

from ingest.google_ads.errors import normalise_customer_id
from ingest.google_ads.pull import (
    DEFAULT_TOKEN_URI,
    GoogleAdsSettings,
    make_client,
)
from ingest.google_ads.pull import PLATFORM as GOOGLE_ADS
from ingest.google_ads.pull import pull_campaign_days as pull_google_ads
from ingest.meta.errors import normalise_account_id
from ingest.meta.pull import PLATFORM as META
from ingest.meta.pull import MetaSettings, make_api
from ingest.meta.pull import pull_campaign_days as pull_meta

# account -> its rows; account -> why its pull failed
Pulls = dict[str, list[dict]]
Failures = dict[str, str]


def _ids(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else value
    return [i.strip() for i in items if i and i.strip()]


class AdPlatformResource(ConfigurableResource):
    """What the ad platform assets need of a platform: its accounts, its re-pull window and
    a pull of a window for every account (an account's failure never stops the others)."""

    account_ids: str | None = None
    repull_days: int = 28
    max_attempts: int = Field(default=5, ge=1)
    initial_backoff_s: float = Field(default=1.0, ge=0)

    @property
    def platform(self) -> str:
        raise NotImplementedError

    @property
    def accounts(self) -> list[str]:
        return _ids(self.account_ids)

    @property
    def configured(self) -> bool:
        return bool(self.accounts)

    def pull(self, start: dt.date, end: dt.date) -> tuple[Pulls, Failures]:
        raise NotImplementedError


class GoogleAdsResource(AdPlatformResource):
    """Google Ads: ``GoogleAdsService.SearchStream`` per customer (ingest.google_ads)."""

    account_ids: str | None = Field(
        default=None,
        description="GOOGLE_ADS_CUSTOMER_IDS: customer ids to pull, comma-separated "
        "(123-456-7890 or 1234567890); unset: Google Ads is not pulled",
    )
    developer_token: str | None = Field(
        default=None, description="GOOGLE_ADS_DEVELOPER_TOKEN: Google Ads UI, Admin > API Center"
    )
    client_id: str | None = Field(default=None, description="GOOGLE_ADS_CLIENT_ID: OAuth client")
    client_secret: str | None = Field(
        default=None, description="GOOGLE_ADS_CLIENT_SECRET: the OAuth client's secret"
    )
    refresh_token: str | None = Field(
        default=None,
        description="GOOGLE_ADS_REFRESH_TOKEN: OAuth refresh token of a user "
        "with access to the customers",
    )
    login_customer_id: str | None = Field(
        default=None,
        description="GOOGLE_ADS_LOGIN_CUSTOMER_ID: the manager account the customers are "
        "reached through, if any",
    )
    endpoint: str | None = Field(
        default=None, description="GOOGLE_ADS_ENDPOINT: host:port of another server (TLS)"
    )
    token_uri: str | None = Field(
        default=None, description="GOOGLE_ADS_TOKEN_URI: another OAuth token endpoint"
    )
    repull_days: int = Field(
        default=30,
        ge=1,
        description="GOOGLE_ADS_REPULL_DAYS: days re-pulled on every run (conversions are "
        "revised for up to 30 days)",
    )

    @property
    def platform(self) -> str:
        return GOOGLE_ADS

    def settings(self) -> GoogleAdsSettings:
        return GoogleAdsSettings(
            developer_token=self.developer_token or "",
            client_id=self.client_id or "",
            client_secret=self.client_secret or "",
            refresh_token=self.refresh_token or "",
            login_customer_id=self.login_customer_id,
            endpoint=self.endpoint,
            token_uri=self.token_uri or DEFAULT_TOKEN_URI,
        )

    def pull(self, start: dt.date, end: dt.date) -> tuple[Pulls, Failures]:
        settings = self.settings()
        client = make_client(settings)  # a credentials problem stops every account
        pulls: Pulls = {}
        failures: Failures = {}
        for account in self.accounts:
            try:
                pulls[normalise_customer_id(account)] = pull_google_ads(
                    client,
                    settings,
                    account,
                    start,
                    end,
                    self.max_attempts,
                    self.initial_backoff_s,
                )
            except Exception as error:  # the pull's errors are explained and scrubbed
                failures[account] = str(error)
        return pulls, failures


class MetaAdsResource(AdPlatformResource):
    """Meta: the Insights API per ad account (ingest.meta)."""

    account_ids: str | None = Field(
        default=None,
        description="META_AD_ACCOUNT_IDS: ad account ids, comma-separated (act_123 or 123); "
        "unset: Meta is not pulled",
    )
    access_token: str | None = Field(
        default=None,
        description="META_ACCESS_TOKEN: a system user token with ads_read on the accounts",
    )
    app_id: str | None = Field(default=None, description="META_APP_ID: the app of the token")
    app_secret: str | None = Field(
        default=None, description="META_APP_SECRET: signs every call (appsecret_proof)"
    )
    graph_url: str | None = Field(
        default=None, description="META_GRAPH_URL: base URL of another Graph API server"
    )
    repull_days: int = Field(
        default=28,
        ge=1,
        description="META_REPULL_DAYS: days re-pulled on every run (Meta revises insights "
        "for up to 28 days)",
    )

    @property
    def platform(self) -> str:
        return META

    def pull(self, start: dt.date, end: dt.date) -> tuple[Pulls, Failures]:
        settings = MetaSettings(
            access_token=self.access_token or "",
            app_id=self.app_id,
            app_secret=self.app_secret,
            graph_url=self.graph_url,
        )
        api = make_api(settings)
        pulls: Pulls = {}
        failures: Failures = {}
        for account in self.accounts:
            try:
                pulls[normalise_account_id(account)] = pull_meta(
                    api, settings, account, start, end, self.max_attempts, self.initial_backoff_s
                )
            except Exception as error:
                failures[account] = str(error)
        return pulls, failures
