"""Loading marketing files (CSV or Parquet) by their declared schema.

Every value is cast by the type declared in ``kpi_definitions/sources.yaml``. A value
that does not fit stops the load with an error that names the file, line, field and
value, and says what was expected; nothing is dropped silently. Each row keeps the file
and line it came from.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from kpi.models import SourceSpec

SUPPORTED_SUFFIXES = (".csv", ".parquet")
MAX_ERRORS_SHOWN = 20


class FileFormatError(ValueError):
    """A file that does not match its declared schema; lists every bad value found."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = "\n".join(f"  - {p}" for p in problems[:MAX_ERRORS_SHOWN])
        more = len(problems) - MAX_ERRORS_SHOWN
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"{len(problems)} problem(s) in landing files:\n{shown}{tail}")


def landing_files(root: Path, spec: SourceSpec) -> list[Path]:
    """The source's files under the landing root, in a stable order."""
    folder = Path(root) / (spec.landing or "")
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in SUPPORTED_SUFFIXES)


def file_columns(spec: SourceSpec) -> list[str]:
    """The columns a file of this source must have."""
    columns = list(spec.columns)
    conv = spec.currency_conversion
    if conv is not None:
        derived = {f"original_{conv.amount}", "original_currency", "fx_rate"}
        columns = [c for c in columns if c not in derived] + [conv.currency_column]
    return columns


def read_source_files(paths: Iterable[Path], spec: SourceSpec) -> pd.DataFrame:
    """Read and type every file; raise FileFormatError listing every bad value."""
    frames, problems = [], []
    for path in paths:
        frame, file_problems = _read_one(Path(path), spec)
        problems.extend(file_problems)
        if frame is not None:
            frames.append(frame)
    if problems:
        raise FileFormatError(problems)
    if not frames:
        return _empty(spec)
    return pd.concat(frames, ignore_index=True)


def local_dates(frame: pd.DataFrame, spec: SourceSpec, time_zone: str) -> pd.Series:
    """The reporting-zone calendar date of each row."""
    values = frame[spec.time.column]
    if spec.time.type == "date":
        return values
    return values.dt.tz_convert(ZoneInfo(time_zone)).dt.date


def rows_between(
    frame: pd.DataFrame, spec: SourceSpec, time_zone: str, start: dt.date, end: dt.date
) -> pd.DataFrame:
    """Rows whose local date falls in ``start..end`` (inclusive)."""
    if frame.empty:
        return frame
    days = local_dates(frame, spec, time_zone)
    return frame[(days >= start) & (days <= end)].reset_index(drop=True)


def convert_currency(
    frame: pd.DataFrame, spec: SourceSpec, rates: pd.DataFrame, reporting_currency: str
) -> pd.DataFrame:
    """Convert the source's money column to the reporting currency with daily rates.

    ``rates`` has columns date, currency, rate (reporting currency per unit). A row whose
    currency has no rate for its date stops the load, naming the file and line.
    """
    conv = spec.currency_conversion
    if conv is None or frame.empty:
        return frame
    out = frame.rename(columns={conv.amount: f"original_{conv.amount}"})
    out = out.rename(columns={conv.currency_column: "original_currency"})
    day = out[spec.time.column]
    lookup = {(r.date, r.currency): float(r.rate) for r in rates.itertuples(index=False)}
    fx, problems = [], []
    for d, cur, file, line in zip(
        day, out["original_currency"], out["_source_file"], out["_source_line"], strict=True
    ):
        if cur == reporting_currency:
            fx.append(1.0)
        elif (d, cur) in lookup:
            fx.append(lookup[(d, cur)])
        else:
            fx.append(None)
            problems.append(
                f"{file}:{line}: field `{conv.currency_column}` value {cur!r}: no exchange rate "
                f"to {reporting_currency} for {d}; expected a row in the fx_rates source"
            )
    if problems:
        raise FileFormatError(problems)
    out["fx_rate"] = fx
    out[conv.amount] = (out[f"original_{conv.amount}"] * out["fx_rate"]).round(6)
    return out


# ---------------------------------------------------------------------------------------------


def _read_one(path: Path, spec: SourceSpec) -> tuple[pd.DataFrame | None, list[str]]:
    try:
        if path.suffix.lower() == ".parquet":
            raw = pd.read_parquet(path).astype("string")
        else:
            raw = pd.read_csv(
                path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig"
            )
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        return None, [f"{path}: cannot read the file: {exc}"]

    expected = file_columns(spec)
    missing = [c for c in expected if c not in raw.columns]
    if missing:
        return None, [
            f"{path}:1: missing column(s) {', '.join(missing)}; expected columns "
            f"{', '.join(expected)} (found {', '.join(map(str, raw.columns))})"
        ]

    out = pd.DataFrame(index=raw.index)
    problems: list[str] = []
    conv = spec.currency_conversion
    for column in expected:
        declared = spec.columns.get(column)
        kind = declared.type if declared is not None else "string"
        if conv is not None and column == conv.amount:
            kind = "number"
        values, bad = _cast(raw[column], kind)
        out[column] = values
        for index in bad:
            problems.append(
                f"{path}:{index + 2}: field `{column}` value {raw[column][index]!r}: "
                f"expected {_EXPECTED[kind]}"
            )
    out["_source_file"] = str(path)
    out["_source_line"] = raw.index.to_numpy() + 2  # line 1 is the header
    return out, problems


_EXPECTED = {
    "integer": "an integer",
    "number": "a number (with a dot as decimal separator)",
    "string": "text",
    "date": "a date as YYYY-MM-DD",
    "timestamp": "a timestamp with a UTC offset, e.g. 2026-01-31T23:15:00+00:00",
    "boolean": "true or false",
}


def _cast(raw: pd.Series, kind: str) -> tuple[pd.Series, list[int]]:
    """Cast text to ``kind``; return the values and the indexes that did not fit."""
    present = raw.notna()
    if kind == "string":
        return raw.astype(object).where(present, None), []
    if kind in ("integer", "number"):
        values = pd.to_numeric(raw, errors="coerce")
        bad = present & values.isna()
        if kind == "integer":
            fractional = present & values.notna() & (values % 1 != 0)
            bad |= fractional
            values = values.where(~bad).astype("Int64")
        return values, list(raw.index[bad])
    if kind == "date":
        values = pd.to_datetime(raw, format="%Y-%m-%d", errors="coerce")
        bad = present & values.isna()
        return values.dt.date.astype(object).where(values.notna(), None), list(raw.index[bad])
    if kind == "timestamp":
        values = pd.to_datetime(raw, format="ISO8601", utc=True, errors="coerce")
        naive = raw.str.contains(r"(?:[+-]\d\d:?\d\d|Z)$", regex=True, na=True)
        bad = present & (values.isna() | ~naive)
        return values, list(raw.index[bad])
    if kind == "boolean":
        lowered = raw.str.strip().str.lower()
        mapping = {"true": True, "false": False, "1": True, "0": False}
        values = lowered.map(mapping)
        bad = present & values.isna()
        return values.astype("boolean"), list(raw.index[bad])
    raise ValueError(f"unknown column type {kind}")


def _empty(spec: SourceSpec) -> pd.DataFrame:
    return pd.DataFrame(columns=[*file_columns(spec), "_source_file", "_source_line"])
