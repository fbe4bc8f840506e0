"""Request validation: reject what the real API rejects, and what the fake does not do."""

from __future__ import annotations

import re
from collections.abc import Sequence

import grpc
from google.analytics.data_v1beta.types import FilterExpression, RunReportRequest

from demo.fake_ga4.errors import _Abort
from demo.fake_ga4.filters import _NUMERIC_OP, _STRING_MATCH
from demo.fake_ga4.properties import _PropertyState
from demo.fake_ga4.schema import (
    KNOWN_DIMENSIONS,
    MAX_DATE_RANGES,
    MAX_DIMENSIONS,
    MAX_METRICS,
    METRIC_TYPES,
)


class RequestValidation:
    """Checks a report request (part of :class:`FakeGA4Server`; called with the lock held)."""

    _properties: dict[str, _PropertyState]

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
