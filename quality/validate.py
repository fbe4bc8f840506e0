"""Run a :class:`~quality.suites.Suite` against a pandas frame with Great Expectations 1.x.

Every expectation is evaluated by GX (the process's ephemeral context, pandas data source,
dataframe asset and whole-dataframe batch definition: quality.gx_session; an
``ExpectationSuite``); this module only translates the YAML into GX expectations and GX's
results into :class:`ValidationReport`.

Row positions: the frame is validated with a fresh unnamed ``RangeIndex``. For such an index
GX's ``COMPLETE`` result format reports ``unexpected_index_list`` as index labels, which are
then exactly the positional row numbers of the caller's frame (``unexpected_index_column_names``
is only needed for named indexes or primary-key columns, which we deliberately avoid).

What GX is not given, and why (checked against GX 1.24.1 with pandas 3.1):

* GX resolves column names case-insensitively (``casefold``) and takes the first match, so
  with a frame holding ``Sessions`` an expectation on ``sessions`` silently checks
  ``Sessions``. We therefore check exact column presence ourselves and report a missing
  column as a failed outcome instead of handing the expectation to GX, and we refuse frames
  in which a referenced column collides by case with another column.
* pandas 3's default ``str`` dtype (``StringDtype(na_value=nan)``), tz-aware datetimes and
  ``ArrowDtype`` columns cannot be named in ``ExpectColumnValuesToBeInTypeList``'s type list,
  so those columns are handed to GX as ``object`` (GX then checks each value's type).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from quality.gx_configurations import kept_configurations
from quality.gx_session import (
    VALIDATION_LOCK,
    forget_frames,
    frame_batches,
    great_expectations,
)
from quality.suites import (
    Between,
    ColumnsPresent,
    ColumnType,
    DateInPartition,
    Freshness,
    InSet,
    NotNull,
    RowCount,
    Suite,
    Unique,
    Volume,
)
from quality.validated import ValidatedFrames, input_key

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation as GxExpectation

__all__ = ["ExpectationOutcome", "ValidationReport", "validate_frame"]

SAMPLE_SIZE = 5
# The reports of the last validations of this process, by their whole input.
VALIDATED = ValidatedFrames()

_INTS = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
_FLOATS = ["float16", "float32", "float64", "Float32Dtype", "Float64Dtype", "float"]
_NULLABLE_INTS = [f"{p}Int{b}Dtype" for p in ("", "U") for b in (8, 16, 32, 64)]
# Names GX's pandas type check understands. Extension dtypes only match by their class name
# ("Int64Dtype"); the short aliases ("Int64", "boolean", "string") make GX raise. "int",
# "float", "str", "bool" and "date" match values of object columns one by one ("date" also
# accepts datetimes, a datetime.date subclass).
_GX_TYPE_LISTS: dict[str, list[str]] = {
    "integer": [*_INTS, *_NULLABLE_INTS, "int"],
    "number": [*_INTS, *_NULLABLE_INTS, "int", *_FLOATS],
    "string": ["str", "StringDtype"],
    "date": ["datetime64[s]", "datetime64[ms]", "datetime64[us]", "datetime64[ns]", "date"],
    "boolean": ["bool", "BooleanDtype"],
}


@dataclass
class ExpectationOutcome:
    """The result of one expectation.

    For row-level checks ``unexpected_count``/``unexpected_percent`` are GX's (the percent is
    of non-null values for ``between``/``in_set``/``unique``, of all rows for ``not_null``).
    For table-level checks ``unexpected_count`` counts offending items (missing columns, a
    mismatched dtype) and ``unexpected_percent`` is ``None``.
    """

    name: str
    gx_type: str
    success: bool
    severity: str
    unexpected_count: int
    unexpected_percent: float | None
    sample_values: list = field(default_factory=list)
    failing_rows: list[int] = field(default_factory=list)
    row_level: bool = True
    # Set when the expectation could not be evaluated (missing column, GX raised).
    error: str | None = None
    # What a passing outcome did not judge, and why (e.g. days without enough history).
    note: str | None = None


@dataclass
class ValidationReport:
    """Every outcome of one suite run on one frame."""

    suite: str
    row_count: int
    outcomes: list[ExpectationOutcome]
    success: bool

    @property
    def failed(self) -> list[ExpectationOutcome]:
        """Failed outcomes of either severity, in suite order."""
        return [o for o in self.outcomes if not o.success]

    @property
    def success_percent(self) -> float:
        """Share of expectations (any severity) that passed, 0-100."""
        if not self.outcomes:
            return 100.0
        return 100.0 * sum(o.success for o in self.outcomes) / len(self.outcomes)

    def failing_rows(self) -> dict[int, list[str]]:
        """Row position -> names of the row-level expectations that row failed, sorted by row."""
        rows: dict[int, list[str]] = {}
        for outcome in self.outcomes:
            for row in outcome.failing_rows:
                rows.setdefault(row, []).append(outcome.name)
        return dict(sorted(rows.items()))

    def markdown(self) -> str:
        """A short status line plus a table of failed expectations."""
        status = "passed" if self.success else "FAILED"
        head = (
            f"**{self.suite}** {status}: {len(self.outcomes) - len(self.failed)}/"
            f"{len(self.outcomes)} expectations passed on {self.row_count} rows"
        )
        notes = [f"- {_md_escape(o.name)}: {_md_escape(o.note)}" for o in self.outcomes if o.note]
        if not self.failed:
            return "\n".join([head, "", *notes]) + "\n" if notes else head + "\n"
        lines = [
            head,
            "",
            "| expectation | severity | unexpected count | sample values |",
            "| --- | --- | ---: | --- |",
        ]
        for o in self.failed:
            samples = ", ".join(_md_value(v) for v in o.sample_values)
            if o.error:
                samples = f"{samples} ({o.error})" if samples else o.error
            lines.append(
                f"| {_md_escape(o.name)} | {o.severity} | {o.unexpected_count} "
                f"| {_md_escape(samples)} |"
            )
        if notes:
            lines += ["", *notes]
        return "\n".join(lines) + "\n"

    def to_metadata(self) -> dict[str, Any]:
        """A plain, JSON-serialisable summary (e.g. for Dagster output metadata)."""
        failed = self.failed
        return {
            "suite": self.suite,
            "success": self.success,
            "row_count": self.row_count,
            "expectations": len(self.outcomes),
            "failed_expectations": len(failed),
            "failed_errors": sum(o.severity == "error" for o in failed),
            "failed_warnings": sum(o.severity == "warn" for o in failed),
            "success_percent": round(self.success_percent, 2),
            "failing_row_count": len(self.failing_rows()),
            "unexpected_counts": {o.name: o.unexpected_count for o in failed},
        }


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_value(value: Any) -> str:
    return "null" if value is None else (f"`{value}`" if isinstance(value, str) else str(value))


# --------------------------------------------------------------------------------------
# Translating the suite


def _prepare_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A positional, GX-friendly view of ``df`` (the caller's frame is not modified)."""
    frame = df.reset_index(drop=True)
    to_object = {
        col: object
        for col, dtype in frame.dtypes.items()
        if isinstance(dtype, pd.StringDtype | pd.DatetimeTZDtype | pd.ArrowDtype)
    }
    return frame.astype(to_object) if to_object else frame


