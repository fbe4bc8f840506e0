"""``kpi.conversion_claims``: what the ad platforms claim beside what was observed.

Each platform counts a conversion when one of its ads came before it, by its own
attribution window, so Google Ads and Meta both claim the order a customer placed after
seeing both; summed, the claims exceed the orders. This view sets them side by side per
day and channel: each platform's claimed conversions and their value, next to GA4's key
events and purchases and the shop's orders and revenue of the same channel and day. A row
with ``platform`` NULL holds every platform's claims together; a row with ``channel`` NULL
too holds the whole day. The KPI ``claimed_conversions_per_order`` tracks the ratio and
alerts on it; CPA and ROAS use observed conversions.

A view: always as current as the raw tables, computed by the warehouse when read.
"""

from __future__ import annotations

import functools

import sqlalchemy as sa

from kpi.compute.source_sql import classifiable, dimension_value, local_day
from kpi.compute.tables import KpiTables
from kpi.publication.views import replace_reader_view
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.schema import KPI_SCHEMA

VIEW = "conversion_claims"
# The shipped sources the view reads: ad spend (every origin), GA4 traffic and shop orders.
CLAIMS, GA4, ORDERS = "paid_media", "ga4_traffic", "orders"

COMMENTS: dict[str | None, str] = {
    None: "Conversions each ad platform claims (its own attribution) beside the conversions "
    "observed in GA4 and in the shop, per day and channel. Platforms claim the same orders: "
    "never add claims across platforms as conversions.",
    "date": "day (reporting time zone; an ad account's own day for platform rows)",
    "channel": "conformed channel; NULL: every channel of the day",
    "platform": "ad platform (google_ads, meta); NULL: every platform together",
    "claimed_conversions": "conversions the platform(s) claim for the day and channel",
    "claimed_value": "value of the claimed conversions, in the reporting currency",
    "ga4_key_events": "GA4 key events observed for the day and channel",
    "ga4_purchases": "GA4 purchases (transactions) observed for the day and channel",
    "orders": "shop orders observed for the day and channel",
    "order_revenue": "revenue of those orders, in the reporting currency",
    "claimed_per_order": "claimed_conversions / orders: above 1, the platforms claim more "
    "orders than the shop received",
}


