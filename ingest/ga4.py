"""Extract GA4 reports with the official Data API client (``google.analytics.data_v1beta``).

This module is plain domain code: no Dagster imports, so it can be tested against
``demo.fake_ga4_server`` and reused from any orchestrator.

What it guarantees (see ``shared/notes/ga4.md`` for the underlying API facts):
- stable paging: explicit ``order_bys`` on every dimension, ``offset``/``limit`` until
  ``offset >= row_count``;
- typed output: values arrive as strings and are cast by each metric header's type;
- the ``(other)`` row is kept and flagged instead of crashing the date parser;
- sampling, thresholding, ``(other)`` data loss and quota usage travel with the rows;
- bounded retries with exponential backoff and jitter for 429/500/503/504, no retry for
  400/401/403, and an immediate, explicit failure when the *daily* token quota is gone or a
  page passes gRPC's message-size limit (also RESOURCE_EXHAUSTED, but no quota: lower page_size).

Pulling one report per day (or week, or month) with ``BatchRunReports`` and a quota floor lives
in :mod:`ingest.ga4_pull`; reports declared in YAML are read by :mod:`ingest.ga4_reports`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc
import pandas as pd
from google.analytics.data_v1beta import BetaAnalyticsDataClient
from google.analytics.data_v1beta.services.beta_analytics_data.transports import (
    BetaAnalyticsDataGrpcTransport,
)
from google.analytics.data_v1beta.types import (
    BatchRunReportsRequest,
    BatchRunReportsResponse,
    DateRange,
    Dimension,
    Metric,
    MetricType,
    OrderBy,
    RunReportRequest,
    RunReportResponse,
)
from google.api_core import exceptions as gexc

from ingest.ga4_filters import (
    DIMENSION_OPERATORS,
    METRIC_OPERATORS,
    ReportFilter,
    field_names,
    leaves,
    to_proto,
)

logger = logging.getLogger(__name__)

MAX_DIMENSIONS = 9
MAX_METRICS = 10
MAX_PAGE_SIZE = 250_000
MAX_BATCH_REQUESTS = 5
# Time dimensions a report can be keyed by, and the grain each one gives. ``yearWeek`` weeks
# start on Sunday and restart at week 01 on January 1st (so the week spanning New Year comes
# back as two partial rows); ``isoYearIsoWeek`` weeks are ISO weeks, Monday to Sunday.
TIME_DIMENSIONS: dict[str, str] = {
    "date": "day",
    "isoYearIsoWeek": "week",
    "yearWeek": "week",
    "yearMonth": "month",
}
OTHER_VALUE = "(other)"
DAILY_QUOTA_TIME_ZONE = "America/Los_Angeles"

# ResourceExhausted is what gRPC raises for 429; TooManyRequests is the REST flavour and is not
# a subclass of it (it is the parent), so catching ResourceExhausted alone would miss REST 429s.
RETRYABLE_ERRORS: tuple[type[Exception], ...] = (
    gexc.ResourceExhausted,
    gexc.TooManyRequests,
    gexc.InternalServerError,
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
)
_QUOTA_ERRORS = (gexc.ResourceExhausted, gexc.TooManyRequests)
# gRPC also answers RESOURCE_EXHAUSTED when a message passes the channel's size limit, on either
# side ("Received message larger than max (10507902 vs. 4194304)", "Sent message larger than
# max ..."). That is no quota: the same request gets the same page, so it must not be retried.
_MESSAGE_SIZE_RE = re.compile(
    r"message larger than max|message too large|max_(?:receive|send)_message_length",
    re.IGNORECASE,
)
# What Google's own BetaAnalyticsDataGrpcTransport passes to the channel it opens: no size limit
# either way. A channel opened here for GA4_API_ENDPOINT needs the same, or pages over gRPC's
# default 4 MiB (a 100k-row page is ~10 MB) fail there and nowhere else.
GRPC_CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
)
_DAILY_QUOTA_RE = re.compile(r"per\s*day|daily", re.IGNORECASE)
_CAMEL_BOUNDARY_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_IDENTIFIER_RE = re.compile(r"[^0-9a-zA-Z]+")

_INTEGER_TYPES = frozenset({MetricType.TYPE_INTEGER})


class GA4Error(Exception):
    """Base class for every error this module raises."""


class GA4RequestError(GA4Error):
    """The request cannot succeed as sent (HTTP 400/401/403 or a local validation failure).

    Retrying will not help; the message names the most likely cause.
    """

    def __init__(self, message: str, *, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status


class GA4MessageTooLargeError(GA4RequestError):
    """A response (or request) passed gRPC's message-size limit.

    gRPC reports this as RESOURCE_EXHAUSTED, the status of a quota error, but sending the same
    request again returns the same page: it is permanent until ``page_size`` is lowered.
    """


class GA4CredentialsError(GA4Error):
    """Credentials could not be loaded. Messages never include credential content."""


class GA4QuotaExhaustedError(GA4Error):
    """The property's daily token quota is spent; the next run after the reset should resume."""

    def __init__(self, message: str, *, resets_at: dt.datetime | None = None) -> None:
        super().__init__(message)
        self.resets_at = resets_at


