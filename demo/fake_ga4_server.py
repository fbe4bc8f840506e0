"""A local, credential-free stand-in for the GA4 Data API (``v1beta``) over real gRPC.

The server speaks ``google.analytics.data.v1beta.BetaAnalyticsData/RunReport`` and
``BatchRunReports`` on an insecure port, so the official ``BetaAnalyticsDataClient`` can talk to
it unchanged through ``BetaAnalyticsDataGrpcTransport(channel=grpc.insecure_channel(...))``.
Errors are raised with ``context.abort`` and therefore reach the client as the same
``google.api_core.exceptions`` classes the real service produces.

It reproduces the behaviours an extractor must survive rather than the whole API: paging with
``limit``/``offset``/``row_count``, string-typed values with typed metric headers, omitted
all-zero rows, the ``(other)`` row, sampling/thresholding metadata, token quotas, injected
faults, several properties in their own time zones, and data that changes between pulls
(:meth:`FakeGA4Server.set_rows`). Dimension filters (string match, in-list, empty, and/or/not)
are applied to the fixture rows before aggregation and metric filters (numeric comparison,
between) after it, as GA4 does. Numeric filters on dimensions, filters on metrics that are not
requested, cohorts, comparisons, pivots and metric aggregations are answered with
``UNIMPLEMENTED`` so a test never silently relies on something the fake ignores.

Fidelity notes:
- User counts (``totalUsers``, ``newUsers``, ``activeUsers``) are summed like any count, which the
  real API does not do; do not use the fake to test user de-duplication across days.
- ``engagementRate``/``bounceRate`` are recomputed from ``engagedSessions``/``sessions``; other
  non-additive metrics (rates, averages) are averaged weighted by ``sessions``.
- The ``(other)`` row is made after aggregation from the smallest rows of the answer; the real
  service makes it from its pre-aggregated tables, so which rows end up in it differs.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pandas as pd
from google.analytics.data_v1beta.types import (
    BatchRunReportsRequest,
    BatchRunReportsResponse,
    DimensionHeader,
    Filter,
    FilterExpression,
    MetricHeader,
    MetricType,
    OrderBy,
    PropertyQuota,
    QuotaStatus,
    ResponseMetaData,
    RunReportRequest,
    RunReportResponse,
    SamplingMetadata,
)

SERVICE_NAME = "google.analytics.data.v1beta.BetaAnalyticsData"

MAX_DIMENSIONS = 9
MAX_METRICS = 10
MAX_DATE_RANGES = 4
MAX_BATCH_REQUESTS = 5
DEFAULT_LIMIT = 10_000
MAX_LIMIT = 250_000
OTHER = "(other)"
NOT_SET = "(not set)"

_INT = MetricType.TYPE_INTEGER
_FLOAT = MetricType.TYPE_FLOAT
_CURRENCY = MetricType.TYPE_CURRENCY
_SECONDS = MetricType.TYPE_SECONDS

# A subset of the GA4 API schema: enough for marketing reports, and anything outside it is
# rejected exactly like a typo would be by the real service.
METRIC_TYPES: dict[str, MetricType] = {
    **{
        name: _INT
        for name in (
            "sessions",
            "engagedSessions",
            "newUsers",
            "totalUsers",
            "activeUsers",
            "keyEvents",
            "transactions",
            "ecommercePurchases",
            "addToCarts",
            "checkouts",
            "screenPageViews",
            "eventCount",
            "itemsViewed",
            "totalPurchasers",
        )
    },
    **{
        name: _CURRENCY
        for name in (
            "purchaseRevenue",
            "totalRevenue",
            "itemRevenue",
            "grossPurchaseRevenue",
            "advertiserAdCost",
        )
    },
    **{
        name: _FLOAT
        for name in (
            "engagementRate",
            "bounceRate",
            "sessionKeyEventRate",
            "userKeyEventRate",
            "sessionsPerUser",
            "screenPageViewsPerSession",
        )
    },
    "averageSessionDuration": _SECONDS,
    "userEngagementDuration": _SECONDS,
}

# Metrics that may be summed across rows. Everything else is a rate or an average.
ADDITIVE_METRICS = frozenset(
    name for name, kind in METRIC_TYPES.items() if kind in (_INT, _CURRENCY)
) | {"userEngagementDuration"}

# name -> (numerator, denominator, complement); the real API derives these from counts too.
RATIO_METRICS: dict[str, tuple[str, str, bool]] = {
    "engagementRate": ("engagedSessions", "sessions", False),
    "bounceRate": ("engagedSessions", "sessions", True),
}

KNOWN_DIMENSIONS = frozenset(
    {
        "date",
        "dateHour",
        "year",
        "month",
        "day",
        "yearMonth",
        "yearWeek",
        "isoYearIsoWeek",
        "dayOfWeek",
        "sessionDefaultChannelGroup",
        "sessionSource",
        "sessionMedium",
        "sessionSourceMedium",
        "sessionCampaignName",
        "sessionCampaignId",
        "sessionManualAdContent",
        "sessionManualTerm",
        "sessionGoogleAdsCampaignName",
        "firstUserDefaultChannelGroup",
        "firstUserSource",
        "firstUserMedium",
        "firstUserCampaignName",
        "deviceCategory",
        "platform",
        "browser",
        "operatingSystem",
        "country",
        "countryId",
        "region",
        "city",
        "language",
        "landingPage",
        "landingPagePlusQueryString",
        "pagePath",
        "hostName",
        "eventName",
        "newVsReturning",
        "transactionId",
        "itemId",
        "itemName",
        "dateRange",
    }
)

# Calendar dimensions the fake can derive from 'date' when a fixture does not carry them.
_DERIVED_DATE_DIMENSIONS = {
    "year": lambda d: f"{d.year:04d}",
    "month": lambda d: f"{d.month:02d}",
    "day": lambda d: f"{d.day:02d}",
    "yearMonth": lambda d: f"{d.year:04d}{d.month:02d}",
    # GA4 weeks start on Sunday and January 1st is always in week 01, so week 01 (and the last
    # week of the year) is usually short. strftime's %U is the same count minus one whenever
    # January 1st is not a Sunday (it calls the days before the first Sunday week 00).
    "yearWeek": lambda d: f"{d.year:04d}{_ga4_week(d):02d}",
    "isoYearIsoWeek": lambda d: f"{d.isocalendar()[0]:04d}{d.isocalendar()[1]:02d}",
    "dayOfWeek": lambda d: str((d.weekday() + 1) % 7),
}


def _ga4_week(day: dt.date) -> int:
    sunday_based = int(day.strftime("%U"))
    return sunday_based if dt.date(day.year, 1, 1).weekday() == 6 else sunday_based + 1


_PROPERTY_RE = re.compile(r"^properties/(\d+)$")
_RELATIVE_DAYS_RE = re.compile(r"^(\d+)daysAgo$")
_ISO_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_COMPACT_DATE_RE = re.compile(r"^\d{8}$")

_DEFAULT_FAULT_DETAILS = {
    grpc.StatusCode.RESOURCE_EXHAUSTED: (
        "Exhausted property tokens per hour quota. Consumed: 40001 tokens. Limit: 40000 tokens."
    ),
    grpc.StatusCode.UNAVAILABLE: "The service is currently unavailable.",
    grpc.StatusCode.INTERNAL: "Internal error encountered.",
    grpc.StatusCode.DEADLINE_EXCEEDED: "Deadline Exceeded",
    grpc.StatusCode.PERMISSION_DENIED: (
        "User does not have sufficient permissions for this property."
    ),
    grpc.StatusCode.UNAUTHENTICATED: (
        "Request had invalid authentication credentials. Expected OAuth 2 access token."
    ),
    grpc.StatusCode.INVALID_ARGUMENT: "Request contains an invalid argument.",
}


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


class _Abort(Exception):
    """Carries a gRPC status from deep inside request handling back to the handler."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


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


