"""Dimension and metric filters: which ones the fake accepts, and how it applies them."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

import grpc
import pandas as pd
from google.analytics.data_v1beta.types import Filter, FilterExpression

from demo.fake_ga4.errors import _Abort
from demo.fake_ga4.schema import _DERIVED_DATE_DIMENSIONS, KNOWN_DIMENSIONS, METRIC_TYPES, NOT_SET

_Record = tuple[tuple[str, ...], tuple[float, ...]]

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
