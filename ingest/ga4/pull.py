"""Pull a GA4 report period by period: one request per property and day (or week, or month).

Why one request per period rather than one per date range:

- GA4 folds rows past its cardinality limit into one ``(other)`` row whose every dimension,
  ``date`` included, reads ``(other)``. Over a multi-day range that row belongs to no day; over
  one day it belongs to that day, so it can be kept (flagged) and the day's totals stay whole.
- A load replaces whole periods, so a request must cover exactly the period it replaces.

Requests go out ``batch_size`` at a time (``BatchRunReports`` takes at most 5 requests, all for
one property), each request paged on its own. Between calls the extractor honours the quota
numbers GA4 returns: when the property's remaining daily tokens fall below ``min_daily_tokens``
it stops before the next call with :class:`GA4QuotaFloorError`, naming when to resume; the
periods pulled so far have already been handed to the caller.

No Dagster here.
"""

from __future__ import annotations

import calendar
import datetime as dt
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from google.analytics.data_v1beta import BetaAnalyticsDataClient

from ingest.ga4.errors import GA4Error, GA4QuotaExhaustedError, GA4RequestError
from ingest.ga4.quota import next_quota_reset
from ingest.ga4.request import MAX_BATCH_REQUESTS, validate_inputs, validate_range
from ingest.ga4.retry import RetryPolicy
from ingest.ga4.rows import snake_case
from ingest.ga4.run import ReportPull, ReportResult, batch_run_reports
from ingest.ga4.spec import ReportSpec

GRAINS = ("day", "week", "month")


@dataclass(frozen=True)
class Bucket:
    """One period to pull: ``key`` labels it in the warehouse (the day, the Monday of the ISO
    week, the first of the month); ``start``..``end`` is the range requested, which stops at
    ``period_end`` or earlier for a period still open."""

    key: dt.date
    start: dt.date
    end: dt.date
    period_end: dt.date

    @property
    def label(self) -> str:
        if self.start == self.end:
            return self.start.isoformat()
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


@dataclass
class BucketResult:
    """What one period's request returned. ``result.rows`` has the time column filled in on the
    ``(other)`` row (with ``bucket.key``), so every row belongs to a known period."""

    bucket: Bucket
    result: ReportResult


class GA4QuotaFloorError(GA4QuotaExhaustedError):
    """The property's remaining daily tokens fell below the configured floor; ``pending``
    lists the periods not requested. Resume after ``resets_at`` (midnight Pacific)."""

    def __init__(
        self,
        message: str,
        *,
        remaining: int,
        floor: int,
        pending: Sequence[Bucket],
        resets_at: dt.datetime | None,
    ) -> None:
        super().__init__(message, resets_at=resets_at)
        self.remaining = remaining
        self.floor = floor
        self.pending = list(pending)


def period_of(grain: str, day: dt.date) -> tuple[dt.date, dt.date]:
    """First and last day of the ``grain`` period holding ``day`` (weeks are ISO weeks)."""
    if grain == "day":
        return day, day
    if grain == "week":
        monday = day - dt.timedelta(days=day.weekday())
        return monday, monday + dt.timedelta(days=6)
    if grain == "month":
        last = calendar.monthrange(day.year, day.month)[1]
        return day.replace(day=1), day.replace(day=last)
    raise ValueError(f"unknown grain {grain!r}; expected one of {', '.join(GRAINS)}")


def buckets_for(grain: str, first: dt.date, last: dt.date, *, latest: dt.date) -> list[Bucket]:
    """The periods a run for the days ``first..last`` must (re)load.

    A day is a bucket of its own. A week or month touched by ``first..last`` is pulled whole,
    from its first day to its last day or ``latest`` (the last complete day) if earlier, but
    never short of ``last``. Users are not additive, so a period is only ever loaded as one
    number; pulling it whole (not up to ``last``) makes every run that touches it load the same
    value, whatever order the runs of a backfill finish in.
    """
    if first > last:
        raise ValueError(f"first day {first} is after last day {last}")
    buckets: list[Bucket] = []
    day = first
    while day <= last:
        start, period_end = period_of(grain, day)
        end = min(period_end, max(last, latest))
        buckets.append(Bucket(key=start, start=start, end=end, period_end=period_end))
        day = period_end + dt.timedelta(days=1)
    return buckets


