"""Running a report: stable paging (explicit ``order_bys`` on every dimension,
``offset``/``limit`` until ``offset >= row_count``), retried calls, and the typed rows with the
sampling, thresholding, ``(other)`` data loss and quota that travel with them."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import pandas as pd
from google.analytics.data_v1beta import BetaAnalyticsDataClient
from google.analytics.data_v1beta.types import (
    BatchRunReportsRequest,
    BatchRunReportsResponse,
    RunReportRequest,
    RunReportResponse,
)

from ingest.ga4.errors import GA4Error, GA4RequestError
from ingest.ga4.quota import QUOTA_KEYS, merge_quota
from ingest.ga4.request import MAX_BATCH_REQUESTS, build_request, validate_inputs, validate_range
from ingest.ga4.retry import RetryPolicy, call_with_retry
from ingest.ga4.rows import response_frame
from ingest.ga4.spec import ReportSpec

logger = logging.getLogger(__name__)


@dataclass
class ReportResult:
    """One report pulled for one property and date range, with its quality metadata.

    ``rows`` columns are the snake_case GA4 names; the time dimension as ``datetime.date``
    (``date`` itself, the Monday of an ``isoYearIsoWeek``, the first day of a ``yearWeek`` or
    ``yearMonth``; ``None`` on the ``(other)`` row), metrics typed by their header (integer ->
    ``Int64``, everything else -> ``float64``) and a boolean ``is_other_row``. ``quota`` sums
    ``*_consumed`` over every page of this pull and keeps the last ``*_remaining`` seen; values
    are ``None`` when not returned. ``sampling_ratio`` is the smallest
    ``samples_read_count / sampling_space_size`` of any page (``None`` when not sampled).
    ``requests`` counts attempts, retries included, that were spent on this pull alone.
    """

    rows: pd.DataFrame
    property_id: str
    time_zone: str
    currency_code: str
    sampled: bool
    thresholded: bool
    data_loss_from_other_row: bool
    quota: dict[str, int | None] = field(default_factory=dict)
    pages: int = 0
    requests: int = 0
    row_count: int = 0
    sampling_ratio: float | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    requested_at: dt.datetime | None = None


class ReportPull:
    """Accumulates the pages of one report request (one property, one date range).

    ``run_report`` drives one of these; :mod:`ingest.ga4.pull` drives several side by side, one per
    request of a ``BatchRunReports`` call.
    """

    def __init__(
        self, property_id: str, spec: ReportSpec, start: dt.date, end: dt.date, page_size: int
    ) -> None:
        self.property_id = property_id
        self.spec = spec
        self.start = start
        self.end = end
        self.page_size = page_size
        self.offset = 0
        self.pages = 0
        self.requests = 0
        self.row_count = 0
        self.done = False
        self.requested_at: dt.datetime | None = None
        self._frames: list[pd.DataFrame] = []
        self._first: RunReportResponse | None = None
        self._sampled = self._thresholded = self._other_loss = False
        self._ratio: float | None = None
        self.quota: dict[str, int | None] = dict.fromkeys(QUOTA_KEYS)

    def next_request(self) -> RunReportRequest:
        """The request for the next page."""
        if self.requested_at is None:
            self.requested_at = dt.datetime.now(dt.UTC)
        return build_request(
            self.property_id, self.spec, self.start, self.end, self.offset, self.page_size
        )

    def add(self, response: RunReportResponse) -> None:
        """Take one page; sets ``done`` when every row has been received."""
        self.pages += 1
        self._first = self._first or response
        self.row_count = response.row_count
        metadata = response.metadata
        self._sampled = self._sampled or bool(metadata.sampling_metadatas)
        for sampling in metadata.sampling_metadatas:
            if sampling.sampling_space_size:
                ratio = sampling.samples_read_count / sampling.sampling_space_size
                self._ratio = ratio if self._ratio is None else min(self._ratio, ratio)
        self._thresholded = self._thresholded or metadata.subject_to_thresholding
        self._other_loss = self._other_loss or metadata.data_loss_from_other_row
        merge_quota(self.quota, response)
        self._frames.append(response_frame(response))
        received = len(response.rows)
        self.offset += received
        logger.info(
            "GA4 %s property=%s %s..%s page=%d rows=%d offset=%d row_count=%d",
            self.spec.name,
            self.property_id,
            self.start,
            self.end,
            self.pages,
            received,
            self.offset,
            self.row_count,
        )
        # An empty page before row_count means the data shrank mid-pull; stop rather than spin.
        self.done = self.offset >= self.row_count or received == 0

    def result(self) -> ReportResult:
        """The typed rows and metadata of every page taken."""
        if self._first is None:
            raise GA4Error("no page was received")
        frames = self._frames
        rows = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        return ReportResult(
            rows=rows,
            property_id=self.property_id,
            time_zone=self._first.metadata.time_zone,
            currency_code=self._first.metadata.currency_code,
            sampled=self._sampled,
            thresholded=self._thresholded,
            data_loss_from_other_row=self._other_loss,
            quota=self.quota,
            pages=self.pages,
            requests=self.requests,
            row_count=self.row_count,
            sampling_ratio=self._ratio,
            start=self.start,
            end=self.end,
            requested_at=self.requested_at,
        )


def run_report(
    client: BetaAnalyticsDataClient,
    property_id: str,
    spec: ReportSpec,
    start: dt.date,
    end: dt.date,
    *,
    page_size: int = 100_000,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    timeout: float = 60.0,
) -> ReportResult:
    """Pull ``spec`` for ``property_id`` over ``start``..``end`` (inclusive, property time zone).

    Raises :class:`GA4RequestError` for invalid input or 400/401/403,
    :class:`GA4QuotaExhaustedError` when the daily token quota is spent, and
    :class:`GA4RetriesExhaustedError` when a retryable error outlasts ``retry.max_attempts``.
    """
    retry = retry or RetryPolicy()
    validate_inputs(property_id, spec, page_size, retry)
    validate_range(start, end)
    pull = ReportPull(property_id, spec, start, end, page_size)
    while not pull.done:
        request = pull.next_request()
        response, attempts = call_with_retry(
            lambda request=request: client.run_report(request=request, timeout=timeout),
            property_id,
            retry,
            sleep,
            page_size=page_size,
        )
        pull.requests += attempts
        pull.add(response)
    return pull.result()


def batch_run_reports(
    client: BetaAnalyticsDataClient,
    property_id: str,
    requests: list[RunReportRequest],
    *,
    retry: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    timeout: float = 60.0,
) -> tuple[list[RunReportResponse], int]:
    """Send ``requests`` (at most 5, one property) as one ``BatchRunReports`` call, retried
    like ``RunReport``; returns the responses in request order and the attempts spent.

    One request goes out as a plain ``RunReport``: same tokens, simpler errors.
    """
    if not 1 <= len(requests) <= MAX_BATCH_REQUESTS:
        raise GA4RequestError(
            f"a batch holds 1 to {MAX_BATCH_REQUESTS} requests, got {len(requests)}",
            status="LOCAL",
        )
    if len(requests) == 1:
        response, attempts = call_with_retry(
            lambda: client.run_report(request=requests[0], timeout=timeout),
            property_id,
            retry,
            sleep,
            page_size=requests[0].limit or None,
        )
        return [response], attempts
    batch = BatchRunReportsRequest(property=f"properties/{property_id}", requests=requests)
    answer, attempts = call_with_retry(
        lambda: client.batch_run_reports(request=batch, timeout=timeout),
        property_id,
        retry,
        sleep,
        method="BatchRunReports",
        page_size=max(r.limit for r in requests) or None,
    )
    reports = list(cast(BatchRunReportsResponse, answer).reports)
    if len(reports) != len(requests):
        raise GA4Error(
            f"GA4 BatchRunReports for property {property_id} answered {len(reports)} reports "
            f"for {len(requests)} requests"
        )
    return reports, attempts