def _adapt_bound(bound: Any, series: pd.Series) -> Any:
    """Make a YAML date bound comparable with the column's values (GX compares per value)."""
    if bound is None or not isinstance(bound, date):
        return bound
    dtype = series.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype):
        ts = pd.Timestamp(bound)
        tz = getattr(dtype, "tz", None)
        if tz is not None:
            ts = ts.tz_localize(tz) if ts.tzinfo is None else ts.tz_convert(tz)
        return ts
    # No ISO-string conversion for string columns: GX's pydantic field turns a "2024-01-01"
    # bound back into a date, and then refuses to compare it with strings. Such columns get
    # GX's error as the outcome's ``error``.
    first = series.first_valid_index()
    sample = None if first is None else series.loc[first]
    if isinstance(sample, datetime) and not isinstance(bound, datetime):
        # Python refuses to compare datetime with date.
        ts = pd.Timestamp(bound)
        return ts.tz_localize(sample.tzinfo) if sample.tzinfo is not None else ts
    return bound


def _partition_bounds(
    series: pd.Series, partition: tuple[date, date] | None, time_zone: str | None
) -> dict[str, Any]:
    """GX ``between`` arguments for "inside the partition days and not in the future".

    Dates compare with the first and last day. Timestamps compare with the instants those
    days start and end in ``time_zone`` (the partitions are days there; UTC without it), so
    an order at 00:30 local time on the first day is inside even though it is still the
    previous day in UTC; and with now, not midnight, since today's rows so far are not in
    the future.
    """
    zone = ZoneInfo(time_zone) if time_zone else None
    today = dt.datetime.now(zone).date() if zone else date.today()
    low, high = partition if partition is not None else (None, today)
    high = min(high, today)
    dtype = series.dtype
    first = series.first_valid_index()
    sample = None if first is None else series.loc[first]
    if isinstance(dtype, pd.DatetimeTZDtype) or (
        isinstance(sample, datetime) and sample.tzinfo is not None
    ):
        column_zone = dtype.tz if isinstance(dtype, pd.DatetimeTZDtype) else sample.tzinfo
        day_zone = zone or dt.UTC

        def start_of(day: date) -> pd.Timestamp:
            return pd.Timestamp(day).tz_localize(day_zone).tz_convert(column_zone)

        end = start_of(high + dt.timedelta(days=1))
        now = pd.Timestamp.now(tz=column_zone)
        return {
            "min_value": None if low is None else start_of(low),
            "max_value": min(end, now),
            # The end instant is the next day's first: it is outside, now is not.
            "strict_max": end <= now,
        }
    if pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(sample, datetime):
        return {
            "min_value": None if low is None else pd.Timestamp(low),
            "max_value": pd.Timestamp(high + dt.timedelta(days=1)),
            "strict_max": True,
        }
    return {"min_value": low, "max_value": high}


