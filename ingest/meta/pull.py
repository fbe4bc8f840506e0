"""Campaign x day from Meta: the Insights API of an ad account (``level=campaign``,
``time_increment=1``) through Meta's official ``facebook-business`` client, following
every page of its cursor.

Each row is the facts every ad platform delivers in the same shape (platform, account,
campaign, day, cost in the account's currency, clicks, impressions, the conversions the
platform claims and their value). Meta sends its numbers as strings ("1234.56789"): cost is
parsed straight into a ``Decimal``, never through a float.

A rate limit restarts the whole pull after a backoff, so rows of a half-read paging are
never kept twice; anything else fails at once with what to fix (ingest.meta.errors).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from facebook_business.adobjects.adaccount import AdAccount
from facebook_business.adobjects.adsinsights import AdsInsights
from facebook_business.api import FacebookAdsApi
from facebook_business.session import FacebookSession

from ingest.meta.errors import (
    API_VERSION,
    MetaPullError,
    MetaRateLimited,
    explain,
    normalise_account_id,
)

PLATFORM = "meta"
DEFAULT_GRAPH_URL = FacebookSession.GRAPH  # https://graph.facebook.com
INSIGHT_FIELDS = (
    "campaign_id",
    "campaign_name",
    "spend",
    "clicks",
    "impressions",
    "actions",
    "action_values",
    "account_currency",
    "date_start",
)
# Meta lists one purchase several times over: "purchase" (every source the account
# attributes: pixel, app, offline, on-Meta) and "offsite_conversion.fb_pixel_purchase" (the
# pixel's share of the same purchases). Adding them counts pixel purchases twice, so the
# first type present is taken: "purchase", else the pixel's count for accounts whose
# reports lack the aggregate.
PURCHASE_TYPES = ("purchase", "offsite_conversion.fb_pixel_purchase")


@dataclass(frozen=True)
class MetaSettings:
    """What the client needs; a resource fills it from EnvVar."""

    access_token: str
    app_id: str | None = None
    app_secret: str | None = None  # when set, every call carries an appsecret_proof
    graph_url: str | None = None  # base URL of another server (the demo's / tests' fake)
    api_version: str = API_VERSION

    @property
    def secrets(self) -> tuple[str | None, ...]:
        return (self.access_token, self.app_secret)


class _Session(FacebookSession):
    """The client's session, pointed at ``graph_url`` and sending the token in a header.

    ``FacebookAdsApi.call`` builds every URL from the session's ``GRAPH`` attribute, so an
    instance attribute is enough to reach another server. The stock session puts
    ``access_token`` in every query string, where urllib3's debug log and the client's own
    exception text would show it; the Graph API accepts it as ``Authorization: OAuth``.
    """

    def __init__(self, settings: MetaSettings) -> None:
        super().__init__(settings.app_id, settings.app_secret, settings.access_token)
        self.GRAPH = (settings.graph_url or DEFAULT_GRAPH_URL).rstrip("/")
        self.requests.params.pop("access_token", None)
        self.requests.headers["Authorization"] = f"OAuth {settings.access_token}"


def make_api(settings: MetaSettings) -> FacebookAdsApi:
    """The official client on ``settings``; no call is made yet.

    Built directly rather than with ``FacebookAdsApi.init``: that one sets a process-wide
    default api and enables the client's crash reporter, which posts tracebacks to Meta.
    """
    if not settings.access_token:
        raise MetaPullError(
            "META_ACCESS_TOKEN is not set: the Meta Marketing API refuses every call without "
            "one (a system user token with ads_read, from Business Settings > Users > System "
            "users)"
        )
    return FacebookAdsApi(_Session(settings), api_version=settings.api_version)


def amount(value: str | None) -> Decimal:
    """A Meta number (sent as a string) as an exact decimal; absent -> 0."""
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


def claimed(stats: Iterable | None) -> Decimal:
    """The purchases of an ``actions`` (or ``action_values``) list, by PURCHASE_TYPES."""
    by_type = {str(s["action_type"]): s["value"] for s in stats or ()}
    for action_type in PURCHASE_TYPES:
        if action_type in by_type:
            return amount(by_type[action_type])
    return Decimal(0)


# Meta's placements in the ad sources' channel vocabulary: Audience Network shows ads on
# other apps and sites (display); Facebook, Instagram, Messenger and Threads are social.
DISPLAY_PLACEMENTS = frozenset({"audience_network"})


def channel_of(publisher_platform: str | None) -> str:
    return "display" if publisher_platform in DISPLAY_PLACEMENTS else "social"


def _row(insight, account_id: str, time_zone: str | None) -> dict:
    return {
        "platform": PLATFORM,
        "account": account_id,
        "account_currency": insight.get("account_currency"),
        "account_time_zone": time_zone,
        "campaign_id": str(insight["campaign_id"]),
        "campaign": insight.get("campaign_name"),
        "channel": channel_of(insight.get("publisher_platform")),
        "date": dt.date.fromisoformat(insight["date_start"]),
        "cost": amount(insight.get("spend")),
        "clicks": int(insight.get("clicks") or 0),
        "impressions": int(insight.get("impressions") or 0),
        # What the platform claims, with its own attribution (not observed orders).
        "conversions_claimed": claimed(insight.get("actions")),
        "conversions_value_claimed": claimed(insight.get("action_values")),
    }


def _pull_once(api: FacebookAdsApi, account_id: str, start: dt.date, end: dt.date) -> list:
    account = AdAccount(account_id, api=api)
    # Insights rows carry the currency but not the time zone their days are cut in.
    zone = account.api_get(fields=[AdAccount.Field.timezone_name]).get("timezone_name")
    cursor = account.get_insights(
        fields=list(INSIGHT_FIELDS),
        params={
            "level": AdsInsights.Level.campaign,
            "time_increment": "1",
            "time_range": {"since": start.isoformat(), "until": end.isoformat()},
            # By placement, so that Audience Network spend lands in Display as in GA4.
            "breakdowns": ["publisher_platform"],
        },
    )
    rows = [_row(insight, account_id, zone) for insight in cursor]  # iterating pages on
    return merge_channels(rows)


_SUMMED = ("cost", "clicks", "impressions", "conversions_claimed", "conversions_value_claimed")


def merge_channels(rows: list[dict]) -> list[dict]:
    """One row per campaign, day and channel: Facebook, Instagram and Messenger rows of a
    campaign's day are one social row (sums are exact: Decimal and int)."""
    merged: dict[tuple, dict] = {}
    for row in rows:
        key = (row["campaign_id"], row["date"], row["channel"])
        if key not in merged:
            merged[key] = dict(row)
        else:
            for name in _SUMMED:
                merged[key][name] += row[name]
    return list(merged.values())


def pull_campaign_days(
    api: FacebookAdsApi,
    settings: MetaSettings,
    ad_account_id: str,
    start: dt.date,
    end: dt.date,
    max_attempts: int = 5,
    initial_backoff_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict]:
    """Every campaign x day row of ``ad_account_id`` from ``start`` to ``end``."""
    account_id = normalise_account_id(ad_account_id)
    backoff = initial_backoff_s
    for attempt in range(1, max_attempts + 1):
        try:
            # All or nothing per attempt: a paging broken half way keeps none of its rows.
            return _pull_once(api, account_id, start, end)
        except Exception as error:
            explained = explain(error, account_id, settings.secrets)
            if not isinstance(explained, MetaRateLimited) or attempt == max_attempts:
                if isinstance(explained, MetaRateLimited):
                    explained = MetaPullError(
                        f"{explained}: still limited after {max_attempts} attempts; try later "
                        "or pull fewer days per run"
                    )
                raise explained from None
            sleep(backoff)
            backoff *= 2
    raise AssertionError("unreachable")
