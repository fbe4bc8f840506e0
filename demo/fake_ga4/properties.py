"""The GA4 properties the fake serves: fixture rows, their normalised frame and quota use."""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from demo.fake_ga4.schema import _COMPACT_DATE_RE, _ISO_DATE_RE, METRIC_TYPES


@dataclass
class FakeProperty:
    """One GA4 property served by :class:`FakeGA4Server`.

    ``rows`` holds one row per date x dimension combination with columns named by GA4 API names.
    ``date`` may be ``datetime.date``/``Timestamp`` values or ``YYYYMMDD``/``YYYY-MM-DD`` strings.
    Dimension columns that a request asks for but the fixture lacks read as ``(not set)``;
    missing metric columns read as zero.
    """

    property_id: str
    rows: pd.DataFrame
    time_zone: str = "UTC"
    currency_code: str = "USD"
    sampled: bool = False
    thresholded: bool = False
    other_row_threshold: int | None = None


@dataclass
class _QuotaBucket:
    consumed_day: int = 0
    consumed_hour: int = 0


@dataclass
class _PropertyState:
    prop: FakeProperty
    frame: pd.DataFrame  # sorted by date (see _prepare_frame)
    quota: _QuotaBucket = field(default_factory=_QuotaBucket)
    dates: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.dates = self.frame["date"].tolist()

    def between(self, start: str, end: str) -> pd.DataFrame:
        """The fixture rows dated ``start..end`` (``YYYYMMDD``, inclusive), by bisection."""
        low = bisect.bisect_left(self.dates, start)
        high = bisect.bisect_right(self.dates, end)
        return self.frame.iloc[low:high]


def _normalise_date(value: Any) -> str:
    """Return a ``YYYYMMDD`` string for any reasonable date representation in a fixture."""
    if isinstance(value, str):
        if _COMPACT_DATE_RE.match(value):
            return value
        if _ISO_DATE_RE.match(value):
            return value.replace("-", "")
    if isinstance(value, dt.datetime | pd.Timestamp):
        return value.strftime("%Y%m%d")
    if isinstance(value, dt.date):
        return value.strftime("%Y%m%d")
    raise ValueError(f"cannot interpret {value!r} as a GA4 fixture date")


def _prepare_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Copy a fixture and normalise ``date`` so range filtering is plain string comparison."""
    if "date" not in rows.columns:
        raise ValueError("fixture rows need a 'date' column")
    frame = rows.copy().reset_index(drop=True)
    frame["date"] = [_normalise_date(v) for v in frame["date"]]
    # Sorted by day so a request's rows are found by bisection (see _PropertyState.between).
    frame = frame.sort_values("date", kind="stable").reset_index(drop=True)
    for column in frame.columns:
        if column in METRIC_TYPES:
            frame[column] = pd.to_numeric(frame[column]).fillna(0)
    return frame
