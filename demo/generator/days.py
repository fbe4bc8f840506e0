"""Calendar and per-day helpers shared by every demo source: sale windows, the day's
traffic context, seeded random streams and date / timestamp formatting."""

from __future__ import annotations

import math
from datetime import date, timedelta
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import pandas as pd

from demo.generator.catalogue import (
    _BASE_SESSIONS,
    _CHANNEL_INDEX,
    _EPOCH_ORDINAL,
    _HOUR_P,
    _NS_PER_DAY,
    _SEG_WINDOW,
    _TREND_ANCHOR,
    _WEEKDAY_DEVICE,
    _YEARLY_GROWTH,
    CHANNELS,
    DEMO_TIME_ZONE,
    OUTAGE_DATES,
)


def outage_days(start: date, end: date) -> list[date]:
    """The simulated GA4 tracking outages from ``start`` to ``end``: every year on the
    calendar days of ``OUTAGE_DATES``, whatever range is requested or when."""
    return [
        date(year, month, day)
        for year in range(start.year, end.year + 1)
        for month, day in OUTAGE_DATES
        if start <= date(year, month, day) <= end
    ]


def outage_day(end: date) -> date:
    """The latest simulated tracking outage on or before ``end``."""
    return outage_days(date(end.year - 1, 1, 1), end)[-1]


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
