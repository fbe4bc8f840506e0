"""Commerce sources: daily ad spend per platform and campaign, and shop orders."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd

from demo.generator.catalogue import (
    _AD_CAMPAIGNS,
    _AD_CHANNEL,
    _AD_CPC,
    _AD_CTR,
    _AD_PLATFORM,
    _AD_USD,
    _CH_NEW_CUSTOMER,
    _CH_UNTRACKED,
    _EUR_USD,
    _REPEAT_MAX_GAP_DAYS,
    _REPEAT_MEAN_GAP_DAYS,
    _REPEAT_POOL,
    _SEG_AD,
    _SEG_CHANNEL,
    _STREAM_ADS,
    _STREAM_ORDERS,
    _UNTRACKED_ORDER_RATE,
    CHANNELS,
    DEMO_CURRENCY,
)
from demo.generator.days import (
    _day_dates,
    _day_labels,
    _local_seconds,
    _order_values,
    _ordinals,
    _rng,
    _utc_timestamps,
    _yearly_names,
)
from demo.generator.traffic import _traffic_day


def _eur_usd(ordinal: int) -> float:
    # A slowly drifting rate, so a fixed conversion constant in the pipeline would be visible.
    return round(_EUR_USD + 0.03 * math.sin(2 * math.pi * ordinal / 365.25), 4)


def eur_usd_rate(day: date) -> float:
    """USD per EUR on ``day``: the rate the USD-billed campaigns are charged at."""
    return _eur_usd(day.toordinal())


def ad_spend(start: date, end: date, seed: int = 7) -> pd.DataFrame:
    """Daily ad platform report, one row per day, platform and campaign.

    Columns: ``date`` (``datetime.date``), ``platform`` (google_ads | meta | linkedin),
    ``channel`` (platform vocabulary: search | social | display, see :data:`AD_CHANNEL_TO_GA4`),
    ``campaign`` (same name as the GA4 ``sessionCampaignName``), ``impressions``, ``clicks``
    (ints), ``cost`` (2 dp) and ``currency`` (EUR; one LinkedIn campaign is billed in USD).

    Clicks are 1.1-1.4x the campaign's GA4 sessions (some clicks never load the page); the GA4
    tracking outage does not affect ad spend.
    """
    ordinals = _ordinals(start, end)
    parts: list[tuple[np.ndarray, ...]] = []
    for ordinal in ordinals.tolist():
        day = _traffic_day(seed, ordinal)
        ad = _SEG_AD[day.segment]
        paid = ad >= 0
        sessions = np.bincount(ad[paid], weights=day.sessions[paid], minlength=len(_AD_CAMPAIGNS))
        campaigns = np.unique(ad[paid])
        rng = _rng(seed, _STREAM_ADS, ordinal)
        k = len(campaigns)
        clicks = np.rint(sessions[campaigns] * rng.uniform(1.1, 1.4, k)).astype("int64")
        ctr = np.clip(_AD_CTR[campaigns] * rng.lognormal(0.0, 0.10, k), 0.0105, 0.049)
        impressions = np.rint(clicks / ctr).astype("int64")
        cpc = np.clip(_AD_CPC[campaigns] * rng.lognormal(0.0, 0.08, k), 0.42, 1.45)
        cost = clicks * cpc * np.where(_AD_USD[campaigns], _eur_usd(ordinal), 1.0)
        parts.append((np.full(k, ordinal), campaigns, impressions, clicks, np.round(cost, 2)))
    row_ordinals, campaign, impressions, clicks, cost = (
        np.concatenate([p[i] for p in parts]) for i in range(5)
    )
    return pd.DataFrame(
        {
            "date": _day_dates(row_ordinals),
            "platform": _AD_PLATFORM[campaign],
            "channel": _AD_CHANNEL[campaign],
            "campaign": _yearly_names([c.name for c in _AD_CAMPAIGNS], campaign, row_ordinals),
            "impressions": impressions,
            "clicks": clicks,
            "cost": cost.astype("float64"),
            "currency": np.where(_AD_USD[campaign], "USD", DEMO_CURRENCY).astype(object),
        }
    )


def orders(start: date, end: date, seed: int = 7) -> pd.DataFrame:
    """Shop orders placed on local days ``start``..``end``, one row per order.

    Columns: ``order_id`` (unique, stable), ``ordered_at`` (tz-aware UTC; local-date filtering
    means orders just after local midnight carry the previous UTC date), ``customer_id``,
    ``channel`` (GA4 channel group), ``revenue``, ``cost_of_goods`` (EUR, 2 dp), ``currency`` and
    ``is_new_customer`` (True exactly on the customer's first order ever, even if that order is
    outside the requested range).

    Every GA4 transaction (before the outage) is an order with the same value; ~8 % more orders
    were never tracked by GA4.
    """
    ordinals = _ordinals(start, end)
    parts: list[tuple[np.ndarray, ...]] = []
    for ordinal in ordinals.tolist():
        day = _traffic_day(seed, ordinal)
        rng = _rng(seed, _STREAM_ORDERS, ordinal)
        tracked = len(day.txn_row)
        # The floor keeps the repeat-customer pool of every day full (never binds in practice).
        extra = max(int(rng.poisson(_UNTRACKED_ORDER_RATE * tracked)), _REPEAT_POOL - tracked)
        channel = np.concatenate(
            [
                _SEG_CHANNEL[day.segment[day.txn_row]],
                rng.choice(len(CHANNELS), size=extra, p=_CH_UNTRACKED / _CH_UNTRACKED.sum()),
            ]
        )
        revenue = np.concatenate([day.txn_value, _order_values(rng, extra)])
        n = len(channel)
        seconds = _local_seconds(rng, n)
        by_time = np.argsort(seconds, kind="stable")
        seconds, channel, revenue = seconds[by_time], channel[by_time], revenue[by_time]
        is_new = rng.random(n) < _CH_NEW_CUSTOMER[channel]
        missing = _REPEAT_POOL - int(is_new.sum())
        if missing > 0:
            is_new[np.flatnonzero(~is_new)[:missing]] = True
        gap = np.minimum(rng.geometric(1 / _REPEAT_MEAN_GAP_DAYS, n), _REPEAT_MAX_GAP_DAYS)
        pool_slot = rng.integers(0, _REPEAT_POOL, n)
        customer_day = np.where(is_new, ordinal, ordinal - gap)
        customer_no = np.where(is_new, np.cumsum(is_new) - 1, pool_slot)
        cogs = np.round(revenue * rng.uniform(0.40, 0.55, n), 2)
        parts.append(
            (
                np.full(n, ordinal),
                np.arange(n),
                seconds,
                customer_day,
                customer_no,
                channel,
                revenue,
                cogs,
                is_new,
            )
        )
    row_ordinals, seq, seconds, customer_day, customer_no, channel, revenue, cogs, is_new = (
        np.concatenate([p[i] for p in parts]) for i in range(9)
    )
    order_id = _day_labels(row_ordinals, "ORD-%Y%m%d-") + pd.Series(seq).map("{:04d}".format)
    customer_id = _day_labels(customer_day, "C%Y%m%d") + pd.Series(customer_no).map("{:04d}".format)
    return pd.DataFrame(
        {
            "order_id": order_id.to_numpy(dtype=object),
            "ordered_at": _utc_timestamps(row_ordinals, seconds),
            "customer_id": customer_id.to_numpy(dtype=object),
            "channel": np.array(CHANNELS, dtype=object)[channel],
            "revenue": revenue.astype("float64"),
            "cost_of_goods": cogs.astype("float64"),
            "currency": DEMO_CURRENCY,
            "is_new_customer": is_new.astype(bool),
        }
    )
