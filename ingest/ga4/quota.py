"""GA4's token quota: when the daily quota refills, and the quota numbers a response carries."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from google.analytics.data_v1beta.types import RunReportResponse

DAILY_QUOTA_TIME_ZONE = "America/Los_Angeles"


def next_quota_reset(now: dt.datetime | None = None) -> dt.datetime | None:
    """When the daily token quota refills: the next midnight, Pacific time."""
    try:
        zone = ZoneInfo(DAILY_QUOTA_TIME_ZONE)
    except ZoneInfoNotFoundError:  # no tz database on this host; the message still says when
        return None
    local = (now or dt.datetime.now(dt.UTC)).astimezone(zone)
    tomorrow = local.date() + dt.timedelta(days=1)
    return dt.datetime.combine(tomorrow, dt.time(), tzinfo=zone)


QUOTA_KEYS = (
    "tokens_per_day_consumed",
    "tokens_per_day_remaining",
    "tokens_per_hour_consumed",
    "tokens_per_hour_remaining",
)


def merge_quota(quota: dict[str, int | None], response: RunReportResponse) -> None:
    if "property_quota" not in response:
        return
    property_quota = response.property_quota
    for bucket in ("tokens_per_day", "tokens_per_hour"):
        if bucket not in property_quota:
            continue
        status = getattr(property_quota, bucket)
        consumed_key = f"{bucket}_consumed"
        quota[consumed_key] = (quota[consumed_key] or 0) + status.consumed
        quota[f"{bucket}_remaining"] = status.remaining
