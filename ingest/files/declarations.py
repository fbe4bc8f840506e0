"""The columns a file of a source must have, with the rules declared for each."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ingest.value_rules import DEFAULT_LIMIT, column_range
from kpi.language.models import SourceSpec


@dataclass(frozen=True)
class FileColumn:
    """A column as it appears in the files of a source, with its declared rules."""

    name: str
    type: str
    required: bool
    why_required: str  # for the error message: "part of the key", "the time column", ...
    allowed: tuple[str, ...] | None
    # Numbers only: the values that load (declared min/max, else the default range).
    low: float = -DEFAULT_LIMIT
    high: float = DEFAULT_LIMIT
    range_declared: bool = False


def file_columns(spec: SourceSpec) -> list[str]:
    """The columns a file of this source must have."""
    columns = list(spec.columns)
    conv = spec.currency_conversion
    if conv is not None:
        derived = {f"original_{conv.amount}", "original_currency", "fx_rate"}
        columns = [c for c in columns if c not in derived]
        if conv.currency_column not in columns:
            columns.append(conv.currency_column)
    return columns


def file_schema(spec: SourceSpec) -> list[FileColumn]:
    """Each file column with its type and rules.

    With currency conversion the file's currency column follows the declaration of
    ``original_currency`` (its ``allowed`` codes) and is required: money without a currency
    cannot be converted. The file's amount is a number in that currency.
    """
    conv = spec.currency_conversion
    out = []
    for name in file_columns(spec):
        is_currency = conv is not None and name == conv.currency_column
        declared = spec.columns.get("original_currency" if is_currency else name)
        if declared is None:
            declared = spec.columns.get(name)
        kind = declared.type if declared is not None else "string"
        if conv is not None and name == conv.amount:
            kind = "number"
        if declared is not None and declared.required is not None:
            required, why = declared.required, "declared required"
        elif name == spec.time.column:
            required, why = True, "the time column"
        elif name in spec.key:
            required, why = True, f"part of the key ({', '.join(spec.key)})"
        elif is_currency:
            required, why = True, f"the currency of `{conv.amount}`"
        else:
            required, why = False, ""
        allowed = declared.allowed if declared is not None else None
        low = declared.min if declared is not None else None
        high = declared.max if declared is not None else None
        rng = column_range(kind, low, high)
        out.append(FileColumn(name, kind, required, why, allowed, rng.low, rng.high, rng.declared))
    return out


def empty_frame(spec: SourceSpec) -> pd.DataFrame:
    return pd.DataFrame(columns=[*file_columns(spec), "_source_file", "_source_line"])
