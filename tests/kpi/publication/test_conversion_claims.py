"""Claimed vs observed conversions, worked out by hand on a small fixture.

Week of Mon 2 March 2026: Google Ads claims 60 and Meta 40 conversions on Monday the
2nd, when the shop received 100 paid orders: 1.0 claimed per order, on target. Week of
Mon 9 March: on Wednesday the 11th both platforms claim the same 100 orders, 200 claims
against 100 orders: 2.0 per order, off track, and the week's status change fires an alert
that reaches Slack (a local webhook). On both warehouses."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from kpi.compute.tables import KpiTables
from kpi.language.loader import load_catalog
from kpi.monitoring.alerts import run_alerts
from kpi.publication.claims import refresh_claims_view
from kpi.refresh import (
    refresh_catalog,
    refresh_comparisons,
    refresh_kpi_values,
    refresh_periods,
    refresh_targets,
)
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.schema import kpi_alerts_table
from resources.notifier import NotifierResource
from tests.kpi.monitoring.test_alerts import webhook  # noqa: F401 (a fixture)

D = dt.date
WEEK1, WEEK2 = D(2026, 3, 2), D(2026, 3, 11)  # the data starts on a Monday: a whole week
AS_OF = D(2026, 3, 15)  # a Sunday: both weeks complete


def _ads(platform: str, channel: str, claims: dict[dt.date, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "date": day,
                "platform": platform,
                "account": "1",
                "campaign_id": "7",
                "campaign": "c",
                "channel": channel,
                "impressions": 1000,
                "clicks": 100,
                "cost": 50.0,
                "original_cost": 50.0,
                "original_currency": "EUR",
                "fx_rate": 1.0,
                "conversions_claimed": n,
                "conversions_value_claimed": n * 40.0,
            }
            for day, n in claims.items()
        ]
    )


def _orders() -> pd.DataFrame:
    rows = []
    for day in (WEEK1, WEEK2):
        for i in range(100):
            rows.append(
                {
                    "order_id": f"{day}-{i}",
                    # Noon in Copenhagen: the order's day is ``day`` in the reporting zone.
                    "ordered_at": pd.Timestamp(f"{day} 11:00", tz="UTC"),
                    "customer_id": f"c{i}",
                    "channel": "Paid Search" if i < 50 else "Paid Social",
                    "revenue": 40.0,
                    "currency": "EUR",
                }
            )
    return pd.DataFrame(rows)


def _computed(url: str):
    catalog = load_catalog()
    tables = KpiTables.for_catalog(catalog, use_cubes=True)
    wh = Warehouse(url)
    wh.ensure_tables([*tables.all_tables(), kpi_alerts_table(tables.compiler.metadata)])
    raw = tables.raw_tables
    wh.replace_rows(raw["google_ads"], None, _ads("google_ads", "search", {WEEK1: 60, WEEK2: 100}))
    wh.replace_rows(raw["meta_ads"], None, _ads("meta", "social", {WEEK1: 40, WEEK2: 100}))
    wh.replace_rows(raw["orders"], None, _orders())
    refresh_catalog(wh, tables)
    periods = refresh_periods(wh, tables, AS_OF)
    refresh_kpi_values(wh, tables)
    refresh_targets(wh, tables, periods)
    refresh_comparisons(wh, tables)
    assert refresh_claims_view(wh, tables) == "kpi.conversion_claims"
    return wh, catalog


def test_two_platforms_claiming_the_same_orders_show_200_against_100_and_alert(
    warehouse_url,
    webhook,  # noqa: F811
):
    wh, catalog = _computed(warehouse_url)
    try:
        claims = wh.read(
            sa.text(
                "SELECT date, channel, platform, claimed_conversions, claimed_value, orders, "
                "order_revenue, claimed_per_order FROM kpi.conversion_claims "
                "WHERE date = :d ORDER BY channel NULLS LAST, platform NULLS LAST"
            ),
            d=WEEK2,
        )
        claims = claims.astype(object).where(claims.notna(), None)
        rows = [
            (r.channel, r.platform, r.claimed_conversions, r.orders, r.claimed_per_order)
            for r in claims.itertuples()
        ]
        assert rows == [
            ("Paid Search", "google_ads", 100.0, 50, 2.0),
            ("Paid Search", None, 100.0, 50, 2.0),
            ("Paid Social", "meta", 100.0, 50, 2.0),
            ("Paid Social", None, 100.0, 50, 2.0),
            (None, None, 200.0, 100, 2.0),  # the day: 200 claimed, 100 observed
        ]
        assert claims["claimed_value"].iloc[-1] == 8000.0
        assert claims["order_revenue"].iloc[-1] == 4000.0

        weeks = wh.read(
            sa.text(
                "SELECT period_start, actual, status FROM kpi.kpi_comparisons WHERE kpi_id = "
                "'claimed_conversions_per_order' AND grain = 'week' AND channel IS NULL "
                "ORDER BY period_start"
            )
        )
        assert [(str(p), v, s) for p, v, s in weeks.itertuples(index=False)] == [
            ("2026-03-02", 1.0, "on_track"),
            ("2026-03-09", 2.0, "off_track"),
        ]
        notifier = NotifierResource(slack_webhook_url=webhook.url, timeout_seconds=2.0)
        now = dt.datetime(2026, 3, 16, 7, tzinfo=dt.UTC)
        run = run_alerts(wh, catalog, notifier, now=now, run_id="run-1")
        fired = [
            (r.firing.event_key, r.outcome)
            for r in run.records
            if r.firing.kpi_id == "claimed_conversions_per_order"
        ]
        assert fired == [
            ("claimed_conversions_per_order/status_change:week:off_track/2026-03-09", "sent")
        ]
        assert any(
            "Claimed conversions per paid order" in m["json"]["text"] for m in webhook.received
        )
    finally:
        wh.dispose()