def _format_metric(value: float, kind: MetricType) -> str:
    # The real API sends every value as a string; integers carry no decimal point.
    if kind == _INT:
        return str(round(value))
    return f"{float(value):.15g}"


class FakeGA4Server:
    """In-process gRPC server imitating the GA4 Data API for a fixed set of properties.

    Use as a context manager; ``endpoint`` is ``"host:port"`` once started. Token quotas are
    counted per property: each report costs ``tokens_per_request`` tokens, and once a bucket
    is empty the next request fails with ``RESOURCE_EXHAUSTED`` whose message names the
    exhausted bucket ("tokens per day" or "tokens per hour"), as the real service does. ``None``
    disables a bucket (it is then left out of ``property_quota``). Call :meth:`reset_quota` to
    simulate the hour or the day rolling over.
    """

    def __init__(
        self,
        properties: Iterable[FakeProperty],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tokens_per_day: int | None = 200_000,
        tokens_per_hour: int | None = 40_000,
        tokens_per_request: int = 10,
        max_workers: int = 8,
    ) -> None:
        self._host = host
        self._port = port
        self._max_workers = max_workers
        self.tokens_per_day = tokens_per_day
        self.tokens_per_hour = tokens_per_hour
        self.tokens_per_request = tokens_per_request
        self._lock = threading.Lock()
        self._properties: dict[str, _PropertyState] = {}
        for prop in properties:
            if not prop.property_id.isdigit():
                raise ValueError(f"property_id must be numeric, got {prop.property_id!r}")
            self._properties[prop.property_id] = _PropertyState(prop, _prepare_frame(prop.rows))
        self._faults: deque[tuple[grpc.StatusCode, str]] = deque()
        self._server: grpc.Server | None = None
        self.endpoint: str = ""
        self.requests: list[RunReportRequest] = []
        self.calls: int = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeGA4Server:
        """Bind the port and start serving; returns ``self`` for chaining."""
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self._max_workers))
        handlers = {
            "RunReport": grpc.unary_unary_rpc_method_handler(
                self._handle_run_report,
                request_deserializer=RunReportRequest.deserialize,
                response_serializer=RunReportResponse.serialize,
            ),
            "BatchRunReports": grpc.unary_unary_rpc_method_handler(
                self._handle_batch_run_reports,
                request_deserializer=BatchRunReportsRequest.deserialize,
                response_serializer=BatchRunReportsResponse.serialize,
            ),
        }
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),)
        )
        bound = server.add_insecure_port(f"{self._host}:{self._port}")
        if not bound:
            raise RuntimeError(f"could not bind {self._host}:{self._port}")
        server.start()
        self._server = server
        self.endpoint = f"{self._host}:{bound}"
        return self

    def stop(self) -> None:
        """Stop serving immediately; in-flight calls are cancelled."""
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    def __enter__(self) -> FakeGA4Server:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- test controls ---------------------------------------------------------------------

    def set_rows(self, property_id: str, rows: pd.DataFrame) -> None:
        """Replace a property's data, e.g. to simulate GA4 revising recent days."""
        frame = _prepare_frame(rows)
        with self._lock:
            state = self._properties[property_id]
            state.prop.rows = rows
            state.frame = frame
            state.dates = frame["date"].tolist()

    def inject_faults(self, *codes: grpc.StatusCode, details: str = "") -> None:
        """Make the next ``len(codes)`` report calls abort with these status codes, in order.

        Without ``details`` each code gets a message like the real service's.
        """
        with self._lock:
            for code in codes:
                self._faults.append((code, details or _DEFAULT_FAULT_DETAILS.get(code, code.name)))

    def reset_quota(self, *, daily: bool = True) -> None:
        """Refill the hourly buckets, and the daily ones too unless ``daily=False``."""
        with self._lock:
            for state in self._properties.values():
                state.quota.consumed_hour = 0
                if daily:
                    state.quota.consumed_day = 0

    # -- gRPC handlers ---------------------------------------------------------------------

    def _handle_run_report(
        self, request: RunReportRequest, context: grpc.ServicerContext
    ) -> RunReportResponse:
        try:
            with self._lock:
                self.calls += 1
                self.requests.append(request)
                self._raise_injected_fault()
                state = self._resolve_property(request.property)
                self._validate(request)
                self._charge_quota(state)
                return self._build_report(state, request)
        except _Abort as abort:
            context.abort(abort.code, abort.details)
            raise  # unreachable: abort() raises, but keeps type checkers honest

    def _handle_batch_run_reports(
        self, request: BatchRunReportsRequest, context: grpc.ServicerContext
    ) -> BatchRunReportsResponse:
        try:
            with self._lock:
                self.calls += 1
                self._raise_injected_fault()
                state = self._resolve_property(request.property)
                if not request.requests:
                    raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "requests must not be empty")
                if len(request.requests) > MAX_BATCH_REQUESTS:
                    raise _Abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"A batch may hold at most {MAX_BATCH_REQUESTS} requests; "
                        f"got {len(request.requests)}.",
                    )
                inners = []
                for inner in request.requests:
                    if inner.property and inner.property != request.property:
                        raise _Abort(
                            grpc.StatusCode.INVALID_ARGUMENT,
                            "Each request's property must be empty or match the batch property.",
                        )
                    # A detached copy, so filling in the property does not alter the batch.
                    own = RunReportRequest.deserialize(RunReportRequest.serialize(inner))
                    own.property = request.property
                    self.requests.append(own)
                    inners.append(own)
                # Validate everything first: the real API fails a batch as a whole.
                for inner in inners:
                    self._validate(inner)
                reports = []
                for inner in inners:
                    self._charge_quota(state)
                    reports.append(self._build_report(state, inner))
                return BatchRunReportsResponse(
                    reports=reports, kind="analyticsData#batchRunReports"
                )
        except _Abort as abort:
            context.abort(abort.code, abort.details)
            raise

    # -- request handling (called with the lock held) ---------------------------------------

    def _raise_injected_fault(self) -> None:
        if self._faults:
            code, details = self._faults.popleft()
            raise _Abort(code, details)

    def _resolve_property(self, resource: str) -> _PropertyState:
        match = _PROPERTY_RE.match(resource)
        if not match:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Invalid property resource name {resource!r}: expected 'properties/<numeric id>'. "
                "To learn more about Property ID, see "
                "https://developers.google.com/analytics/devguides/reporting/data/v1/property-id.",
            )
        state = self._properties.get(match.group(1))
        if state is None:
            raise _Abort(
                grpc.StatusCode.PERMISSION_DENIED,
                "User does not have sufficient permissions for this property. To learn more "
                "about Property ID, see "
                "https://developers.google.com/analytics/devguides/reporting/data/v1/property-id.",
            )
        return state

    def _validate(self, request: RunReportRequest) -> None:
        unsupported = [
            name
            for name, present in (
                ("cohort_spec", "cohort_spec" in request),
                ("comparisons", bool(request.comparisons)),
                ("metric_aggregations", bool(request.metric_aggregations)),
            )
            if present
        ]
        if unsupported:
            raise _Abort(
                grpc.StatusCode.UNIMPLEMENTED,
                f"FakeGA4Server does not implement {', '.join(unsupported)}",
            )
        dims = [d.name for d in request.dimensions]
        metrics = [m.name for m in request.metrics]
        if any("dimension_expression" in d for d in request.dimensions) or any(
            m.expression for m in request.metrics
        ):
            raise _Abort(grpc.StatusCode.UNIMPLEMENTED, "FakeGA4Server does not do expressions")
        if len(dims) > MAX_DIMENSIONS:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Requests are limited to {MAX_DIMENSIONS} dimensions; got {len(dims)}.",
            )
        if len(metrics) > MAX_METRICS:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Requests are limited to {MAX_METRICS} metrics; got {len(metrics)}.",
            )
        if "dimension_filter" in request:
            _check_filter(request.dimension_filter, "dimension", metrics)
        if "metric_filter" in request:
            _check_filter(request.metric_filter, "metric", metrics)
        if not dims and not metrics:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT, "A request needs a dimension or a metric."
            )
        for names in (dims, metrics):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Duplicate names in request: {', '.join(duplicates)}.",
                )
        state = self._properties[request.property.split("/", 1)[1]]
        columns = set(state.frame.columns)
        for name in dims:
            if name not in KNOWN_DIMENSIONS and name not in columns:
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Field {name} is not a valid dimension. For a list of valid dimensions and "
                    "metrics, see https://developers.google.com/analytics/devguides/reporting/"
                    "data/v1/api-schema",
                )
        for name in metrics:
            if name not in METRIC_TYPES and name not in columns:
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Field {name} is not a valid metric. For a list of valid dimensions and "
                    "metrics, see https://developers.google.com/analytics/devguides/reporting/"
                    "data/v1/api-schema",
                )
        if not request.date_ranges:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "date_ranges must not be empty.")
        if len(request.date_ranges) > MAX_DATE_RANGES:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Requests are limited to {MAX_DATE_RANGES} date ranges.",
            )
        if request.offset < 0 or request.limit < 0:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "offset and limit must be >= 0.")
        for order in request.order_bys:
            if "dimension" in order and order.dimension.dimension_name not in dims:
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Order by dimension {order.dimension.dimension_name} is not in the request.",
                )
            if "metric" in order and order.metric.metric_name not in metrics:
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Order by metric {order.metric.metric_name} is not in the request.",
                )
            if "pivot" in order:
                raise _Abort(grpc.StatusCode.UNIMPLEMENTED, "pivot ordering is not supported")

    def _charge_quota(self, state: _PropertyState) -> None:
        bucket = state.quota
        if self.tokens_per_day is not None and bucket.consumed_day >= self.tokens_per_day:
            raise _Abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"Exhausted property tokens per day quota. Consumed: {bucket.consumed_day} "
                f"tokens. Limit: {self.tokens_per_day} tokens.",
            )
        if self.tokens_per_hour is not None and bucket.consumed_hour >= self.tokens_per_hour:
            raise _Abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"Exhausted property tokens per hour quota. Consumed: {bucket.consumed_hour} "
                f"tokens. Limit: {self.tokens_per_hour} tokens.",
            )
        bucket.consumed_day += self.tokens_per_request
        bucket.consumed_hour += self.tokens_per_request

    def _property_quota(self, state: _PropertyState) -> PropertyQuota:
        def status(consumed: int, limit: int | None) -> QuotaStatus | None:
            if limit is None:
                return None
            return QuotaStatus(consumed=self.tokens_per_request, remaining=max(0, limit - consumed))

        quota = PropertyQuota(
            concurrent_requests=QuotaStatus(consumed=0, remaining=10),
            server_errors_per_project_per_hour=QuotaStatus(consumed=0, remaining=10),
        )
        day = status(state.quota.consumed_day, self.tokens_per_day)
        hour = status(state.quota.consumed_hour, self.tokens_per_hour)
        if day is not None:
            quota.tokens_per_day = day
        if hour is not None:
            quota.tokens_per_hour = hour
        return quota

    def _build_report(self, state: _PropertyState, request: RunReportRequest) -> RunReportResponse:
        prop = state.prop
        dims = [d.name for d in request.dimensions]
        metrics = [m.name for m in request.metrics]
        ranges = self._resolve_ranges(request, prop.time_zone)
        multi_range = len(ranges) > 1
        if multi_range and "dateRange" not in dims:
            # The real API adds the dateRange dimension itself when several ranges are asked for.
            dims.append("dateRange")

        pieces = []
        for name, start, end in ranges:
            piece = state.between(start, end).copy()
            piece["dateRange"] = name
            pieces.append(piece)
        selected = pd.concat(pieces, ignore_index=True) if pieces else state.frame.iloc[0:0]
        if "dimension_filter" in request and not selected.empty:
            # Dimension filters select events before aggregation, like GA4's.
            selected = selected[_dimension_mask(selected, request.dimension_filter)]

        records = _aggregate(selected, dims, metrics)
        if not request.keep_empty_rows:
            records = [r for r in records if any(v != 0 for v in r[1])]
        if "metric_filter" in request:
            # Metric filters apply to the aggregated rows, like SQL HAVING.
            records = [r for r in records if _metric_match(request.metric_filter, r, metrics)]

        other_row = False
        threshold = prop.other_row_threshold
        if threshold is not None and len(records) > threshold:
            records = _collapse_other(records, threshold, metrics, dims)
            other_row = True

        records = _order(records, request.order_bys, dims, metrics)
        row_count = len(records)
        offset = request.offset
        limit = min(request.limit or DEFAULT_LIMIT, MAX_LIMIT)
        page = records[offset : offset + limit]

        types = [METRIC_TYPES.get(m, _FLOAT) for m in metrics]
        metadata = ResponseMetaData(
            currency_code=prop.currency_code,
            time_zone=prop.time_zone,
            subject_to_thresholding=prop.thresholded,
            data_loss_from_other_row=other_row,
        )
        if prop.sampled:
            metadata.sampling_metadatas = [
                SamplingMetadata(samples_read_count=100_000, sampling_space_size=1_000_000)
                for _ in ranges
            ]
        response = RunReportResponse(
            dimension_headers=[DimensionHeader(name=d) for d in dims],
            metric_headers=[
                MetricHeader(name=m, type_=kind) for m, kind in zip(metrics, types, strict=True)
            ],
            row_count=row_count,
            metadata=metadata,
            kind="analyticsData#runReport",
        )
        # Rows go straight into the underlying protobuf: building one proto-plus wrapper per
        # value made the fake slower than the code under test.
        raw_rows = RunReportResponse.pb(response).rows
        for dim_values, metric_values in page:
            raw_row = raw_rows.add()
            for value in dim_values:
                raw_row.dimension_values.add(value=value)
            for value, kind in zip(metric_values, types, strict=True):
                raw_row.metric_values.add(value=_format_metric(value, kind))
        if request.return_property_quota:
            response.property_quota = self._property_quota(state)
        return response

    @staticmethod
    def _resolve_ranges(request: RunReportRequest, time_zone: str) -> list[tuple[str, str, str]]:
        # Relative dates are days in the property's time zone, as in GA4 itself.
        today = dt.datetime.now(ZoneInfo(time_zone)).date()

        def parse(text: str) -> str:
            if text == "today":
                return today.strftime("%Y%m%d")
            if text == "yesterday":
                return (today - dt.timedelta(days=1)).strftime("%Y%m%d")
            relative = _RELATIVE_DAYS_RE.match(text)
            if relative:
                days = int(relative.group(1))
                return (today - dt.timedelta(days=days)).strftime("%Y%m%d")
            if _ISO_DATE_RE.match(text):
                try:
                    dt.date.fromisoformat(text)
                except ValueError:
                    pass
                else:
                    return text.replace("-", "")
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Invalid date {text!r}: use YYYY-MM-DD, NdaysAgo, yesterday or today.",
            )

        resolved = []
        for index, date_range in enumerate(request.date_ranges):
            start, end = parse(date_range.start_date), parse(date_range.end_date)
            if start > end:
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Date range start {date_range.start_date} is after end {date_range.end_date}.",
                )
            resolved.append((date_range.name or f"date_range_{index}", start, end))
        return resolved


