"""The days a run of a file source reads, and the rows of no partition it takes.

A run reads the rows of its window; rows dated where no partition is (after today, before
the first partition) or without a date are taken by a run that can hold them in its
quarantine, so no row vanishes without trace (see :class:`Reach`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pandas as pd
import sqlalchemy as sa

from ingest.files.dates import local_dates, row_days
from ingest.files.deliveries import FileLoad
from kpi.language.models import Grain, SourceSpec
from quality.quarantine import no_partition_reason


def today_in(zone: str) -> dt.date:
    return dt.datetime.now(ZoneInfo(zone)).date()


@dataclass(frozen=True)
class Reach:
    """The days whose rows a run reads: its window, plus the days no partition holds.

    A row dated after today (a typo, a clock in the wrong zone) or before the first
    partition would otherwise never be read by any run, so it would vanish without trace.
    The run whose window reaches the last partition (yesterday) takes the rows after today
    and those before the first partition (a file holding only such rows is taken by the next
    daily run, whichever days the run that noticed it covered); a run reaching the first
    partition takes those before it too. They are quarantined under their own day, which
    that run's quarantine replace covers: a re-run never duplicates them, and once a future
    day becomes a partition its own run takes the row over.
    """

    start: dt.date
    end: dt.date
    first_day: dt.date
    today: dt.date

    @property
    def takes_future(self) -> bool:
        return self.end >= self.today - dt.timedelta(days=1)

    @property
    def takes_past(self) -> bool:
        return self.start <= self.first_day or self.takes_future

    def in_window(self, days: pd.Series) -> pd.Series:
        return day_stamps(days).between(pd.Timestamp(self.start), pd.Timestamp(self.end))

    def stray(self, days: pd.Series) -> pd.Series:
        """Rows of no partition that this run takes (a missing day is none of them)."""
        stamps = day_stamps(days)
        future = stamps > pd.Timestamp(self.today) if self.takes_future else False
        past = stamps < pd.Timestamp(self.first_day) if self.takes_past else False
        return (future | past) & stamps.notna()

    def reason(self, column: str, day: dt.date) -> str:
        where = (
            f"after today ({self.today})"
            if day > self.today
            else f"before the first partition ({self.first_day})"
        )
        return no_partition_reason(column, f"{day} is {where}; no partition holds it")

    def quarantine_slice(self, q: sa.Table) -> sa.ColumnElement:
        cond = q.c._partition.between(self.start, self.end)
        if self.takes_future:
            cond = cond | (q.c._partition > self.today)
        if self.takes_past:
            cond = cond | (q.c._partition < self.first_day)
        return cond


def period_start(day: dt.date, grain: Grain) -> dt.date:
    """The first day of the ``grain`` period holding ``day`` (weeks start on Monday)."""
    if grain == Grain.week:
        return day - dt.timedelta(days=day.weekday())
    if grain == Grain.month:
        return day.replace(day=1)
    if grain == Grain.quarter:
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    if grain == Grain.year:
        return day.replace(month=1, day=1)
    return day


def day_stamps(days: pd.Series) -> pd.Series:
    """Days (dates, timestamps of Parquet dates, or missing) as datetime64, NaT when
    missing: one conversion, then every comparison over the whole batch is vectorised
    (a batch holds every row of every landing file of the source)."""
    return pd.to_datetime(days, errors="coerce")


def as_quarantined(out: pd.DataFrame, spec: SourceSpec) -> pd.DataFrame:
    conv = spec.currency_conversion
    if conv is None:
        return out
    # The quarantine table has the raw table's columns: money as received is "original_".
    return out.rename(
        columns={conv.amount: f"original_{conv.amount}", conv.currency_column: "original_currency"}
    )


def arrival_days(
    files: list[FileLoad], loaded: dict[str, dt.datetime], zone: str, reach: Reach
) -> dict[str, dt.date]:
    """The partition day of each file's undated rows: the day the file first arrived (today
    for a new one), within the partitions (first partition .. yesterday). Fixed once the file
    is in the load registry, so every run puts those rows in the same day's quarantine."""
    last = reach.today - dt.timedelta(days=1)
    days = {}
    for f in files:
        at = loaded.get(f.sha256)
        day = at.astimezone(ZoneInfo(zone)).date() if at is not None else reach.today
        days[f.path] = min(max(day, reach.first_day), last)
    return days


def rejected_between(
    rejected: pd.DataFrame,
    spec: SourceSpec,
    zone: str,
    reach: Reach,
    arrival: dict[str, dt.date],
) -> pd.DataFrame:
    """Rows that failed parsing whose day (their own, else their file's first day, else the
    day their file arrived) is in the run's window, or is a day no partition holds that this
    run takes; named like the raw table's columns."""
    if rejected.empty:
        return rejected
    days = row_days(rejected, spec, zone).astype(object)
    # Without a day of its own or of its file, a row takes its file's arrival day: a fixed
    # day, so one run quarantines it, not every run once more under its own window.
    days = days.where(days.notna(), rejected["_file_day"])
    days = days.where(days.notna(), rejected["_source_file"].map(arrival))
    out = rejected.assign(_partition_day=days)
    out = out[reach.in_window(days) | reach.stray(days)].reset_index(drop=True)
    return as_quarantined(out, spec)


def split_strays(
    frame: pd.DataFrame,
    spec: SourceSpec,
    zone: str,
    reach: Reach,
    arrival: dict[str, dt.date],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows of the window, rows of no partition this run takes, as rejected rows)."""
    if frame.empty:
        return frame, pd.DataFrame()
    days = day_stamps(pd.Series(list(local_dates(frame, spec, zone)), index=frame.index))
    stray = reach.stray(days)
    strays = frame[stray].assign(_partition_day=days[stray].dt.date)
    strays["_problem"] = [reach.reason(spec.time.column, d) for d in strays["_partition_day"]]
    # A row without a date would be in no window and dropped without trace: the run of the
    # day its file arrived quarantines it.
    held = frame["_source_file"].map(arrival)
    undated = days.isna() & reach.in_window(held)
    if undated.any():
        nodate = frame[undated].assign(_partition_day=held[undated])
        nodate["_problem"] = no_partition_reason(
            spec.time.column, "the row has no date; held by the day its file arrived"
        )
        strays = pd.concat([strays, nodate], ignore_index=True)
    inside = frame[reach.in_window(days)].reset_index(drop=True)
    return inside, as_quarantined(strays.reset_index(drop=True), spec)


def rows_per_file(frame: pd.DataFrame, rejected: pd.DataFrame) -> dict[str, int]:
    """Rows this run received from each landing file: to load, or already rejected."""
    files = [f["_source_file"] for f in (frame, rejected) if "_source_file" in f]
    if not files:
        return {}
    counts = pd.concat(files, ignore_index=True).astype(str).value_counts()
    return {str(path): int(n) for path, n in counts.items()}