def claims_select(tables: KpiTables) -> sa.Select | None:
    """The view's SELECT; None when the catalog lacks one of the sources it reads."""
    catalog = tables.catalog
    if not {CLAIMS, GA4, ORDERS} <= set(catalog.sources):
        return None
    zone = catalog.reporting.time_zone
    raw = tables.raw_tables
    # The channel rules read their inputs normalised once per row (source_sql.classifiable).
    ads, ga4, orders = (
        classifiable(catalog.sources[n], raw[n], catalog.taxonomy) for n in (CLAIMS, GA4, ORDERS)
    )
    ad_channel = dimension_value(catalog.sources[CLAIMS], ads, "channel", catalog.taxonomy)
    claims = (
        sa.select(
            ads.c.date.label("date"),
            ad_channel.label("channel"),
            ads.c.platform.label("platform"),
            sa.func.sum(ads.c.conversions_claimed).label("claimed_conversions"),
            sa.func.sum(ads.c.conversions_value_claimed).label("claimed_value"),
        )
        .where(ads.c.conversions_claimed.is_not(None))
        .group_by(ads.c.date, ad_channel, ads.c.platform)
        .cte("claims")
    )
    ga4_channel = dimension_value(catalog.sources[GA4], ga4, "channel", catalog.taxonomy)
    observed_ga4 = (
        sa.select(
            ga4.c.date.label("date"),
            ga4_channel.label("channel"),
            sa.func.sum(ga4.c.key_events).label("ga4_key_events"),
            sa.func.sum(ga4.c.transactions).label("ga4_purchases"),
        )
        .group_by(ga4.c.date, ga4_channel)
        .cte("observed_ga4")
    )
    order_day = local_day(catalog.sources[ORDERS], orders.c.ordered_at, zone)
    order_channel = dimension_value(catalog.sources[ORDERS], orders, "channel", catalog.taxonomy)
    observed_orders = (
        sa.select(
            order_day.label("date"),
            order_channel.label("channel"),
            sa.func.count().label("orders"),
            sa.func.sum(orders.c.revenue).label("order_revenue"),
        )
        .group_by(order_day, order_channel)
        .cte("observed_orders")
    )
    # Claim rows: per platform, then every platform of the channel, then the whole day.
    per_platform = sa.select(
        claims.c.date,
        claims.c.channel,
        claims.c.platform,
        claims.c.claimed_conversions,
        claims.c.claimed_value,
    )
    per_channel = sa.select(
        claims.c.date,
        claims.c.channel,
        sa.cast(sa.null(), sa.String).label("platform"),
        sa.func.sum(claims.c.claimed_conversions).label("claimed_conversions"),
        sa.func.sum(claims.c.claimed_value).label("claimed_value"),
    ).group_by(claims.c.date, claims.c.channel)
    per_day = sa.select(
        claims.c.date,
        sa.cast(sa.null(), sa.String).label("channel"),
        sa.cast(sa.null(), sa.String).label("platform"),
        sa.func.sum(claims.c.claimed_conversions).label("claimed_conversions"),
        sa.func.sum(claims.c.claimed_value).label("claimed_value"),
    ).group_by(claims.c.date)
    rows = sa.union_all(per_platform, per_channel, per_day).subquery("rows")
    # Observed per day for the day rows (channel NULL), per channel otherwise.
    day_ga4 = (
        sa.select(
            observed_ga4.c.date,
            sa.func.sum(observed_ga4.c.ga4_key_events).label("ga4_key_events"),
            sa.func.sum(observed_ga4.c.ga4_purchases).label("ga4_purchases"),
        )
        .group_by(observed_ga4.c.date)
        .subquery("day_ga4")
    )
    day_orders = (
        sa.select(
            observed_orders.c.date,
            sa.func.sum(observed_orders.c.orders).label("orders"),
            sa.func.sum(observed_orders.c.order_revenue).label("order_revenue"),
        )
        .group_by(observed_orders.c.date)
        .subquery("day_orders")
    )
    g, o = observed_ga4.alias("g"), observed_orders.alias("o")
    is_day = rows.c.channel.is_(None)
    orders_count = sa.case((is_day, day_orders.c.orders), else_=o.c.orders)
    return (
        sa.select(
            rows.c.date,
            rows.c.channel,
            rows.c.platform,
            sa.cast(rows.c.claimed_conversions, sa.Double).label("claimed_conversions"),
            sa.cast(rows.c.claimed_value, sa.Double).label("claimed_value"),
            sa.cast(
                sa.case((is_day, day_ga4.c.ga4_key_events), else_=g.c.ga4_key_events), sa.Double
            ).label("ga4_key_events"),
            sa.cast(
                sa.case((is_day, day_ga4.c.ga4_purchases), else_=g.c.ga4_purchases), sa.Double
            ).label("ga4_purchases"),
            sa.cast(orders_count, sa.BigInteger).label("orders"),
            sa.cast(
                sa.case((is_day, day_orders.c.order_revenue), else_=o.c.order_revenue), sa.Double
            ).label("order_revenue"),
            (
                sa.cast(rows.c.claimed_conversions, sa.Double)
                / sa.func.nullif(sa.cast(orders_count, sa.Double), 0)
            ).label("claimed_per_order"),
        )
        .select_from(rows)
        .outerjoin(g, (g.c.date == rows.c.date) & (g.c.channel == rows.c.channel))
        .outerjoin(o, (o.c.date == rows.c.date) & (o.c.channel == rows.c.channel))
        .outerjoin(day_ga4, day_ga4.c.date == rows.c.date)
        .outerjoin(day_orders, day_orders.c.date == rows.c.date)
    )


def refresh_claims_view(wh: Warehouse, tables: KpiTables) -> str | None:
    """(Re)create ``kpi.conversion_claims`` with its comments where its SQL changed
    (kpi.publication.views); its name, or None when the catalog lacks one of its sources."""
    build = functools.partial(claims_select, tables)
    return replace_reader_view(wh, tables, KPI_SCHEMA, VIEW, build, COMMENTS)
