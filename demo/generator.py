"""Deterministic, realistic marketing demo data.

Produces the raw inputs of the KPI pipeline for a fictional Danish web shop: GA4 traffic (as the
GA4 Data API would report it), ad spend from three ad platforms, shop orders and post-purchase
survey answers, plus the landing-zone CSV files the file-based sources are read from.

Every value for a given calendar day comes from numpy generators seeded with
``(seed, source stream, date.toordinal())``, so a frame never depends on the range requested:
``ga4_traffic(a, z)`` restricted to ``[b, c]`` equals ``ga4_traffic(b, c)`` (the only exception is
the simulated tracking outage, which is anchored on the ``end`` of the request; see
:func:`outage_day`). Dates are local days in :data:`DEMO_TIME_ZONE`, the GA4 reporting time zone.

The sources are linked the way real ones are: ad clicks follow the GA4 paid sessions of the same
campaign, every GA4 transaction is also a shop order (plus a few orders GA4 never saw, as with
consent banners and ad blockers), and survey answers follow the day's order channel mix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

DEMO_PROPERTY_ID = "412345678"
DEMO_TIME_ZONE = "Europe/Copenhagen"  # GA4 property time zone = reporting time zone
DEMO_CURRENCY = "EUR"

OUTAGE_OFFSET_DAYS = 40
# Share of GA4 hits that still arrive on the outage day (a broken tag fires on a few pages only).
OUTAGE_RETENTION = 0.2

CHANNELS: tuple[str, ...] = (
    "Organic Search",
    "Paid Search",
    "Paid Social",
    "Organic Social",
    "Direct",
    "Email",
    "Referral",
    "Display",
)
DEVICES: tuple[str, ...] = ("desktop", "mobile", "tablet")
PLATFORMS: tuple[str, ...] = ("google_ads", "meta", "linkedin")
# Ad platforms describe campaigns in their own vocabulary; this is the bridge to GA4.
AD_CHANNEL_TO_GA4: dict[str, str] = {
    "search": "Paid Search",
    "social": "Paid Social",
    "display": "Display",
}

# Separate RNG streams per source: extra draws in one source never shift another source's numbers.
_STREAM_TRAFFIC = 1
_STREAM_OUTAGE = 2
_STREAM_ADS = 3
_STREAM_ORDERS = 4
_STREAM_SURVEY = 5

_BASE_SESSIONS = 3000.0  # all-channel sessions on an average day at _TREND_ANCHOR
_TREND_ANCHOR = date(2025, 1, 1).toordinal()
_YEARLY_GROWTH = 0.10
_UNTRACKED_ORDER_RATE = 0.08  # orders GA4 never sees (consent declined, ad blockers)
# Repeat orders point at one of the first _REPEAT_POOL new customers of an earlier day, so a
# customer's identity can be derived from one day alone and never depends on the range.
_REPEAT_POOL = 15
_REPEAT_MEAN_GAP_DAYS = 45
_REPEAT_MAX_GAP_DAYS = 720
_EUR_USD = 1.08

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_NS_PER_DAY = 86_400 * 1_000_000_000


# ---------------------------------------------------------------------------------------------
# Static catalogue
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ChannelProfile:
    engagement: float  # engagedSessions / sessions
    new_users: float  # newUsers / sessions
    conversion: float  # transactions / sessions
    key_events: float  # non-purchase key events (sign-ups, leads) per session
    devices: tuple[float, float, float]  # desktop, mobile, tablet share
    new_customer: float  # share of this channel's orders placed by first-time customers


_PROFILES: dict[str, _ChannelProfile] = {
    "Organic Search": _ChannelProfile(0.66, 0.55, 0.018, 0.040, (0.48, 0.47, 0.05), 0.70),
    "Paid Search": _ChannelProfile(0.62, 0.58, 0.024, 0.045, (0.45, 0.50, 0.05), 0.72),
    "Paid Social": _ChannelProfile(0.56, 0.70, 0.009, 0.030, (0.20, 0.76, 0.04), 0.80),
    "Organic Social": _ChannelProfile(0.57, 0.60, 0.008, 0.030, (0.20, 0.76, 0.04), 0.75),
    "Direct": _ChannelProfile(0.64, 0.30, 0.025, 0.045, (0.50, 0.45, 0.05), 0.45),
    "Email": _ChannelProfile(0.70, 0.08, 0.032, 0.060, (0.40, 0.55, 0.05), 0.15),
    "Referral": _ChannelProfile(0.68, 0.55, 0.020, 0.040, (0.50, 0.45, 0.05), 0.70),
    "Display": _ChannelProfile(0.56, 0.72, 0.006, 0.020, (0.35, 0.60, 0.05), 0.75),
}


@dataclass(frozen=True)
class _AdCampaign:
    platform: str
    name: str  # may contain "{year}"
    channel: str  # platform vocabulary: search | social | display
    cpc: float  # typical cost per click in EUR
    ctr: float  # typical click-through rate
    currency: str = DEMO_CURRENCY


@dataclass(frozen=True)
class _Segment:
    """One GA4 source / medium / campaign combination (crossed with the three devices)."""

    channel: str
    source: str
    medium: str
    campaign: str  # may contain "{year}" for campaigns that come back every year
    share: float  # sessions as a share of the day's baseline volume
    window: str | None = None  # None: always on; else a key of _WINDOW_CHECKS
    ad: tuple[str, str] | None = None  # (platform, campaign) in _AD_CAMPAIGNS when paid
    conversion: float | None = None  # overrides the channel conversion rate


_AD_CAMPAIGNS: tuple[_AdCampaign, ...] = (
    _AdCampaign("google_ads", "brand_search", "search", 0.45, 0.045),
    _AdCampaign("google_ads", "generic_search", "search", 1.25, 0.028),
    _AdCampaign("google_ads", "spring_sale_search_{year}", "search", 0.95, 0.035),
    _AdCampaign("google_ads", "black_friday_search_{year}", "search", 1.35, 0.040),
    _AdCampaign("google_ads", "remarketing_display", "display", 0.55, 0.012),
    _AdCampaign("google_ads", "prospecting_display", "display", 0.45, 0.011),
    _AdCampaign("google_ads", "black_friday_display_{year}", "display", 0.60, 0.014),
    _AdCampaign("meta", "prospecting_social", "social", 0.75, 0.012),
    _AdCampaign("meta", "retargeting_social", "social", 0.60, 0.018),
    _AdCampaign("meta", "audience_network_display", "display", 0.48, 0.011),
    _AdCampaign("meta", "spring_sale_social_{year}", "social", 0.70, 0.015),
    _AdCampaign("meta", "black_friday_social_{year}", "social", 0.95, 0.020),
    _AdCampaign("linkedin", "corporate_gifting", "social", 1.40, 0.012),
    # Billed from a US ad account, so the pipeline has to convert currencies.
    _AdCampaign("linkedin", "corporate_gifting_us", "social", 1.30, 0.012, "USD"),
)


def _paid(
    channel: str,
    source: str,
    medium: str,
    platform: str,
    campaign: str,
    share: float,
    window: str | None = None,
    conversion: float | None = None,
) -> _Segment:
    # Paid traffic is tagged with the ad platform's campaign name, so both sides join on it.
    return _Segment(
        channel, source, medium, campaign, share, window, (platform, campaign), conversion
    )


_ORG, _REF = "(organic)", "(referral)"
_PSE, _PSO, _DIS = "Paid Search", "Paid Social", "Display"
_GADS, _BF = "google_ads", "black_friday"
_SEGMENTS: tuple[_Segment, ...] = (
    _Segment("Organic Search", "google", "organic", _ORG, 0.280),
    _Segment("Organic Search", "bing", "organic", _ORG, 0.035),
    _Segment("Organic Search", "duckduckgo", "organic", _ORG, 0.015),
    _Segment("Direct", "(direct)", "(none)", "(direct)", 0.180),
    _Segment("Organic Social", "facebook.com", "referral", _REF, 0.025),
    _Segment("Organic Social", "instagram.com", "referral", _REF, 0.015),
    _Segment("Organic Social", "linkedin.com", "referral", _REF, 0.010),
    _Segment("Referral", "trustpilot.com", "referral", _REF, 0.020),
    _Segment("Referral", "pricerunner.dk", "referral", _REF, 0.020),
    _Segment("Referral", "bolius.dk", "referral", _REF, 0.010),
    _Segment("Email", "newsletter", "email", "weekly_newsletter", 0.045),
    _Segment("Email", "crm", "email", "winback_flow", 0.015),
    _Segment("Email", "newsletter", "email", "spring_sale_{year}", 0.020, "spring"),
    _Segment("Email", "newsletter", "email", "black_friday_{year}", 0.040, _BF),
    _paid(_PSE, "google", "cpc", _GADS, "brand_search", 0.080, conversion=0.032),
    _paid(_PSE, "google", "cpc", _GADS, "generic_search", 0.090, conversion=0.017),
    _paid(_PSE, "google", "cpc", _GADS, "spring_sale_search_{year}", 0.060, "spring"),
    _paid(_PSE, "google", "cpc", _GADS, "black_friday_search_{year}", 0.100, _BF),
    _paid(_PSO, "facebook", "paid_social", "meta", "prospecting_social", 0.040),
    _paid(_PSO, "instagram", "paid_social", "meta", "prospecting_social", 0.030),
    _paid(_PSO, "facebook", "paid_social", "meta", "retargeting_social", 0.012, None, 0.016),
    _paid(_PSO, "instagram", "paid_social", "meta", "retargeting_social", 0.008, None, 0.016),
    _paid(_PSO, "facebook", "paid_social", "meta", "spring_sale_social_{year}", 0.040, "spring"),
    _paid(_PSO, "instagram", "paid_social", "meta", "spring_sale_social_{year}", 0.030, "spring"),
    _paid(_PSO, "facebook", "paid_social", "meta", "black_friday_social_{year}", 0.060, _BF),
    _paid(_PSO, "instagram", "paid_social", "meta", "black_friday_social_{year}", 0.040, _BF),
    _paid(_PSO, "linkedin", "paid_social", "linkedin", "corporate_gifting", 0.006),
    _paid(_PSO, "linkedin", "paid_social", "linkedin", "corporate_gifting_us", 0.004),
    _paid(_DIS, "google", "display", _GADS, "remarketing_display", 0.025, conversion=0.010),
    _paid(_DIS, "google", "display", _GADS, "prospecting_display", 0.015),
    _paid(_DIS, "google", "display", _GADS, "black_friday_display_{year}", 0.040, _BF),
    # Meta Audience Network traffic lands in GA4's Display group (medium "display"), although
    # the ad platform is a social one: a classic mapping trap.
    _paid(_DIS, "facebook", "display", "meta", "audience_network_display", 0.020),
)

_CHANNEL_INDEX = {name: i for i, name in enumerate(CHANNELS)}
_AD_INDEX = {(c.platform, c.name): i for i, c in enumerate(_AD_CAMPAIGNS)}

_SEG_CHANNEL = np.array([_CHANNEL_INDEX[s.channel] for s in _SEGMENTS])
_SEG_SHARE = np.array([s.share for s in _SEGMENTS])
_SEG_CONVERSION = np.array(
    [s.conversion or _PROFILES[s.channel].conversion for s in _SEGMENTS], dtype=float
)
_SEG_AD = np.array([_AD_INDEX[s.ad] if s.ad else -1 for s in _SEGMENTS])
_SEG_WINDOW = [s.window for s in _SEGMENTS]

_CH_ENGAGEMENT = np.array([_PROFILES[c].engagement for c in CHANNELS])
_CH_NEW_USERS = np.array([_PROFILES[c].new_users for c in CHANNELS])
_CH_KEY_EVENTS = np.array([_PROFILES[c].key_events for c in CHANNELS])
_CH_DEVICES = np.array([_PROFILES[c].devices for c in CHANNELS])
_CH_NEW_CUSTOMER = np.array([_PROFILES[c].new_customer for c in CHANNELS])
# Orders GA4 misses come mostly from people who declined tracking, whatever brought them.
_CH_UNTRACKED = np.array([0.30, 0.15, 0.08, 0.03, 0.30, 0.06, 0.05, 0.03])

_AD_CHANNEL = np.array([c.channel for c in _AD_CAMPAIGNS], dtype=object)
_AD_PLATFORM = np.array([c.platform for c in _AD_CAMPAIGNS], dtype=object)
_AD_CPC = np.array([c.cpc for c in _AD_CAMPAIGNS])
_AD_CTR = np.array([c.ctr for c in _AD_CAMPAIGNS])
_AD_USD = np.array([c.currency == "USD" for c in _AD_CAMPAIGNS])

_DEVICE_ENGAGEMENT = np.array([0.03, -0.03, 0.0])
_DEVICE_CONVERSION = np.array([1.25, 0.80, 1.00])
# Rows: Monday..Sunday, columns: desktop, mobile, tablet. People browse on phones at weekends.
_WEEKDAY_DEVICE = np.array(
    [
        [1.08, 0.95, 0.95],
        [1.10, 0.95, 0.95],
        [1.08, 0.95, 0.95],
        [1.06, 0.96, 0.96],
        [0.98, 1.00, 1.00],
        [0.72, 1.12, 1.15],
        [0.75, 1.18, 1.20],
    ]
)
# Local-time hour profile of purchases; the small night weights put some orders right after
# midnight, where the UTC day is still the previous one.
_HOUR_WEIGHTS = np.array(
    [
        [1.2, 0.6, 0.3, 0.2, 0.2, 0.4, 1.0, 2.0, 3.0, 3.8, 4.2, 4.5],  # 00-11h
        [4.8, 4.6, 4.4, 4.3, 4.4, 4.8, 5.2, 6.0, 6.6, 6.4, 5.0, 2.8],  # 12-23h
    ]
).ravel()
_HOUR_P = _HOUR_WEIGHTS / _HOUR_WEIGHTS.sum()
_CSAT_P = np.array([0.02, 0.04, 0.10, 0.34, 0.50])


# ---------------------------------------------------------------------------------------------
# Calendar
# ---------------------------------------------------------------------------------------------


def outage_day(end: date) -> date:
    """Return the day of the simulated GA4 tracking outage for data ending on ``end``.

    Anchored on the end of the requested range (40 days before it) so the outage always falls
    inside a typical demo window and is recent enough to show up in KPI checks.
    """
    return end - timedelta(days=OUTAGE_OFFSET_DAYS)


def black_friday(year: int) -> date:
    """Return Black Friday of ``year``: the day after the fourth Thursday of November."""
    first = date(year, 11, 1)
    first_thursday = first + timedelta(days=(3 - first.weekday()) % 7)
    return first_thursday + timedelta(days=22)


def _in_spring_sale(day: date) -> bool:
    return day.month == 3 and day.day <= 21


def _in_black_friday_week(day: date) -> bool:
    # Monday before Black Friday up to and including Cyber Monday.
    bf = black_friday(day.year)
    return bf - timedelta(days=4) <= day <= bf + timedelta(days=3)


_WINDOW_CHECKS = {"spring": _in_spring_sale, "black_friday": _in_black_friday_week}


def _bump(day_of_year: int, centre: int, width: float) -> float:
    # Circular distance so a bump near New Year does not fall off the calendar edge.
    dist = (day_of_year - centre + 182) % 365 - 182
    return math.exp(-((dist / width) ** 2))


class _DayContext(NamedTuple):
    segments: np.ndarray  # indices into _SEGMENTS active on the day
    baseline: float  # expected all-channel sessions before campaigns and noise
    channel_boost: np.ndarray  # per channel multiplier
    device_factor: np.ndarray  # per device multiplier
    conversion_factor: float


@lru_cache(maxsize=8192)
def _day_context(ordinal: int) -> _DayContext:
    day = date.fromordinal(ordinal)
    doy = day.timetuple().tm_yday
    spring = _in_spring_sale(day)
    bf_week = _in_black_friday_week(day)
    trend = (1 + _YEARLY_GROWTH) ** ((ordinal - _TREND_ANCHOR) / 365.25)
    # Broad winter high / summer low, a Nov/Dec shopping peak and a July holiday dip.
    yearly = (
        1
        + 0.08 * math.cos(2 * math.pi * (doy - 335) / 365.25)
        + 0.14 * _bump(doy, 335, 22)
        - 0.10 * _bump(doy, 205, 18)
    )
    active = [i for i, w in enumerate(_SEG_WINDOW) if w is None or _WINDOW_CHECKS[w](day)]
    boost = np.ones(len(CHANNELS))
    # Newsletters go out on Tuesdays and Thursdays.
    boost[_CHANNEL_INDEX["Email"]] = 1.7 if day.weekday() in (1, 3) else 0.75
    # Sales also lift unpaid demand (word of mouth, people typing the shop's address).
    halo = 1.06 if bf_week else 1.03 if spring else 1.0
    for name in ("Organic Search", "Direct", "Organic Social", "Referral"):
        boost[_CHANNEL_INDEX[name]] = halo
    conversion = (1 + 0.12 * _bump(doy, 340, 25)) * (1.15 if bf_week else 1.1 if spring else 1.0)
    return _DayContext(
        segments=np.array(active),
        baseline=_BASE_SESSIONS * trend * yearly,
        channel_boost=boost,
        device_factor=_WEEKDAY_DEVICE[day.weekday()],
        conversion_factor=conversion,
    )


def _rng(seed: int, stream: int, ordinal: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, ordinal])


def _ordinals(start: date, end: date) -> np.ndarray:
    if start > end:
        raise ValueError(f"start {start} is after end {end}")
    return np.arange(start.toordinal(), end.toordinal() + 1)


def _order_values(rng: np.random.Generator, n: int) -> np.ndarray:
    # Log-normal basket values: median ~68 EUR, mean ~75 EUR, a long tail of big baskets.
    return np.round(np.maximum(rng.lognormal(math.log(68.0), 0.45, n), 9.95), 2)


def _local_seconds(rng: np.random.Generator, n: int) -> np.ndarray:
    hours = rng.choice(24, size=n, p=_HOUR_P)
    return hours * 3600 + rng.integers(0, 3600, size=n)


def _utc_timestamps(ordinals: np.ndarray, seconds: np.ndarray) -> pd.Series:
    """Turn local wall-clock times (day ordinal + seconds) in the demo time zone into UTC."""
    local_ns = (ordinals - _EPOCH_ORDINAL) * _NS_PER_DAY + seconds * 1_000_000_000
    local = pd.DatetimeIndex(local_ns.astype("datetime64[ns]"))
    # DST: the skipped spring hour moves forward; the repeated autumn hour counts as summer time.
    aware = local.tz_localize(
        DEMO_TIME_ZONE, ambiguous=np.ones(len(local), dtype=bool), nonexistent="shift_forward"
    )
    return pd.Series(aware.tz_convert("UTC"))


def _day_labels(ordinals: np.ndarray, fmt: str) -> np.ndarray:
    """Format day ordinals with ``strftime`` once per distinct day (cheap for long frames)."""
    uniq, inverse = np.unique(ordinals, return_inverse=True)
    labels = np.array([date.fromordinal(int(o)).strftime(fmt) for o in uniq], dtype=object)
    return labels[inverse]


def _day_dates(ordinals: np.ndarray) -> np.ndarray:
    uniq, inverse = np.unique(ordinals, return_inverse=True)
    return np.array([date.fromordinal(int(o)) for o in uniq], dtype=object)[inverse]


def _yearly_names(templates: list[str], index: np.ndarray, ordinals: np.ndarray) -> np.ndarray:
    """Resolve "{year}" in campaign names; formats each (campaign, year) pair only once."""
    uniq_days, day_inverse = np.unique(ordinals, return_inverse=True)
    years = np.array([date.fromordinal(int(o)).year for o in uniq_days], dtype="int64")
    codes = np.asarray(index, dtype="int64") * 10_000 + years[day_inverse]
    uniq, inverse = np.unique(codes, return_inverse=True)
    names = [templates[int(c) // 10_000].format(year=int(c) % 10_000) for c in uniq]
    return np.array(names, dtype=object)[inverse]


# ---------------------------------------------------------------------------------------------
# GA4 traffic
# ---------------------------------------------------------------------------------------------


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

    Sessions and every metric drop by ~80 % on the tracking-outage day, which is
    ``outage_day(end)`` unless ``outage`` names another day. Pass the same ``outage`` to every
    call (e.g. per-day partitions) to see the outage independently of the requested range.
    """
    ordinals = _ordinals(start, end)
    outage_ordinal = (outage or outage_day(end)).toordinal()
    days = []
    for ordinal in ordinals.tolist():
        day = _traffic_day(seed, ordinal)
        if ordinal == outage_ordinal:
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


