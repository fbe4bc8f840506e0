"""The fake GA4 Data API server: gRPC service, start / stop, test controls (replacing
rows, injected faults, quota refills) and the request handlers."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from concurrent import futures

import grpc
import pandas as pd
from google.analytics.data_v1beta.types import (
    BatchRunReportsRequest,
    BatchRunReportsResponse,
    RunReportRequest,
    RunReportResponse,
)

from demo.fake_ga4.errors import _DEFAULT_FAULT_DETAILS, _Abort
from demo.fake_ga4.properties import FakeProperty, _prepare_frame, _PropertyState
from demo.fake_ga4.quota import TokenQuota
from demo.fake_ga4.reports import ReportBuilder
from demo.fake_ga4.schema import _PROPERTY_RE, MAX_BATCH_REQUESTS, SERVICE_NAME
from demo.fake_ga4.validation import RequestValidation


class FakeGA4Server(RequestValidation, TokenQuota, ReportBuilder):
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