class GA4RetriesExhaustedError(GA4Error):
    """A retryable error (429/500/503/504) persisted for every allowed attempt."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


@dataclass(frozen=True)
class ReportSpec:
    """A named GA4 report: which dimensions and metrics to request, optionally filtered.

    Exactly one time dimension (``date``, ``isoYearIsoWeek``, ``yearWeek`` or ``yearMonth``)
    must be among the dimensions, because loads replace data period by period.
    """

    name: str
    dimensions: tuple[str, ...]
    metrics: tuple[str, ...]
    dimension_filter: ReportFilter | None = None
    metric_filter: ReportFilter | None = None

    @property
    def time_dimension(self) -> str | None:
        """The report's time dimension, or None when it has none (an invalid spec)."""
        return next((d for d in self.dimensions if d in TIME_DIMENSIONS), None)

    @property
    def grain(self) -> str | None:
        """``day``, ``week`` or ``month``: what one value of the time dimension covers."""
        time_dimension = self.time_dimension
        return TIME_DIMENSIONS[time_dimension] if time_dimension else None

    def problems(self) -> list[str]:
        """Return human-readable reasons the API would reject this spec (empty when fine)."""
        return [message for _, message in self.located_problems()]

    def located_problems(self) -> list[tuple[str, str]]:
        """Like :meth:`problems`, each paired with the field it is about (``name``,
        ``dimensions``, ``metrics``, ``dimension_filter`` or ``metric_filter``), so a YAML
        loader can point at the right line."""
        found: list[tuple[str, str]] = []
        if not self.name:
            found.append(("name", "report spec needs a name"))
        if len(self.dimensions) > MAX_DIMENSIONS:
            found.append(
                (
                    "dimensions",
                    f"{len(self.dimensions)} dimensions requested; the GA4 Data API allows at "
                    f"most {MAX_DIMENSIONS} per report",
                )
            )
        if len(self.metrics) > MAX_METRICS:
            found.append(
                (
                    "metrics",
                    f"{len(self.metrics)} metrics requested; the GA4 Data API allows at most "
                    f"{MAX_METRICS} per report",
                )
            )
        if not self.metrics:
            found.append(("metrics", "at least one metric is required"))
        time_dims = [d for d in self.dimensions if d in TIME_DIMENSIONS]
        if not time_dims:
            found.append(
                (
                    "dimensions",
                    f"a time dimension ({', '.join(TIME_DIMENSIONS)}) is required so loads "
                    "can replace whole days, weeks or months",
                )
            )
        elif len(set(time_dims)) > 1:
            found.append(
                (
                    "dimensions",
                    f"only one time dimension per report, got {', '.join(time_dims)}: the "
                    "report's grain must be clear so its rows replace whole periods",
                )
            )
        for kind, names in (("dimension", self.dimensions), ("metric", self.metrics)):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                found.append((f"{kind}s", f"duplicate {kind} names: {', '.join(duplicates)}"))
        both = sorted(set(self.dimensions) & set(self.metrics))
        if both:
            found.append(("metrics", f"names used as both dimension and metric: {', '.join(both)}"))
        if "conversions" in self.metrics:
            found.append(
                ("metrics", "'conversions' was renamed to 'keyEvents' in GA4; request 'keyEvents'")
            )
        found += self._filter_problems()
        return found

    def _filter_problems(self) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        checks = (
            ("dimension_filter", self.dimension_filter, DIMENSION_OPERATORS, self.metrics),
            ("metric_filter", self.metric_filter, METRIC_OPERATORS, self.dimensions),
        )
        for where, expr, allowed, wrong_names in checks:
            wrong_kind = "metric" if where == "dimension_filter" else "dimension"
            if expr is None:
                continue
            bad_ops = sorted({leaf.op for leaf in leaves(expr)} - allowed)
            if bad_ops:
                found.append((where, f"{where} cannot use {', '.join(bad_ops)}"))
            misplaced = [n for n in field_names(expr) if n in wrong_names]
            if misplaced:
                found.append(
                    (
                        where,
                        f"{where} tests {', '.join(misplaced)}, which this report requests as "
                        f"a {wrong_kind}; GA4 filters dimensions and metrics separately",
                    )
                )
        return found


