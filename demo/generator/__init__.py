"""Deterministic, realistic marketing demo data.

Produces the raw inputs of the KPI pipeline for a fictional Danish web shop: GA4 traffic (as the
GA4 Data API would report it), ad spend from three ad platforms, shop orders and post-purchase
survey answers, plus the landing-zone CSV files the file-based sources are read from.

Every value for a given calendar day comes from numpy generators seeded with
``(seed, source stream, date.toordinal())``, so a frame never depends on the range requested:
``ga4_traffic(a, z)`` restricted to ``[b, c]`` equals ``ga4_traffic(b, c)``, and the data of a
day does not depend on when the demo runs. The simulated tracking outages too are fixed on
the calendar (every 29 January and 29 July; :func:`outage_days`). Dates are local days in
:data:`DEMO_TIME_ZONE`, the GA4 reporting time zone.

The sources are linked the way real ones are: ad clicks follow the GA4 paid sessions of the same
campaign, every GA4 transaction is also a shop order (plus a few orders GA4 never saw, as with
consent banners and ad blockers), and survey answers follow the day's order channel mix.
"""

from demo.generator.catalogue import (
    AD_CHANNEL_TO_GA4,
    CHANNELS,
    DEMO_CURRENCY,
    DEMO_PROPERTY_ID,
    DEMO_TIME_ZONE,
    DEVICES,
    OUTAGE_DATES,
    OUTAGE_RETENTION,
    PLATFORMS,
)
from demo.generator.commerce import ad_spend, eur_usd_rate, orders
from demo.generator.days import black_friday, outage_day, outage_days
from demo.generator.landing_files import write_landing_files
from demo.generator.survey import survey_answers
from demo.generator.traffic import ga4_traffic

__all__ = [
    "AD_CHANNEL_TO_GA4",
    "CHANNELS",
    "DEMO_CURRENCY",
    "DEMO_PROPERTY_ID",
    "DEMO_TIME_ZONE",
    "DEVICES",
    "OUTAGE_DATES",
    "OUTAGE_RETENTION",
    "PLATFORMS",
    "ad_spend",
    "black_friday",
    "eur_usd_rate",
    "ga4_traffic",
    "orders",
    "outage_day",
    "outage_days",
    "survey_answers",
    "write_landing_files",
]