_Record = tuple[tuple[str, ...], tuple[float, ...]]


def _aggregate(frame: pd.DataFrame, dims: Sequence[str], metrics: Sequence[str]) -> list[_Record]:
    """Group ``frame`` by ``dims`` and compute each metric the way GA4 would roll it up.

    Plain Python over column lists: a request usually selects a day or a few hundred rows, and
    pandas' per-call overhead made the fake slower than the extractor it serves.
    """
    if frame.empty:
        return []
    size = len(frame)
    key_columns = [_dimension_values(frame, name).tolist() for name in dims]

    def numbers(name: str) -> list[float]:
        if name in frame.columns:
            return pd.to_numeric(frame[name]).fillna(0).astype(float).tolist()
        return [0.0] * size

    weight = numbers("sessions") if "sessions" in frame.columns else [1.0] * size
    # One summed slot per input: slot 0 is the weight; each metric adds one or two slots.
    slots: list[list[float]] = [weight]
    plan: list[tuple[str, int]] = []
    for name in metrics:
        plan.append((name, len(slots)))
        if name in RATIO_METRICS:
            numerator, denominator, _ = RATIO_METRICS[name]
            slots += [numbers(numerator), numbers(denominator)]
        elif name in ADDITIVE_METRICS or name not in METRIC_TYPES:
            slots.append(numbers(name))
        else:
            slots.append([v * w for v, w in zip(numbers(name), weight, strict=True)])

    sums: dict[tuple[str, ...], list[float]] = {}
    for row in range(size):
        key = tuple(column[row] for column in key_columns)
        total = sums.get(key)
        if total is None:
            total = sums[key] = [0.0] * len(slots)
        for slot, values in enumerate(slots):
            total[slot] += values[row]

    def ratio(num: float, den: float) -> float:
        return num / den if den else 0.0

    records: list[_Record] = []
    for key in sorted(sums):
        total = sums[key]
        values = []
        for name, slot in plan:
            if name in RATIO_METRICS:
                complement = RATIO_METRICS[name][2]
                num, den = total[slot], total[slot + 1]
                rate = ratio(num, den)
                values.append((1.0 - rate if den else 0.0) if complement else rate)
            elif name in ADDITIVE_METRICS or name not in METRIC_TYPES:
                values.append(total[slot])
            else:
                values.append(ratio(total[slot], total[0]))
        records.append((key, tuple(values)))
    return records


