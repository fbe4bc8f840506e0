"""The demo's date range: about 14 months of history ending yesterday."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from demo.generator import DEMO_TIME_ZONE

DEMO_DAYS = 425  # 14 months: every month has a same-month-last-year to compare with


def demo_window() -> tuple[dt.date, dt.date]:
    """(first day, last day) of the demo data; the last day is yesterday in the demo zone."""
    end = dt.datetime.now(dt.UTC).astimezone(ZoneInfo(DEMO_TIME_ZONE)).date() - dt.timedelta(days=1)
    return end - dt.timedelta(days=DEMO_DAYS - 1), end


def parse_window(start: str | None, end: str | None) -> tuple[dt.date, dt.date]:
    """The demo window, with either bound overridden by an ISO date."""
    default_start, default_end = demo_window()
    return (
        dt.date.fromisoformat(start) if start else default_start,
        dt.date.fromisoformat(end) if end else default_end,
    )
