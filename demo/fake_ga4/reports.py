"""Answering a report from fixture rows: date ranges, aggregation, the ``(other)`` row,
ordering, paging and the response with its metadata."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pandas as pd
from google.analytics.data_v1beta.types import (
    DimensionHeader,
    MetricHeader,
    MetricType,
    OrderBy,
    ResponseMetaData,
    RunReportRequest,
    RunReportResponse,
    SamplingMetadata,
)

from demo.fake_ga4.errors import _Abort
from demo.fake_ga4.filters import _dimension_mask, _dimension_values, _metric_match, _Record
from demo.fake_ga4.properties import _PropertyState
from demo.fake_ga4.schema import (
    _FLOAT,
    _INT,
    _ISO_DATE_RE,
    _RELATIVE_DAYS_RE,
    ADDITIVE_METRICS,
    DEFAULT_LIMIT,
    MAX_LIMIT,
    METRIC_TYPES,
    OTHER,
    RATIO_METRICS,
)


def _format_metric(value: float, kind: MetricType) -> str:
    # The real API sends every value as a string; integers carry no decimal point.
    if kind == _INT:
        return str(round(value))
    return f"{float(value):.15g}"


class ReportBuilder:
    """Builds a ``RunReportResponse`` (part of :class:`FakeGA4Server`, which supplies
    ``_property_quota``; called with the lock held)."""

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