def _collapse_other(
    records: list[_Record], threshold: int, metrics: Sequence[str], dims: Sequence[str]
) -> list[_Record]:
    """Keep the ``threshold`` biggest rows and fold the rest into one ``(other)`` row."""
    # GA4 keeps the highest-traffic rows; rank by the first metric, ties broken by dimensions.
    ranked = sorted(records, key=lambda r: (-(r[1][0] if r[1] else 0), r[0]))
    kept, rest = ranked[:threshold], ranked[threshold:]
    totals = []
    for index, name in enumerate(metrics):
        column = [r[1][index] for r in rest]
        if name in ADDITIVE_METRICS or name not in METRIC_TYPES:
            totals.append(float(sum(column)))
        else:
            # Without per-row weights a plain mean is the best the fake can do for rates.
            totals.append(float(sum(column) / len(column)) if column else 0.0)
    return [*kept, (tuple(OTHER for _ in dims), tuple(totals))]


def _order(
    records: list[_Record],
    order_bys: Sequence[OrderBy],
    dims: Sequence[str],
    metrics: Sequence[str],
) -> list[_Record]:
    """Apply ``order_bys`` as successive stable sorts, last key first."""
    ordered = list(records)
    for order in reversed(order_bys):
        if "dimension" in order:
            index = dims.index(order.dimension.dimension_name)
            kind = order.dimension.order_type
            if kind == OrderBy.DimensionOrderBy.OrderType.CASE_INSENSITIVE_ALPHANUMERIC:
                key: Any = lambda r, i=index: r[0][i].lower()  # noqa: E731
            elif kind == OrderBy.DimensionOrderBy.OrderType.NUMERIC:
                key = lambda r, i=index: _numeric_key(r[0][i])  # noqa: E731
            else:
                key = lambda r, i=index: r[0][i]  # noqa: E731
        else:
            index = metrics.index(order.metric.metric_name)
            key = lambda r, i=index: r[1][i]  # noqa: E731
        ordered.sort(key=key, reverse=order.desc)
    return ordered