# ---------------------------------------------------------------------------------------------
# Ad spend
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Orders
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Survey
# ---------------------------------------------------------------------------------------------


def survey_answers(start: date, end: date, seed: int = 7) -> pd.DataFrame:
    """Post-purchase survey answers given on local days ``start``..``end``.

    Columns: ``answered_at`` (tz-aware UTC), ``response_id`` (unique), ``csat_score`` (1-5, mostly
    4-5), ``nps_score`` (0-10, mostly 7-10 and correlated with CSAT) and ``channel`` (GA4
    channel group of the purchase). 5-30 answers a day, ~30 % of the day's tracked orders.
    """
    ordinals = _ordinals(start, end)
    parts: list[tuple[np.ndarray, ...]] = []
    for ordinal in ordinals.tolist():
        day = _traffic_day(seed, ordinal)
        rng = _rng(seed, _STREAM_SURVEY, ordinal)
        order_channels = _SEG_CHANNEL[day.segment[day.txn_row]]
        n = int(np.clip(rng.poisson(0.3 * len(order_channels)), 5, 30))
        if len(order_channels):
            channel = rng.choice(order_channels, size=n)
        else:
            channel = np.full(n, _CHANNEL_INDEX["Direct"])
        csat = rng.choice(5, size=n, p=_CSAT_P) + 1
        nps = np.clip(np.rint(2 * csat - 0.2 + rng.normal(0.0, 1.1, n)), 0, 10).astype("int64")
        seconds = np.sort(_local_seconds(rng, n), kind="stable")
        parts.append((np.full(n, ordinal), np.arange(n), seconds, csat, nps, channel))
    row_ordinals, seq, seconds, csat, nps, channel = (
        np.concatenate([p[i] for p in parts]) for i in range(6)
    )
    response_id = _day_labels(row_ordinals, "SR-%Y%m%d-") + pd.Series(seq).map("{:03d}".format)
    return pd.DataFrame(
        {
            "answered_at": _utc_timestamps(row_ordinals, seconds),
            "response_id": response_id.to_numpy(dtype=object),
            "csat_score": csat.astype("int64"),
            "nps_score": nps,
            "channel": np.array(CHANNELS, dtype=object)[channel],
        }
    )


