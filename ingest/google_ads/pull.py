"""Campaign x day from Google Ads: ``GoogleAdsService.SearchStream`` with one GAQL query
per customer and window, through Google's official client.

Each row is the facts every ad platform delivers in the same shape (platform, account,
campaign, day, cost in the account's currency, clicks, impressions, the conversions the
platform claims and their value). Cost arrives in micros: it is converted exactly, with
``Decimal`` (1,234,567,890 micros -> 1234.56789), never through a float.

A rate limit (RESOURCE_EXHAUSTED, a quota error) restarts the whole stream after a backoff,
so rows of a broken stream are never kept twice; anything else fails at once with what to
fix (ingest.google_ads.errors).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from google.auth.exceptions import RefreshError

from ingest.google_ads.errors import (
    API_VERSION,
    GoogleAdsPullError,
    GoogleAdsRateLimited,
    explain,
    normalise_customer_id,
    scrub,
)

PLATFORM = "google_ads"
MICROS = Decimal(1_000_000)
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
# Google's campaign types in the ad sources' channel vocabulary (sources.yaml maps it onto
# the conformed channels): Performance Max and Demand Gen serve across Google's networks.
CHANNEL_TYPES = {
    "SEARCH": "search",
    "DISPLAY": "display",
    "VIDEO": "video",
    "SHOPPING": "shopping",
    "PERFORMANCE_MAX": "cross_network",
    "DEMAND_GEN": "cross_network",
    "MULTI_CHANNEL": "cross_network",
}


@dataclass(frozen=True)
class GoogleAdsSettings:
    """What the client needs; the resource (resources/google_ads.py) fills it from EnvVar."""

    developer_token: str
    client_id: str
    client_secret: str
    refresh_token: str
    login_customer_id: str | None = None
    endpoint: str | None = None  # host:port of another server (the demo's / tests' fake)
    token_uri: str = DEFAULT_TOKEN_URI

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.developer_token, self.client_secret, self.refresh_token)


def campaign_day_query(start: dt.date, end: dt.date) -> str:
    """The GAQL of one window: every campaign with activity, per day."""
    return (
        "SELECT segments.date, campaign.id, campaign.name, campaign.advertising_channel_type, "
        "customer.currency_code, "
        "customer.time_zone, metrics.cost_micros, metrics.clicks, metrics.impressions, "
        "metrics.conversions, metrics.conversions_value FROM campaign "
        f"WHERE segments.date BETWEEN '{start.isoformat()}' AND '{end.isoformat()}'"
    )


def micros(value: int) -> Decimal:
    """An amount in micros as an exact decimal (no float on the way)."""
    return Decimal(int(value)) / MICROS


def make_client(settings: GoogleAdsSettings):
    """The official client on ``settings`` (the OAuth refresh happens on the first call)."""
    from google.ads.googleads.client import GoogleAdsClient
    from google.ads.googleads.oauth2 import get_installed_app_credentials

    if not settings.developer_token:
        raise GoogleAdsPullError(
            "GOOGLE_ADS_DEVELOPER_TOKEN is not set: the Google Ads API refuses every call "
            "without one (Google Ads UI: Admin > API Center)"
        )
    try:  # the client exchanges the refresh token for an access token at once
        credentials = get_installed_app_credentials(
            settings.client_id,
            settings.client_secret,
            settings.refresh_token,
            token_uri=settings.token_uri,
        )
    except RefreshError as error:
        raise _refused(error, settings) from None
    login = (
        normalise_customer_id(settings.login_customer_id, "GOOGLE_ADS_LOGIN_CUSTOMER_ID")
        if settings.login_customer_id
        else None
    )
    return GoogleAdsClient(
        credentials=credentials,
        developer_token=settings.developer_token,
        endpoint=settings.endpoint,
        login_customer_id=login,
        use_proto_plus=True,
        version=API_VERSION,
    )


def _refused(error: RefreshError, settings: GoogleAdsSettings) -> GoogleAdsPullError:
    reason = scrub(str(error.args[0] if error.args else error), settings.secrets)
    return GoogleAdsPullError(
        f"Google's OAuth server refused the refresh token ({reason}): create a new "
        "GOOGLE_ADS_REFRESH_TOKEN and check GOOGLE_ADS_CLIENT_ID and GOOGLE_ADS_CLIENT_SECRET"
    )


def _rows(batches, customer_id: str) -> Iterator[dict]:
    for batch in batches:
        for row in batch.results:
            yield {
                "platform": PLATFORM,
                "account": customer_id,
                "account_currency": row.customer.currency_code,
                "account_time_zone": row.customer.time_zone,
                "campaign_id": str(row.campaign.id),
                "campaign": row.campaign.name,
                "channel": CHANNEL_TYPES.get(row.campaign.advertising_channel_type.name, "other"),
                "date": dt.date.fromisoformat(row.segments.date),
                "cost": micros(row.metrics.cost_micros),
                "clicks": int(row.metrics.clicks),
                "impressions": int(row.metrics.impressions),
                # What the platform claims, with its own attribution (not observed orders).
                "conversions_claimed": Decimal(repr(row.metrics.conversions)),
                "conversions_value_claimed": Decimal(repr(row.metrics.conversions_value)),
            }


def pull_campaign_days(
    client,
    settings: GoogleAdsSettings,
    customer_id: str,
    start: dt.date,
    end: dt.date,
    max_attempts: int = 5,
    initial_backoff_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict]:
    """Every campaign x day row of ``customer_id`` from ``start`` to ``end``."""
    customer_id = normalise_customer_id(customer_id)
    service = client.get_service("GoogleAdsService")
    query = campaign_day_query(start, end)
    backoff = initial_backoff_s
    for attempt in range(1, max_attempts + 1):
        try:
            # All or nothing per attempt: a stream broken half way keeps none of its rows.
            return list(
                _rows(service.search_stream(customer_id=customer_id, query=query), customer_id)
            )
        except RefreshError as error:  # an access token renewed during a long pull
            raise _refused(error, settings) from None
        except Exception as error:
            explained = explain(error, customer_id)
            if not isinstance(explained, GoogleAdsRateLimited) or attempt == max_attempts:
                if isinstance(explained, GoogleAdsRateLimited):
                    explained = GoogleAdsPullError(
                        f"{explained}: still limited after {max_attempts} attempts; try later "
                        "or ask Google for a higher access level"
                    )
                raise explained from None
            sleep(backoff)
            backoff *= 2
    raise AssertionError("unreachable")