def pull_buckets(
    client: BetaAnalyticsDataClient,
    property_id: str,
    spec: ReportSpec,
    buckets: Sequence[Bucket],
    *,
    batch_size: int = MAX_BATCH_REQUESTS,
    page_size: int = 100_000,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    timeout: float = 60.0,
    min_daily_tokens: int = 0,
    daily_tokens_remaining: int | None = None,
    on_quota: Callable[[int], None] | None = None,
) -> Iterator[list[BucketResult]]:
    """Pull ``spec`` for each bucket; yield the results one call batch at a time.

    ``daily_tokens_remaining`` is what an earlier pull of the same property saw (quotas are per
    property, shared by every report); ``on_quota`` receives each new reading. Before each
    batch, if the last reading is below ``min_daily_tokens``, :class:`GA4QuotaFloorError` is
    raised. Errors of :func:`ingest.ga4.retry.call_with_retry` propagate unchanged; the batches
    yielded before them are complete and can be kept.
    """
    retry = retry or RetryPolicy()
    validate_inputs(property_id, spec, page_size, retry)
    if not 1 <= batch_size <= MAX_BATCH_REQUESTS:
        raise GA4RequestError(
            f"batch_size must be between 1 and {MAX_BATCH_REQUESTS}, got {batch_size}",
            status="LOCAL",
        )
    for bucket in buckets:
        validate_range(bucket.start, bucket.end)

    remaining = daily_tokens_remaining
    for index in range(0, len(buckets), batch_size):
        # Checked between batches only: a batch once started is paged to the end, so what it
        # pulled is complete and loadable. A batch costs a handful of requests at most.
        if remaining is not None and remaining < min_daily_tokens:
            raise _floor_error(property_id, spec, remaining, min_daily_tokens, buckets[index:])
        chunk = list(buckets[index : index + batch_size])
        pulls = [ReportPull(property_id, spec, b.start, b.end, page_size) for b in chunk]
        active = list(pulls)
        while active:
            requests = [p.next_request() for p in active]
            responses, attempts = batch_run_reports(
                client, property_id, requests, retry=retry, sleep=sleep, timeout=timeout
            )
            for pull, response in zip(active, responses, strict=True):
                pull.requests += attempts
                pull.add(response)
                day_left = pull.quota.get("tokens_per_day_remaining")
                if day_left is not None:
                    remaining = day_left
            if remaining is not None and on_quota is not None:
                on_quota(remaining)
            active = [p for p in active if not p.done]
        yield [
            BucketResult(bucket, _label_other_rows(spec, bucket, pull.result()))
            for bucket, pull in zip(chunk, pulls, strict=True)
        ]


def _floor_error(
    property_id: str, spec: ReportSpec, remaining: int, floor: int, pending: Sequence[Bucket]
) -> GA4QuotaFloorError:
    resets_at = next_quota_reset()
    when = resets_at.isoformat() if resets_at else "midnight Pacific time"
    first, last = pending[0].start, pending[-1].end
    return GA4QuotaFloorError(
        f"GA4 property {property_id}: {remaining} daily tokens left, below the floor of "
        f"{floor} (min_daily_tokens), so report {spec.name!r} stopped before "
        f"{len(pending)} period(s) {first}..{last}. Resume after {when}, when the daily quota "
        "resets: re-run these partitions (or let the backfill retry them); the periods "
        "already pulled are loaded.",
        remaining=remaining,
        floor=floor,
        pending=pending,
        resets_at=resets_at,
    )


def _label_other_rows(spec: ReportSpec, bucket: Bucket, result: ReportResult) -> ReportResult:
    """Give the ``(other)`` row its period, and check every other row is in the period asked."""
    time_dimension = spec.time_dimension
    assert time_dimension is not None  # validate_inputs rejects specs without one
    column = snake_case(time_dimension)
    rows = result.rows
    if rows.empty:
        return result
    values = rows[column]
    wrong = sorted({v for v in values if v is not None and v != bucket.key})
    if wrong:
        raise GA4Error(
            f"GA4 report {spec.name!r} for {bucket.label} returned rows for {wrong[:3]}; "
            f"expected only {bucket.key} (is {time_dimension} aligned with the period?)"
        )
    rows = rows.copy()
    rows[column] = [bucket.key] * len(rows)
    result.rows = rows
    return result
