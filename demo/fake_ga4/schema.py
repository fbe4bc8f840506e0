"""The part of the GA4 Data API schema the fake knows: limits, metric types, dimensions,
calendar dimensions derived from ``date``, and the request name / date patterns."""

from __future__ import annotations

import datetime as dt
import re

from google.analytics.data_v1beta.types import MetricType

SERVICE_NAME = "google.analytics.data.v1beta.BetaAnalyticsData"

MAX_DIMENSIONS = 9
MAX_METRICS = 10
MAX_DATE_RANGES = 4
MAX_BATCH_REQUESTS = 5
DEFAULT_LIMIT = 10_000
MAX_LIMIT = 250_000
OTHER = "(other)"
NOT_SET = "(not set)"

_INT = MetricType.TYPE_INTEGER
_FLOAT = MetricType.TYPE_FLOAT
_CURRENCY = MetricType.TYPE_CURRENCY
_SECONDS = MetricType.TYPE_SECONDS

# A subset of the GA4 API schema: enough for marketing reports, and anything outside it is
# rejected exactly like a typo would be by the real service.
METRIC_TYPES: dict[str, MetricType] = {
    **{
        name: _INT
        for name in (
            "sessions",
            "engagedSessions",
            "newUsers",
            "totalUsers",
            "activeUsers",
            "keyEvents",
            "transactions",
            "ecommercePurchases",
            "addToCarts",
            "checkouts",
            "screenPageViews",
            "eventCount",
            "itemsViewed",
            "totalPurchasers",
        )
    },
    **{
        name: _CURRENCY
        for name in (
            "purchaseRevenue",
            "totalRevenue",
            "itemRevenue",
            "grossPurchaseRevenue",
            "advertiserAdCost",
        )
    },
    **{
        name: _FLOAT
        for name in (
            "engagementRate",
            "bounceRate",
            "sessionKeyEventRate",
            "userKeyEventRate",
            "sessionsPerUser",
            "screenPageViewsPerSession",
        )
    },
    "averageSessionDuration": _SECONDS,
    "userEngagementDuration": _SECONDS,
}

# Metrics that may be summed across rows. Everything else is a rate or an average.
ADDITIVE_METRICS = frozenset(
    name for name, kind in METRIC_TYPES.items() if kind in (_INT, _CURRENCY)
) | {"userEngagementDuration"}

# name -> (numerator, denominator, complement); the real API derives these from counts too.
RATIO_METRICS: dict[str, tuple[str, str, bool]] = {
    "engagementRate": ("engagedSessions", "sessions", False),
    "bounceRate": ("engagedSessions", "sessions", True),
}

KNOWN_DIMENSIONS = frozenset(
    {
        "date",
        "dateHour",
        "year",
        "month",
        "day",
        "yearMonth",
        "yearWeek",
        "isoYearIsoWeek",
        "dayOfWeek",
        "sessionDefaultChannelGroup",
        "sessionSource",
        "sessionMedium",
        "sessionSourceMedium",
        "sessionCampaignName",
        "sessionCampaignId",
        "sessionManualAdContent",
        "sessionManualTerm",
        "sessionGoogleAdsCampaignName",
        "firstUserDefaultChannelGroup",
        "firstUserSource",
        "firstUserMedium",
        "firstUserCampaignName",
        "deviceCategory",
        "platform",
        "browser",
        "operatingSystem",
        "country",
        "countryId",
        "region",
        "city",
        "language",
        "landingPage",
        "landingPagePlusQueryString",
        "pagePath",
        "hostName",
        "eventName",
        "newVsReturning",
        "transactionId",
        "itemId",
        "itemName",
        "dateRange",
    }
)

# Calendar dimensions the fake can derive from 'date' when a fixture does not carry them.
_DERIVED_DATE_DIMENSIONS = {
    "year": lambda d: f"{d.year:04d}",
    "month": lambda d: f"{d.month:02d}",
    "day": lambda d: f"{d.day:02d}",
    "yearMonth": lambda d: f"{d.year:04d}{d.month:02d}",
    # GA4 weeks start on Sunday and January 1st is always in week 01, so week 01 (and the last
    # week of the year) is usually short. strftime's %U is the same count minus one whenever
    # January 1st is not a Sunday (it calls the days before the first Sunday week 00).
    "yearWeek": lambda d: f"{d.year:04d}{_ga4_week(d):02d}",
    "isoYearIsoWeek": lambda d: f"{d.isocalendar()[0]:04d}{d.isocalendar()[1]:02d}",
    "dayOfWeek": lambda d: str((d.weekday() + 1) % 7),
}


def _ga4_week(day: dt.date) -> int:
    sunday_based = int(day.strftime("%U"))
    return sunday_based if dt.date(day.year, 1, 1).weekday() == 6 else sunday_based + 1


_PROPERTY_RE = re.compile(r"^properties/(\d+)$")
_RELATIVE_DAYS_RE = re.compile(r"^(\d+)daysAgo$")
_ISO_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_COMPACT_DATE_RE = re.compile(r"^\d{8}$")