def _numeric_key(value: str) -> tuple[int, float]:
    # Non-numeric values such as "(other)" sort after every number instead of raising.
    try:
        return (0, float(value))
    except ValueError:
        return (1, 0.0)


# -- filters ----------------------------------------------------------------------------------

_STRING_MATCH = Filter.StringFilter.MatchType
_NUMERIC_OP = Filter.NumericFilter.Operation


def _check_filter(expr: FilterExpression, kind: str, metrics: Sequence[str]) -> None:
    """Reject filters the real API rejects, and those this fake does not evaluate."""
    if "and_group" in expr or "or_group" in expr:
        group = expr.and_group if "and_group" in expr else expr.or_group
        if not group.expressions:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "A filter group must not be empty.")
        for item in group.expressions:
            _check_filter(item, kind, metrics)
        return
    if "not_expression" in expr:
        _check_filter(expr.not_expression, kind, metrics)
        return
    if "filter" not in expr:
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "A filter expression must not be empty.")
    leaf = expr.filter
    name = leaf.field_name
    if not name:
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "A filter needs a field_name.")
    string_kinds = ("string_filter", "in_list_filter", "empty_filter")
    numeric_kinds = ("numeric_filter", "between_filter")
    present = [k for k in (*string_kinds, *numeric_kinds) if k in leaf]
    if not present:
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"The filter on {name} has no condition.")
    if kind == "dimension":
        if name in METRIC_TYPES:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Metric {name} cannot be used in a dimension filter.",
            )
        if present[0] in numeric_kinds:
            raise _Abort(
                grpc.StatusCode.UNIMPLEMENTED,
                "FakeGA4Server implements string, in-list and empty filters on dimensions only",
            )
        if present[0] == "string_filter":
            match = leaf.string_filter.match_type
            if match == _STRING_MATCH.MATCH_TYPE_UNSPECIFIED:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "A string filter needs match_type.")
            if match in (_STRING_MATCH.FULL_REGEXP, _STRING_MATCH.PARTIAL_REGEXP):
                try:
                    re.compile(leaf.string_filter.value)
                except re.error as error:
                    raise _Abort(
                        grpc.StatusCode.INVALID_ARGUMENT, f"Invalid regular expression: {error}"
                    ) from None
        return
    if name in KNOWN_DIMENSIONS:
        raise _Abort(
            grpc.StatusCode.INVALID_ARGUMENT, f"Dimension {name} cannot be used in a metric filter."
        )
    if present[0] in string_kinds:
        raise _Abort(
            grpc.StatusCode.INVALID_ARGUMENT, f"Metric {name} takes a numeric or between filter."
        )
    if name not in metrics:
        raise _Abort(
            grpc.StatusCode.UNIMPLEMENTED,
            f"FakeGA4Server filters only on requested metrics; {name} is not requested",
        )
    if "numeric_filter" in leaf and (
        leaf.numeric_filter.operation == _NUMERIC_OP.OPERATION_UNSPECIFIED
    ):
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "A numeric filter needs an operation.")


