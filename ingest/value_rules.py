"""Rules every value of a landing file must meet before it can be stored or summed.

Each rule turns a value that would crash the load, be refused by one warehouse but not the
other, or silently corrupt a KPI into a row problem (the row is quarantined with the reason):

- **NUL characters** (``\\x00``): PostgreSQL refuses them in text, DuckDB stores them. A
  value holding one is refused on both, never stripped: a changed value is a silent change.
- **Long values**: a value of more than :data:`MAX_FIELD_CHARS` characters is no marketing
  field (a broken export, a file that is not CSV). The csv module's own limit raised an
  error that stopped the whole file without naming it; the limit is raised here (a field
  can never exceed its file, which is in memory already) and the value checked instead.
- **Non-finite numbers** (``1e309`` overflows to infinity; ``inf``/``nan`` are not numbers).
- **Numbers out of range**: outside the column's ``min``/``max`` in ``sources.yaml``, by
  default +-:data:`DEFAULT_LIMIT`. ``1e308`` is finite, but two of them make a day's sum
  infinite; no row of money, hours or counts comes near 1e12, and 1e12 is exact as a
  float. Integer bounds are also clipped to +-2**53, the largest whole numbers a float
  (how numbers are parsed) holds exactly; beyond that a value would change on load.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

import numpy as np
import pandas as pd

MAX_FIELD_CHARS = 131_072  # the csv module's default field limit, now checked per value
DEFAULT_LIMIT = 1e12
_EXACT_INTEGER = float(2**53)


def allow_long_csv_fields() -> None:
    """Let the csv reader return long fields so that they are checked (and named) per value.

    The limit is process-wide; it only grows, and 2**31 - 1 fits a C long everywhere.
    """
    if csv.field_size_limit() < 2**31 - 1:
        csv.field_size_limit(2**31 - 1)


@dataclass(frozen=True)
class Range:
    """The values a number or integer column accepts, and how the bounds were set."""

    low: float
    high: float
    declared: bool  # min or max given in sources.yaml

    def describe(self, column: str, kind: str) -> str:
        what = "a whole number" if kind == "integer" else "a number"
        if self.declared:
            where = f"the range of `{column}` declared in sources.yaml"
        else:
            where = f"the default range of `{column}`"
        return f"{what} from {self.low:g} to {self.high:g} ({where})"


def column_range(kind: str, low: float | None, high: float | None) -> Range:
    """The range of a column of ``kind`` declared with ``low``/``high`` (None: default)."""
    declared = low is not None or high is not None
    lo = -DEFAULT_LIMIT if low is None else float(low)
    hi = DEFAULT_LIMIT if high is None else float(high)
    if kind == "integer":
        lo, hi = max(lo, -_EXACT_INTEGER), min(hi, _EXACT_INTEGER)
    return Range(lo, hi, declared)


FINITE = "a finite number like 1234.56 (not infinite or NaN)"
_NOT_FINITE_WORDS = {"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity", "nan"}


def spelled_not_finite(raw: pd.Series) -> np.ndarray:
    """Values written as infinity or NaN (which the number patterns do not accept)."""
    return raw.str.strip().str.lower().isin(_NOT_FINITE_WORDS).to_numpy(dtype=bool)


def number_problems(values: pd.Series, rng: Range) -> tuple[np.ndarray, np.ndarray]:
    """(mask of parsed values that are not finite, mask of finite ones outside ``rng``)."""
    present = values.notna().to_numpy(dtype=bool)
    floats = values.to_numpy(dtype=float, na_value=np.nan)
    finite = np.isfinite(floats)
    infinite = present & ~finite
    with np.errstate(invalid="ignore"):
        outside = present & finite & ((floats < rng.low) | (floats > rng.high))
    return infinite, outside


NO_NUL = "text without NUL characters (\\x00), which PostgreSQL cannot store"


def text_problems(raw: pd.Series) -> list[tuple[np.ndarray, str | pd.Series]]:
    """(mask, expected) pairs for values no column type may hold: NUL characters and values
    longer than MAX_FIELD_CHARS (whose expected text gives each value's length)."""
    present = raw.notna()
    text = raw.where(present, "")
    nul = (present & text.str.contains("\x00", regex=False)).to_numpy(dtype=bool)
    lengths = text.str.len()
    long = (present & (lengths > MAX_FIELD_CHARS)).to_numpy(dtype=bool) & ~nul
    expected_long = lengths.map(
        lambda n: f"a value of at most {MAX_FIELD_CHARS} characters (this one has {n})"
    )
    return [(nul, NO_NUL), (long, expected_long)]