# ---------------------------------------------------------------------------------------------
# Landing files
# ---------------------------------------------------------------------------------------------


def _local_month(timestamps: pd.Series) -> pd.Series:
    return timestamps.dt.tz_convert(DEMO_TIME_ZONE).dt.strftime("%Y-%m")


def write_landing_files(
    folder: Path, start: date, end: date, seed: int = 7
) -> dict[str, list[Path]]:
    """Write the file-based sources as monthly CSVs under ``folder`` and return their paths.

    Layout: ``ad_spend/ad_spend_YYYY-MM.csv``, ``orders/orders_YYYY-MM.csv`` and
    ``survey/survey_YYYY-MM.csv``; months are local (property time zone) months and the first
    and last file hold only the days inside ``start``..``end``. Output bytes are deterministic.
    Existing files with the same names are overwritten; other files are left alone.
    """
    folder = Path(folder)
    spend = ad_spend(start, end, seed)
    order_rows = orders(start, end, seed)
    answers = survey_answers(start, end, seed)
    frames = {
        "ad_spend": (spend, pd.to_datetime(spend["date"]).dt.strftime("%Y-%m")),
        "orders": (order_rows, _local_month(order_rows["ordered_at"])),
        "survey": (answers, _local_month(answers["answered_at"])),
    }
    written: dict[str, list[Path]] = {}
    for name, (frame, month) in frames.items():
        target = folder / name
        target.mkdir(parents=True, exist_ok=True)
        written[name] = []
        for key in sorted(month.unique()):
            path = target / f"{name}_{key}.csv"
            frame[month == key].to_csv(path, index=False, lineterminator="\n", float_format="%.2f")
            written[name].append(path)
    return written
