"""GA4 traffic rows: each day's true traffic (shared by ads, orders and surveys) and
the GA4 report of it, with the simulated tracking outage."""

from __future__ import annotations

import math
from datetime import date
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import pandas as pd

from demo.generator.catalogue import (
    _CH_DEVICES,
    _CH_ENGAGEMENT,
    _CH_KEY_EVENTS,
    _CH_NEW_USERS,
    _DEVICE_CONVERSION,
    _DEVICE_ENGAGEMENT,
    _SEG_CHANNEL,
    _SEG_CONVERSION,
    _SEG_SHARE,
    _SEGMENTS,
    _STREAM_OUTAGE,
    _STREAM_TRAFFIC,
    CHANNELS,
    DEVICES,
    OUTAGE_RETENTION,
)
from demo.generator.days import (
    _day_context,
    _day_dates,
    _order_values,
    _ordinals,
    _rng,
    _yearly_names,
    outage_days,
)


class _TrafficDay(NamedTuple):
    segment: np.ndarray
    device: np.ndarray
    sessions: np.ndarray
    engaged: np.ndarray
    new_users: np.ndarray
    key_events: np.ndarray
    transactions: np.ndarray
    revenue: np.ndarray
    txn_row: np.ndarray  # row of each individual transaction
    txn_value: np.ndarray  # purchase value of each individual transaction


@lru_cache(maxsize=4096)
def _traffic_day(seed: int, ordinal: int) -> _TrafficDay:
    """True (outage-free) traffic of one day: the shared basis of GA4, ads and orders."""
    ctx = _day_context(ordinal)
    rng = _rng(seed, _STREAM_TRAFFIC, ordinal)
    segment = np.repeat(ctx.segments, len(DEVICES))
    device = np.tile(np.arange(len(DEVICES)), len(ctx.segments))
    channel = _SEG_CHANNEL[segment]
    level = ctx.baseline * math.exp(rng.normal(0.0, 0.06))
    expected = (
        level
        * _SEG_SHARE[segment]
        * ctx.channel_boost[channel]
        * _CH_DEVICES[channel, device]
        * ctx.device_factor[device]
        * rng.lognormal(0.0, 0.12, len(segment))
    )
    sessions = rng.poisson(expected)
    engagement = np.clip(_CH_ENGAGEMENT[channel] + _DEVICE_ENGAGEMENT[device], 0.0, 1.0)
    engaged = rng.binomial(sessions, engagement)
    new_users = rng.binomial(sessions, _CH_NEW_USERS[channel])
    conversion = _SEG_CONVERSION[segment] * _DEVICE_CONVERSION[device] * ctx.conversion_factor
    transactions = rng.binomial(sessions, conversion)
    key_events = transactions + rng.binomial(sessions - transactions, _CH_KEY_EVENTS[channel])
    txn_row = np.repeat(np.arange(len(segment)), transactions)
    txn_value = _order_values(rng, len(txn_row))
    revenue = np.round(np.bincount(txn_row, weights=txn_value, minlength=len(segment)), 2)
    day = _TrafficDay(
        segment=segment,
        device=device,
        sessions=sessions,
        engaged=engaged,
        new_users=new_users,
        key_events=key_events,
        transactions=transactions,
        revenue=revenue,
        txn_row=txn_row,
        txn_value=txn_value,
    )
    for array in day:
        array.flags.writeable = False  # cached and shared between callers
    return day


def _apply_outage(day: _TrafficDay, rng: np.random.Generator) -> _TrafficDay:
    """Thin out what GA4 records; purchases that are still tracked keep their real values."""
    n = len(day.segment)
    kept = rng.random(len(day.txn_row)) < OUTAGE_RETENTION
    transactions = np.bincount(day.txn_row[kept], minlength=n)
    revenue = np.round(np.bincount(day.txn_row[kept], weights=day.txn_value[kept], minlength=n), 2)
    sessions = transactions + rng.binomial(day.sessions - day.transactions, OUTAGE_RETENTION)
    engaged = np.minimum(rng.binomial(day.engaged, OUTAGE_RETENTION), sessions)
    new_users = np.minimum(rng.binomial(day.new_users, OUTAGE_RETENTION), sessions)
    key_events = transactions + rng.binomial(day.key_events - day.transactions, OUTAGE_RETENTION)
    return day._replace(
        sessions=sessions,
        engaged=engaged,
        new_users=new_users,
        key_events=key_events,
        transactions=transactions,
        revenue=revenue,
        txn_row=day.txn_row[kept],
        txn_value=day.txn_value[kept],
    )


def ga4_traffic(
    start: date, end: date, seed: int = 7, *, outage: date | None = None
) -> pd.DataFrame:
    """GA4 Data API style traffic report, one row per day and dimension combination.

    Dimensions: ``date`` (``datetime.date``, property time zone), ``sessionDefaultChannelGroup``,
    ``sessionSource``, ``sessionMedium``, ``sessionCampaignName``, ``deviceCategory``. Metrics
    (ints): ``sessions``, ``engagedSessions``, ``newUsers``, ``keyEvents``, ``transactions``, and
    ``purchaseRevenue`` (EUR, 2 dp). Like the API, combinations without sessions are omitted.

    Sessions and every metric drop by ~80 % on the tracking-outage days, fixed on the
    calendar (``outage_days``), so a day's rows are the same whatever range is requested;
    ``outage`` makes one other day the only outage (for tests).
    """
    ordinals = _ordinals(start, end)
    outages = [outage] if outage else outage_days(start, end)
    outage_ordinals = {d.toordinal() for d in outages}
    days = []
    for ordinal in ordinals.tolist():
        day = _traffic_day(seed, ordinal)
        if ordinal in outage_ordinals:
            day = _apply_outage(day, _rng(seed, _STREAM_OUTAGE, ordinal))
        days.append(day)
    sizes = [len(d.segment) for d in days]
    cols = {f: np.concatenate([getattr(d, f) for d in days]) for f in _TrafficDay._fields[:8]}
    row_ordinals = np.repeat(ordinals, sizes)
    keep = cols["sessions"] > 0
    cols = {k: v[keep] for k, v in cols.items()}
    row_ordinals = row_ordinals[keep]
    segment = cols["segment"]
    return pd.DataFrame(
        {
            "date": _day_dates(row_ordinals),
            "sessionDefaultChannelGroup": np.array(CHANNELS, dtype=object)[_SEG_CHANNEL[segment]],
            "sessionSource": np.array([s.source for s in _SEGMENTS], dtype=object)[segment],
            "sessionMedium": np.array([s.medium for s in _SEGMENTS], dtype=object)[segment],
            "sessionCampaignName": _yearly_names(
                [s.campaign for s in _SEGMENTS], segment, row_ordinals
            ),
            "deviceCategory": np.array(DEVICES, dtype=object)[cols["device"]],
            "sessions": cols["sessions"].astype("int64"),
            "engagedSessions": cols["engaged"].astype("int64"),
            "newUsers": cols["new_users"].astype("int64"),
            "keyEvents": cols["key_events"].astype("int64"),
            "transactions": cols["transactions"].astype("int64"),
            "purchaseRevenue": cols["revenue"].astype("float64"),
        }
    )