def _dimension_values(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame.columns:
        return frame[name].astype(str)
    if name in _DERIVED_DATE_DIMENSIONS:
        derive = _DERIVED_DATE_DIMENSIONS[name]
        values = [derive(dt.datetime.strptime(d, "%Y%m%d").date()) for d in frame["date"]]
        return pd.Series(values, index=frame.index, dtype=str)
    return pd.Series(NOT_SET, index=frame.index, dtype=str)


def _dimension_mask(frame: pd.DataFrame, expr: FilterExpression) -> pd.Series:
    """Which fixture rows pass a (checked) dimension filter."""
    if "and_group" in expr:
        mask = pd.Series(True, index=frame.index)
        for item in expr.and_group.expressions:
            mask &= _dimension_mask(frame, item)
        return mask
    if "or_group" in expr:
        mask = pd.Series(False, index=frame.index)
        for item in expr.or_group.expressions:
            mask |= _dimension_mask(frame, item)
        return mask
    if "not_expression" in expr:
        return ~_dimension_mask(frame, expr.not_expression)
    leaf = expr.filter
    values = _dimension_values(frame, leaf.field_name)
    if "empty_filter" in leaf:
        return values.isin(["", NOT_SET])
    if "in_list_filter" in leaf:
        wanted = list(leaf.in_list_filter.values)
        if leaf.in_list_filter.case_sensitive:
            return values.isin(wanted)
        return values.str.lower().isin([w.lower() for w in wanted])
    string = leaf.string_filter
    flags = 0 if string.case_sensitive else re.IGNORECASE
    match = string.match_type
    if match in (_STRING_MATCH.FULL_REGEXP, _STRING_MATCH.PARTIAL_REGEXP):
        pattern = re.compile(string.value, flags)
        test = pattern.fullmatch if match == _STRING_MATCH.FULL_REGEXP else pattern.search
        return values.map(lambda v: test(v) is not None).astype(bool)
    needle = string.value if string.case_sensitive else string.value.lower()
    hay = values if string.case_sensitive else values.str.lower()
    if match == _STRING_MATCH.EXACT:
        return hay == needle
    if match == _STRING_MATCH.BEGINS_WITH:
        return hay.str.startswith(needle)
    if match == _STRING_MATCH.ENDS_WITH:
        return hay.str.endswith(needle)
    return hay.str.contains(needle, regex=False)


def _numeric(value: Any) -> float:
    return float(value.int64_value if "int64_value" in value else value.double_value)


def _metric_match(expr: FilterExpression, record: _Record, metrics: Sequence[str]) -> bool:
    """Whether one aggregated row passes a (checked) metric filter."""
    if "and_group" in expr:
        return all(_metric_match(e, record, metrics) for e in expr.and_group.expressions)
    if "or_group" in expr:
        return any(_metric_match(e, record, metrics) for e in expr.or_group.expressions)
    if "not_expression" in expr:
        return not _metric_match(expr.not_expression, record, metrics)
    leaf = expr.filter
    value = record[1][metrics.index(leaf.field_name)]
    if "between_filter" in leaf:
        between = leaf.between_filter
        return _numeric(between.from_value) <= value <= _numeric(between.to_value)
    operand = _numeric(leaf.numeric_filter.value)
    return {
        _NUMERIC_OP.EQUAL: value == operand,
        _NUMERIC_OP.LESS_THAN: value < operand,
        _NUMERIC_OP.LESS_THAN_OR_EQUAL: value <= operand,
        _NUMERIC_OP.GREATER_THAN: value > operand,
        _NUMERIC_OP.GREATER_THAN_OR_EQUAL: value >= operand,
    }[leaf.numeric_filter.operation]
