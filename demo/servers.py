"""The fake GA4 Data API server, loaded with the demo's GA4 data."""

from __future__ import annotations

import pandas as pd

from demo.fake_ga4 import FakeGA4Server, FakeProperty
from demo.generator import DEMO_CURRENCY, DEMO_PROPERTY_ID, DEMO_TIME_ZONE, ga4_traffic
from demo.window import parse_window


def with_ecommerce_funnel(rows: pd.DataFrame) -> pd.DataFrame:
    """Add the shopping-funnel metrics of the ``ecommerce`` report to demo traffic rows.

    Derived from sessions and transactions (no randomness), so every purchase has a checkout
    and an add-to-cart before it, as in a real funnel.
    """
    funnel = rows.copy()
    transactions = funnel["transactions"].astype("int64")
    funnel["ecommercePurchases"] = transactions
    funnel["checkouts"] = (transactions * 1.6).round().astype("int64")
    funnel["addToCarts"] = (transactions * 3 + funnel["sessions"] * 0.04).round().astype("int64")
    return funnel


def start_demo_ga4_server(start: str | None = None, end: str | None = None) -> FakeGA4Server:
    """Start a local GA4 server holding the demo property's traffic for the demo window."""
    first, last = parse_window(start, end)
    rows = ga4_traffic(first, last)
    # The generator has no user ids; the fake sums these per month (a real property counts
    # distinct users), which is good enough for demo numbers.
    rows["totalUsers"] = (rows["sessions"] * 0.78).round().astype("int64")
    rows["activeUsers"] = (rows["engagedSessions"] * 0.95).round().astype("int64")
    rows = with_ecommerce_funnel(rows)
    prop = FakeProperty(
        property_id=DEMO_PROPERTY_ID,
        rows=rows,
        time_zone=DEMO_TIME_ZONE,
        currency_code=DEMO_CURRENCY,
    )
    # The demo pulls months at once; the daily token quota of a real property would not allow it
    # in one go either, so the demo server lifts it (quota faults are tested separately).
    return FakeGA4Server([prop], tokens_per_day=None, tokens_per_hour=None).start()
