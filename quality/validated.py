"""Validations already done in this process: the same input is not handed to GX twice.

A load validates the rows it received (``quality.quarantine.split_rows``); its asset check
then validates the rows it wrote, read back from the warehouse (``quality.checks``). On a
day with nothing quarantined those are the same rows, and GX gives the same input the same
result. A validation of a few hundred rows is ~75 ms of GX's own bookkeeping (building its
metric graph, whatever the rows), so a daily run paid ~1 s for answers it already had.

"The same input" is decided on values, because the warehouse hands back another pandas
representation of the rows a loader built: ``int64`` for ``Int64``, ``Etc/UTC`` for
``UTC``, pandas' ``str`` for ``object``. Two frames are the same when they have the same
number of rows, the same column names (in any order: GX reads columns by name, and the
report keeps no column order), each column has the same kind (boolean, integer, float,
zoned timestamps, anything else; floats by their width) and, row by row in the same order
(failing rows are reported by position), the same values: of the same type (a numpy
scalar in an object column is not a Python one) and the same exact value (a float by its
``repr``, a timestamp by its ISO form with its UTC offset, a string by its text, anything
else by type and ``repr``; ``None``, ``NA``, ``NaT`` and ``NaN`` apart).

Where the representation can change GX's answer, the exact dtype is compared as well: a
column a ``column_type`` expectation reads (GX checks the dtype's name); a column of naive
timestamps (GX compares ``datetime64[ns]`` at once and other units value by value, and
their errors differ); a numeric column a ``between`` or ``date_in_partition`` compares
with something other than numbers (numpy and nullable dtypes would fail differently).
Zoned timestamps and strings reach GX as objects whatever their dtype, and are compared
value by value there. A frame with a categorical column is not remembered (GX reads its
unused categories too).
Everything else GX is given is compared as values: the suite, the partition, the time
zone and the GX expectations built from them (their bounds carry the column's zone; one
that reaches today ends now, and is never the same twice).

Only frames up to ``MAX_CELLS`` are remembered: beyond it, validating costs the data
rather than the bookkeeping, and the key (~1 µs a cell) would cost more. Each key is a
digest; the reports are kept (copied in and out, since callers add outcomes to theirs)
for the last ``KEEP`` distinct inputs.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from quality.suites import Between, ColumnType, DateInPartition, Suite

MAX_CELLS = 50_000
KEEP = 32


def _value(v: Any) -> Any:
    """``v`` as a tag and an exact, hashable form of its value."""
    if v is None:
        return ("none",)
    if v is pd.NA:
        return ("na",)
    if v is pd.NaT:
        return ("nat",)
    if isinstance(v, np.generic):
        # Only an object column holds numpy scalars (typed columns hand out Python ones), and
        # GX judges an object column's values by their type: np.int64 is no int to it.
        return (f"numpy.{type(v).__name__}", repr(v.item()))
    if isinstance(v, bool):
        return ("bool", bool(v))
    if isinstance(v, int):
        return ("int", v)
    if isinstance(v, float):
        return ("nan",) if v != v else ("float", repr(v))
    if isinstance(v, pd.Timestamp):
        return ("timestamp", v.isoformat())
    if isinstance(v, dt.datetime):
        return ("datetime", v.isoformat())
    if isinstance(v, dt.date):
        return ("date", v.isoformat())
    if isinstance(v, str):
        return ("str", v)
    if isinstance(v, Decimal):
        return ("decimal", str(v))
    if isinstance(v, dict):
        return ("dict", tuple(sorted((str(k), _value(x)) for k, x in v.items())))
    if isinstance(v, list | tuple | set | frozenset):
        items = tuple(_value(x) for x in v)
        return (
            type(v).__name__,
            tuple(sorted(items, key=repr)) if isinstance(v, set | frozenset) else items,
        )
    return (type(v).__qualname__, repr(v))


def _kind(dtype: Any) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        # A float32 value widened to 64 bits is another number to GX's comparisons.
        return "float" if dtype.itemsize == 8 else f"float{dtype.itemsize * 8}"
    if isinstance(dtype, pd.DatetimeTZDtype):
        return "zoned"  # handed to GX as objects (quality.validate._prepare_frame)
    return "other"


def _exact_columns(frame: pd.DataFrame, suite: Suite) -> set[str]:
    """The columns whose exact dtype can change GX's answer (see the module docstring)."""
    exact = {n for n, t in frame.dtypes.items() if pd.api.types.is_datetime64_dtype(t)}
    for e in suite.expectations:
        if isinstance(e, ColumnType):
            exact.add(e.column)
        elif isinstance(e, Between | DateInPartition) and e.column in frame.columns:
            # Numbers: numpy's dtypes are compared at once, pandas' nullable ones value by
            # value; with a bound that is not a number, each fails in its own words.
            numeric = _kind(frame[e.column].dtype) in ("bool", "int", "float")
            bounds = [e.min, e.max] if isinstance(e, Between) else [dt.date.today()]
            if numeric and not all(b is None or type(b) in (int, float) for b in bounds):
                exact.add(e.column)
    return exact


def _model(obj: Any) -> Any:
    """A pydantic model (a GX expectation, a suite) by its class and field values."""
    fields = obj.model_dump() if hasattr(obj, "model_dump") else obj.dict()
    return (type(obj).__qualname__, _value(fields))


def input_key(
    frame: pd.DataFrame,
    suite: Suite,
    partition: tuple[dt.date, dt.date] | None,
    time_zone: str | None,
    gx_expectations: Iterable[Any],
) -> bytes | None:
    """A digest of everything a validation's result depends on (see the module docstring);
    None for a frame not to remember: too large, a categorical column, columns not all
    named by strings."""
    if frame.size > MAX_CELLS or not all(isinstance(c, str) for c in frame.columns):
        return None
    if any(isinstance(t, pd.CategoricalDtype) for t in frame.dtypes):
        return None
    exact = _exact_columns(frame, suite)
    columns = []
    for name in sorted(frame.columns):
        column = frame[name]
        dtype = str(column.dtype) if name in exact else None
        values = tuple(_value(v) for v in column.to_numpy(dtype=object))
        columns.append((name, _kind(column.dtype), dtype, values))
    whole = (
        len(frame),
        tuple(columns),
        _model(suite),
        _value(partition),
        time_zone,
        tuple(_model(e) for e in gx_expectations),
    )
    return hashlib.blake2b(repr(whole).encode(), digest_size=32).digest()


class ValidatedFrames:
    """The reports of the last ``keep`` validations, by :func:`input_key`."""

    def __init__(self, keep: int = KEEP) -> None:
        self._keep = keep
        self._reports: OrderedDict[bytes, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, key: bytes | None) -> Any | None:
        if key is None:
            return None
        with self._lock:
            report = self._reports.get(key)
            if report is None:
                return None
            self._reports.move_to_end(key)
            self.hits += 1
            return copy.deepcopy(report)

    def put(self, key: bytes | None, report: Any) -> None:
        if key is None:
            return
        with self._lock:
            self._reports[key] = copy.deepcopy(report)
            self._reports.move_to_end(key)
            while len(self._reports) > self._keep:
                self._reports.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._reports.clear()
            self.hits = 0