def _to_gx(
    exp: Any,
    df: pd.DataFrame,
    index: int,
    partition: tuple[date, date] | None = None,
    time_zone: str | None = None,
) -> GxExpectation:
    """The GX expectation for ``exp``; ``df`` is the caller's frame (original dtypes)."""
    gx = great_expectations()
    from great_expectations.expectations.metadata_types import FailureSeverity

    severity = FailureSeverity.CRITICAL if exp.severity == "error" else FailureSeverity.WARNING
    common: dict[str, Any] = {"meta": {"quality_index": index}, "severity": severity}
    if isinstance(exp, ColumnsPresent):
        return gx.expectations.ExpectTableColumnsToMatchSet(
            column_set=list(exp.columns), exact_match=False, **common
        )
    if isinstance(exp, NotNull):
        return gx.expectations.ExpectColumnValuesToNotBeNull(column=exp.column, **common)
    if isinstance(exp, Between):
        return gx.expectations.ExpectColumnValuesToBeBetween(
            column=exp.column,
            min_value=_adapt_bound(exp.min, df[exp.column]),
            max_value=_adapt_bound(exp.max, df[exp.column]),
            **common,
        )
    if isinstance(exp, InSet):
        return gx.expectations.ExpectColumnValuesToBeInSet(
            column=exp.column, value_set=list(exp.values), **common
        )
    if isinstance(exp, Unique):
        if len(exp.columns) == 1:
            return gx.expectations.ExpectColumnValuesToBeUnique(column=exp.columns[0], **common)
        # GX's compound expectation rejects a single column, hence the split.
        return gx.expectations.ExpectCompoundColumnsToBeUnique(
            column_list=list(exp.columns), **common
        )
    if isinstance(exp, DateInPartition):
        return gx.expectations.ExpectColumnValuesToBeBetween(
            column=exp.column, **_partition_bounds(df[exp.column], partition, time_zone), **common
        )
    if isinstance(exp, RowCount):
        return gx.expectations.ExpectTableRowCountToBeBetween(min_value=exp.min, **common)
    if isinstance(exp, ColumnType):
        return gx.expectations.ExpectColumnValuesToBeInTypeList(
            column=exp.column, type_list=_GX_TYPE_LISTS[exp.dtype], **common
        )
    raise TypeError(f"unsupported expectation {exp!r}")