# Users are not additive across days: monthly counts come from a report at month grain.
USERS_MONTHLY_REPORT = ReportSpec(
    "users_monthly", ("yearMonth",), ("totalUsers", "newUsers", "activeUsers")
)

TRAFFIC_REPORT = ReportSpec(
    "traffic",
    (
        "date",
        "sessionDefaultChannelGroup",
        "sessionSource",
        "sessionMedium",
        "sessionCampaignName",
        "deviceCategory",
    ),
    ("sessions", "engagedSessions", "newUsers", "keyEvents", "transactions", "purchaseRevenue"),
)


@dataclass
class RetryPolicy:
    """Bounded exponential backoff. ``max_attempts`` counts the first try."""

    max_attempts: int = 5
    initial_backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    jitter: bool = True

    def delay(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based)."""
        base = min(self.max_backoff_s, self.initial_backoff_s * 2 ** (retry_number - 1))
        if not self.jitter:
            return base
        # "Equal jitter": spreads clients out without ever collapsing the wait to zero.
        return base / 2 + (rng or random).uniform(0, base / 2)


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

    ``run_report`` drives one of these; ``ingest.ga4_pull`` drives several side by side, one per
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
        self.quota: dict[str, int | None] = dict.fromkeys(_QUOTA_KEYS)

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
        _merge_quota(self.quota, response)
        self._frames.append(_response_frame(response))
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


def snake_case(name: str) -> str:
    """Turn a GA4 API name into a column name: ``sessionDefaultChannelGroup`` ->
    ``session_default_channel_group``; ``customEvent:plan`` -> ``custom_event_plan``."""
    spaced = _CAMEL_BOUNDARY_RE.sub("_", name)
    return _NON_IDENTIFIER_RE.sub("_", spaced).strip("_").lower()


def make_client(
    endpoint: str | None = None, credentials_json: str | None = None
) -> BetaAnalyticsDataClient:
    """Build a Data API client.

    - ``endpoint`` ("host:port"): plain insecure gRPC, no credentials (the local fake server).
    - ``credentials_json``: a path to a service-account key file, or the JSON key itself.
    - neither: Application Default Credentials.
    """
    if endpoint:
        channel = grpc.insecure_channel(endpoint, options=list(GRPC_CHANNEL_OPTIONS))
        transport = BetaAnalyticsDataGrpcTransport(channel=channel)
        return BetaAnalyticsDataClient(transport=transport)
    if credentials_json:
        return _client_from_service_account(credentials_json)
    try:
        return BetaAnalyticsDataClient()
    except Exception as error:  # google.auth raises DefaultCredentialsError and friends
        raise GA4CredentialsError(
            "no GA4 credentials: set credentials_json (service-account key file path or JSON) "
            f"or configure Application Default Credentials ({type(error).__name__})"
        ) from None


def _client_from_service_account(credentials_json: str) -> BetaAnalyticsDataClient:
    # Errors deliberately drop the original exception (`from None`): parser errors can carry the
    # key text, which must never reach logs or run metadata.
    text = credentials_json.strip()
    if text.startswith("{"):
        try:
            info = json.loads(text)
        except ValueError:
            raise GA4CredentialsError(
                "credentials_json looks like inline JSON but is not valid JSON"
            ) from None
        try:
            return BetaAnalyticsDataClient.from_service_account_info(info)
        except Exception as error:
            raise GA4CredentialsError(
                "credentials_json is JSON but not a usable service-account key "
                f"({type(error).__name__}); expected a key with client_email and private_key"
            ) from None
    path = Path(text).expanduser()
    if not path.is_file():
        raise GA4CredentialsError(
            "credentials_json is neither inline JSON nor a path to an existing file"
        )
    try:
        return BetaAnalyticsDataClient.from_service_account_file(str(path))
    except Exception as error:
        raise GA4CredentialsError(
            f"could not load the service-account key file {path} ({type(error).__name__})"
        ) from None


def build_request(
    property_id: str, spec: ReportSpec, start: dt.date, end: dt.date, offset: int, limit: int
) -> RunReportRequest:
    """The RunReport request for one page of ``spec``."""
    request = RunReportRequest(
        property=f"properties/{property_id}",
        dimensions=[Dimension(name=d) for d in spec.dimensions],
        metrics=[Metric(name=m) for m in spec.metrics],
        date_ranges=[DateRange(start_date=start.isoformat(), end_date=end.isoformat())],
        # Ordering on every dimension makes offset paging deterministic between pages.
        order_bys=[
            OrderBy(
                dimension=OrderBy.DimensionOrderBy(
                    dimension_name=d,
                    order_type=OrderBy.DimensionOrderBy.OrderType.ALPHANUMERIC,
                )
            )
            for d in spec.dimensions
        ],
        offset=offset,
        limit=limit,
        keep_empty_rows=False,
        return_property_quota=True,
    )
    if spec.dimension_filter is not None:
        request.dimension_filter = to_proto(spec.dimension_filter)
    if spec.metric_filter is not None:
        request.metric_filter = to_proto(spec.metric_filter)
    return request


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


def validate_inputs(property_id: str, spec: ReportSpec, page_size: int, retry: RetryPolicy) -> None:
    """Reject what the API would reject (or what would waste quota) before any call."""
    if not (isinstance(property_id, str) and property_id.isdigit()):
        hint = ""
        if isinstance(property_id, str) and property_id.upper().startswith("G-"):
            hint = (
                " It looks like a measurement id (G-XXXX) from a web data stream; use the "
                "numeric property id shown in GA4 Admin > Property details."
            )
        raise GA4RequestError(
            f"GA4 property id must be numeric, got {property_id!r}.{hint}", status="LOCAL"
        )
    problems = spec.problems()
    if problems:
        raise GA4RequestError(
            f"report spec {spec.name!r} is invalid: {'; '.join(problems)}", status="LOCAL"
        )
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise GA4RequestError(
            f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}", status="LOCAL"
        )
    if retry.max_attempts < 1:
        raise GA4RequestError("retry.max_attempts must be at least 1", status="LOCAL")


def validate_range(start: dt.date, end: dt.date) -> None:
    """``start`` must not be after ``end``."""
    if start > end:
        raise GA4RequestError(f"start {start} is after end {end}", status="LOCAL")


def call_with_retry(
    call: Callable[[], Any],
    property_id: str,
    retry: RetryPolicy,
    sleep: Callable[[float], None],
    *,
    method: str = "RunReport",
    page_size: int | None = None,
) -> tuple[Any, int]:
    """Run ``call`` with bounded backoff on 429/500/503/504; returns (answer, attempts).

    A daily-quota 429 and 400/401/403 are raised at once as :class:`GA4QuotaExhaustedError`
    and :class:`GA4RequestError`, a message over gRPC's size limit as
    :class:`GA4MessageTooLargeError` (``page_size``, the rows asked per page, goes into its
    advice); a retryable error that outlasts the policy becomes :class:`GA4RetriesExhaustedError`.
    """
    for attempt in range(1, retry.max_attempts + 1):
        try:
            return call(), attempt
        except _QUOTA_ERRORS as error:
            if _MESSAGE_SIZE_RE.search(str(error.message)):
                raise _message_size_error(property_id, error, method, page_size) from error
            if _DAILY_QUOTA_RE.search(str(error.message)):
                raise _daily_quota_error(property_id, error) from error
            last: Exception = error
        except RETRYABLE_ERRORS as error:
            last = error
        except (gexc.BadRequest, gexc.Unauthorized, gexc.Forbidden) as error:
            raise _request_error(property_id, error, method) from error
        except gexc.GoogleAPICallError as error:
            # Anything else (404, 409, 501...) is not transient either.
            raise GA4RequestError(
                f"GA4 {method} for property {property_id} failed: "
                f"{type(error).__name__}: {error.message}",
                status=_status_name(error),
            ) from error
        if attempt == retry.max_attempts:
            break
        delay = retry.delay(attempt)
        logger.warning(
            "GA4 property=%s attempt %d/%d failed with %s; retrying in %.1fs",
            property_id,
            attempt,
            retry.max_attempts,
            type(last).__name__,
            delay,
        )
        sleep(delay)
    raise GA4RetriesExhaustedError(
        f"GA4 {method} for property {property_id} still failing after {retry.max_attempts} "
        f"attempts: {type(last).__name__}: {getattr(last, 'message', last)}",
        attempts=retry.max_attempts,
    ) from last


def _status_name(error: gexc.GoogleAPICallError) -> str | None:
    code = error.grpc_status_code
    if code is not None:
        return code.name
    return str(error.code) if error.code is not None else None


def _request_error(
    property_id: str, error: gexc.GoogleAPICallError, method: str = "RunReport"
) -> GA4RequestError:
    detail = error.message
    if isinstance(error, gexc.Unauthorized):
        cause = (
            "the credentials were rejected (missing, expired or for the wrong account); check "
            "the service-account key or Application Default Credentials"
        )
    elif isinstance(error, gexc.Forbidden):
        cause = (
            f"the service account most likely lacks access to property {property_id}: add its "
            "client_email as a Viewer in GA4 Admin > Property access management, and check the "
            "id is the numeric property id (not a G-XXXX measurement id) and that the Google "
            "Analytics Data API is enabled for the Cloud project"
        )
    else:
        cause = (
            f"the request was rejected as invalid; check that {property_id} is the numeric GA4 "
            "property id (not a G-XXXX measurement id) and that every dimension and metric is a "
            "valid GA4 API name that can be combined with the others"
        )
    return GA4RequestError(
        f"GA4 {method} failed for property {property_id} ({type(error).__name__}): {cause}. "
        f"Server said: {detail}",
        status=_status_name(error),
    )


def _message_size_error(
    property_id: str, error: gexc.GoogleAPICallError, method: str, page_size: int | None
) -> GA4MessageTooLargeError:
    asked = f" (now {page_size})" if page_size else ""
    return GA4MessageTooLargeError(
        f"GA4 {method} for property {property_id} failed: a message passed gRPC's size limit. "
        "This is not a quota error and re-sending the same request cannot succeed: lower "
        f"page_size{asked} so each page holds fewer rows, or raise the limit of the channel "
        f"if it was opened outside make_client. Server said: {error.message}",
        status=_status_name(error),
    )


def _daily_quota_error(property_id: str, error: gexc.GoogleAPICallError) -> GA4QuotaExhaustedError:
    resets_at = next_quota_reset()
    when = f" (next reset {resets_at.isoformat()})" if resets_at else ""
    return GA4QuotaExhaustedError(
        f"GA4 daily token quota exhausted for property {property_id}. Retrying now cannot "
        "succeed: resume after the daily quota resets at midnight Pacific time"
        f"{when}; the next scheduled run will pick up from there. Server said: {error.message}",
        resets_at=resets_at,
    )


def next_quota_reset(now: dt.datetime | None = None) -> dt.datetime | None:
    """When the daily token quota refills: the next midnight, Pacific time."""
    try:
        zone = ZoneInfo(DAILY_QUOTA_TIME_ZONE)
    except ZoneInfoNotFoundError:  # no tz database on this host; the message still says when
        return None
    local = (now or dt.datetime.now(dt.UTC)).astimezone(zone)
    tomorrow = local.date() + dt.timedelta(days=1)
    return dt.datetime.combine(tomorrow, dt.time(), tzinfo=zone)


_QUOTA_KEYS = (
    "tokens_per_day_consumed",
    "tokens_per_day_remaining",
    "tokens_per_hour_consumed",
    "tokens_per_hour_remaining",
)


def _merge_quota(quota: dict[str, int | None], response: RunReportResponse) -> None:
    if "property_quota" not in response:
        return
    property_quota = response.property_quota
    for bucket in ("tokens_per_day", "tokens_per_hour"):
        if bucket not in property_quota:
            continue
        status = getattr(property_quota, bucket)
        consumed_key = f"{bucket}_consumed"
        quota[consumed_key] = (quota[consumed_key] or 0) + status.consumed
        quota[f"{bucket}_remaining"] = status.remaining


def parse_time_value(name: str, value: str) -> dt.date | None:
    """The first day of the period a time dimension value names; None for ``(other)``.

    ``date`` is ``YYYYMMDD``; ``yearMonth`` is ``YYYYMM`` (its first day); ``isoYearIsoWeek``
    is ``YYYYWW`` in ISO weeks (its Monday); ``yearWeek`` is ``YYYYWW`` in GA4 weeks, which
    start on Sunday with week 01 holding January 1st (its first day, January 1st for week 01).
    """
    # Only the (other) row legitimately carries a non-date here; anything else is a real bug.
    if value == OTHER_VALUE:
        return None
    try:
        if name == "date":
            return dt.datetime.strptime(value, "%Y%m%d").date()
        if name == "yearMonth":
            return dt.datetime.strptime(value, "%Y%m").date()
        if len(value) != 6 or not value.isdigit():
            raise ValueError(value)
        year, week = int(value[:4]), int(value[4:])
        if name == "isoYearIsoWeek":
            return dt.date.fromisocalendar(year, week, 1)
        if name == "yearWeek":
            return _ga4_week_start(year, week)
    except ValueError:
        expected = {"date": "YYYYMMDD", "yearMonth": "YYYYMM"}.get(name, "YYYYWW")
        raise GA4Error(f"unexpected GA4 {name!r} value {value!r}; expected {expected}") from None
    raise GA4Error(f"{name!r} is not a time dimension")


def _ga4_week_start(year: int, week: int) -> dt.date:
    jan1 = dt.date(year, 1, 1)
    if week == 1:
        return jan1
    # Week 02 starts on the first Sunday after January 1st (isoweekday: Sunday is 7).
    first_sunday = jan1 + dt.timedelta(days=7 - jan1.isoweekday() % 7)
    start = first_sunday + dt.timedelta(weeks=week - 2)
    if not 2 <= week <= 53 or start.year != year:
        raise ValueError(f"week {week}")
    return start


def _typed_numbers(values: list[str], integer: bool) -> pd.Series:
    """Metric strings as ``Int64`` (integer metrics) or ``float64`` (everything else)."""
    try:
        if integer:
            return pd.Series(pd.array([int(v) for v in values], dtype="Int64"))
        return pd.Series([float(v) for v in values], dtype="float64")
    except ValueError:
        # Not plain literals (an integer metric sent as "12.0"): let pandas parse them.
        numbers = pd.to_numeric(pd.Series(values, dtype="str"))
        return numbers.astype("Int64" if integer else "float64")


def _response_frame(response: RunReportResponse) -> pd.DataFrame:
    """Typed DataFrame for one page."""
    # The raw protobuf: proto-plus wraps every nested message on access, which made reading a
    # large page take longer than fetching it.
    raw_response = RunReportResponse.pb(response)
    dim_names = [h.name for h in raw_response.dimension_headers]
    metric_headers = list(response.metric_headers)
    dim_values = [[v.value for v in row.dimension_values] for row in raw_response.rows]
    metric_values = [[v.value for v in row.metric_values] for row in raw_response.rows]

    data: dict[str, Any] = {}
    for i, name in enumerate(dim_names):
        raw = [values[i] for values in dim_values]
        if name in TIME_DIMENSIONS:
            # A page holds few distinct periods (one, when pulled period by period).
            parsed = {v: parse_time_value(name, v) for v in set(raw)}
            data[snake_case(name)] = pd.Series([parsed[v] for v in raw], dtype=object)
        else:
            data[snake_case(name)] = pd.Series(raw, dtype="str")
    for i, header in enumerate(metric_headers):
        integer = header.type_ in _INTEGER_TYPES
        data[snake_case(header.name)] = _typed_numbers([v[i] for v in metric_values], integer)
    time_dims = [n for n in dim_names if n in TIME_DIMENSIONS]
    date_index = dim_names.index(time_dims[0]) if time_dims else None
    data["is_other_row"] = pd.Series(
        [
            bool(values)
            and (
                all(v == OTHER_VALUE for v in values)
                or (date_index is not None and values[date_index] == OTHER_VALUE)
            )
            for values in dim_values
        ],
        dtype=bool,
    )
    return pd.DataFrame(data)
