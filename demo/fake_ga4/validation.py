"""Checks on a RunReport request, made before any data is read, as the real API does."""

from __future__ import annotations

import grpc
from google.analytics.data_v1beta.types import RunReportRequest

from demo.fake_ga4.errors import _Abort
from demo.fake_ga4.filters import _check_filter
from demo.fake_ga4.properties import _PropertyState
from demo.fake_ga4.schema import (
    KNOWN_DIMENSIONS,
    MAX_DATE_RANGES,
    MAX_DIMENSIONS,
    MAX_METRICS,
    METRIC_TYPES,
)


def validate_request(state: _PropertyState, request: RunReportRequest) -> None:
    """Reject what the real API rejects, and what this fake does not implement."""
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
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "A request needs a dimension or a metric.")
    for names in (dims, metrics):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Duplicate names in request: {', '.join(duplicates)}.",
            )
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