_GX_TYPE_NAMES = {
    ColumnsPresent: "expect_table_columns_to_match_set",
    NotNull: "expect_column_values_to_not_be_null",
    Between: "expect_column_values_to_be_between",
    InSet: "expect_column_values_to_be_in_set",
    ColumnType: "expect_column_values_to_be_in_type_list",
    RowCount: "expect_table_row_count_to_be_between",
    DateInPartition: "expect_column_values_to_be_between",
}


def _gx_type_name(exp: Any) -> str:
    if isinstance(exp, Unique):
        if len(exp.columns) == 1:
            return "expect_column_values_to_be_unique"
        return "expect_compound_columns_to_be_unique"
    return _GX_TYPE_NAMES[type(exp)]


# --------------------------------------------------------------------------------------
# Translating results


def _plain(value: Any) -> Any:
    """A JSON-friendly version of a value GX reported."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _samples(values: list[Any]) -> list[Any]:
    """The first few distinct values, in order of appearance."""
    out: list[Any] = []
    seen: set[str] = set()
    for value in values:
        plain = _plain(value)
        key = repr(plain)
        if key not in seen:
            seen.add(key)
            out.append(plain)
            if len(out) == SAMPLE_SIZE:
                break
    return out


def _exception_message(result: Any) -> str | None:
    # exception_info is either one flat dict, or (when a metric failed) a dict keyed by
    # metric id whose values are flat dicts.
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


def _outcome(name: str, exp: Any, df: pd.DataFrame, result: Any) -> ExpectationOutcome:
    outcome = ExpectationOutcome(
        name=name,
        gx_type=_gx_type_name(exp),
        success=bool(result.success),
        severity=exp.severity,
        unexpected_count=0,
        unexpected_percent=None,
        row_level=exp.row_level,
    )
    error = _exception_message(result)
    if error is not None:
        outcome.success = False
        outcome.error = f"GX could not evaluate it: {error.splitlines()[0][:200]}"
        return outcome
    res = result.result or {}
    if isinstance(exp, RowCount):
        outcome.unexpected_count = 0 if outcome.success else 1
        outcome.sample_values = _samples([res.get("observed_value")])
        return outcome
    if isinstance(exp, ColumnsPresent):
        missing = res.get("details", {}).get("mismatched", {}).get("missing", [])
        outcome.unexpected_count = len(missing)
        outcome.sample_values = _samples(missing)
        return outcome
    if "unexpected_count" not in res:
        # ColumnType on a typed column: GX checks the dtype once, not the values.
        if not outcome.success:
            outcome.unexpected_count = 1
            outcome.sample_values = [str(df[exp.column].dtype)]
        return outcome
    outcome.unexpected_count = int(res["unexpected_count"])
    percent = res.get("unexpected_percent")
    outcome.unexpected_percent = None if percent is None else float(percent)
    outcome.sample_values = _samples(res.get("unexpected_list") or [])
    if exp.row_level:
        outcome.failing_rows = [int(i) for i in res.get("unexpected_index_list") or []]
    return outcome


def _missing_columns_outcome(
    name: str, exp: Any, missing: list[str], near: dict[str, str]
) -> ExpectationOutcome:
    hints = [f"{m!r} (frame has {near[m]!r})" if m in near else repr(m) for m in missing]
    return ExpectationOutcome(
        name=name,
        gx_type=_gx_type_name(exp),
        success=False,
        severity=exp.severity,
        unexpected_count=0,
        unexpected_percent=None,
        sample_values=[],
        row_level=exp.row_level,
        error=f"column(s) not in frame: {', '.join(hints)}",
    )


# --------------------------------------------------------------------------------------
# Entry point


def validate_frame(
    df: pd.DataFrame,
    suite: Suite,
    partition: tuple[date, date] | None = None,
    time_zone: str | None = None,
) -> ValidationReport:
    """Validate ``df`` against ``suite`` with Great Expectations and summarise the result.

    ``failing_rows`` are positions in ``df`` (``df.iloc``), whatever its index. The frame is
    not modified. ``partition`` (first, last day) bounds ``date_in_partition``, whose
    timestamps are judged by their day in ``time_zone`` (UTC without it). Raises
    ``ValueError`` if ``df`` has duplicate column names, or if a column
    the suite uses collides by case with another frame column (GX could check the wrong one).
    """
    gx = great_expectations()

    if df.columns.has_duplicates:
        dupes = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
        raise ValueError(f"frame has duplicate column names: {dupes}")
    columns = [c for c in df.columns if isinstance(c, str)]
    by_fold: dict[str, list[str]] = {}
    for c in columns:
        by_fold.setdefault(c.casefold(), []).append(c)
    present = set(columns)
    used = {c for exp in suite.expectations for c in exp.columns_used}
    used |= {c for e in suite.expectations if isinstance(e, ColumnsPresent) for c in e.columns}
    clashes = sorted(
        {tuple(by_fold[c.casefold()]) for c in used if len(by_fold.get(c.casefold(), [])) > 1}
    )
    if clashes:
        raise ValueError(
            f"suite {suite.name!r}: frame columns differ only by case {clashes}; GX matches "
            "column names case-insensitively and could validate the wrong one"
        )
    near = {c: by_fold[c.casefold()][0] for c in used - present if c.casefold() in by_fold}

    frame = _prepare_frame(df)
    names = suite.names()
    outcomes: list[ExpectationOutcome | None] = [None] * len(suite.expectations)
    gx_expectations = []
    for i, exp in enumerate(suite.expectations):
        if isinstance(exp, Volume | Freshness):
            continue  # needs the warehouse history: evaluated by quality.checks
        missing = [c for c in exp.columns_used if c not in present]
        if missing:
            outcomes[i] = _missing_columns_outcome(names[i], exp, missing, near)
        else:
            gx_expectations.append(_to_gx(exp, df, i, partition, time_zone))

    # The same input was validated before in this process (a load's rows, then the same rows
    # read back by its check): GX's result is the same (quality.validated).
    key = input_key(df, suite, partition, time_zone, gx_expectations)
    if (known := VALIDATED.get(key)) is not None:
        return known
    if gx_expectations:
        with VALIDATION_LOCK:
            # Each call's frame is its batch's parameter: the data source, asset and batch
            # definition hold no data, so one set serves every call of the process.
            batch = frame_batches().get_batch(batch_parameters={"dataframe": frame})
            # The suite is validated directly and never added to the context, so there is
            # nothing to name uniquely or clean up for it.
            gx_suite = gx.ExpectationSuite(
                name=f"quality-{suite.name}", expectations=gx_expectations
            )
            try:
                with kept_configurations():  # GX rebuilt them per setting read
                    result = batch.validate(gx_suite, result_format={"result_format": "COMPLETE"})
            finally:
                forget_frames(batch)
        for gx_result in result.results:
            i = int(gx_result.expectation_config.meta["quality_index"])
            outcomes[i] = _outcome(names[i], suite.expectations[i], df, gx_result)

    done = [o for o in outcomes if o is not None]
    expected = sum(not isinstance(e, Volume | Freshness) for e in suite.expectations)
    if len(done) != expected:
        raise RuntimeError(f"GX returned {len(done)} results for {len(outcomes)} expectations")
    report = ValidationReport(
        suite=suite.name,
        row_count=len(df),
        outcomes=done,
        success=all(o.success for o in done if o.severity == "error"),
    )
    VALIDATED.put(key, report)
    return report
