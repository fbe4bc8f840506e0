"""The rows of a RunReport page as a typed DataFrame: time dimensions as dates, metrics cast
by their header's type, the ``(other)`` row flagged instead of crashing the date parser."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pandas as pd
from google.analytics.data_v1beta.types import MetricType, RunReportResponse

from ingest.ga4.errors import GA4Error
from ingest.ga4.spec import TIME_DIMENSIONS

OTHER_VALUE = "(other)"
_CAMEL_BOUNDARY_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_IDENTIFIER_RE = re.compile(r"[^0-9a-zA-Z]+")

_INTEGER_TYPES = frozenset({MetricType.TYPE_INTEGER})


def snake_case(name: str) -> str:
    """Turn a GA4 API name into a column name: ``sessionDefaultChannelGroup`` ->
    ``session_default_channel_group``; ``customEvent:plan`` -> ``custom_event_plan``."""
    spaced = _CAMEL_BOUNDARY_RE.sub("_", name)
    return _NON_IDENTIFIER_RE.sub("_", spaced).strip("_").lower()


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


def response_frame(response: RunReportResponse) -> pd.DataFrame:
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
