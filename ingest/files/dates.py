"""Each row's day in the reporting zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd

from kpi.language.models import SourceSpec


def local_dates(frame: pd.DataFrame, spec: SourceSpec, time_zone: str) -> pd.Series:
    """The reporting-zone calendar date of each row."""
    values = frame[spec.time.column]
    if spec.time.type == "date":
        return values
    return values.dt.tz_convert(ZoneInfo(time_zone)).dt.date


def date_range(
    frame: pd.DataFrame, spec: SourceSpec, time_zone: str
) -> tuple[dt.date | None, dt.date | None]:
    """The first and last reporting-zone date of the rows (None, None without any)."""
    if frame.empty:
        return None, None
    days = local_dates(frame, spec, time_zone).dropna()
    if days.empty:
        return None, None
    return min(days), max(days)


def row_days(frame: pd.DataFrame, spec: SourceSpec, zone: str) -> pd.Series:
    """Each row's reporting-zone day (NaT-safe; the frame may mix typed and bare rows)."""
    values = frame[spec.time.column] if spec.time.column in frame else pd.Series(None, frame.index)
    if spec.time.type == "date":
        return pd.to_datetime(values, errors="coerce").dt.date
    return pd.to_datetime(values, errors="coerce", utc=True).dt.tz_convert(zone).dt.date
