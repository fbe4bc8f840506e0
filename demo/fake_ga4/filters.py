"""Evaluating checked filters: dimension filters on fixture rows, metric filters on
aggregated rows."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

import pandas as pd
from google.analytics.data_v1beta.types import Filter, FilterExpression

from demo.fake_ga4.schema import _DERIVED_DATE_DIMENSIONS, NOT_SET

_Record = tuple[tuple[str, ...], tuple[float, ...]]


_STRING_MATCH = Filter.StringFilter.MatchType
_NUMERIC_OP = Filter.NumericFilter.Operation


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
