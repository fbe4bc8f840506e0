"""Money in the reporting currency, with the daily rates of the fx_rates source."""

from __future__ import annotations

import pandas as pd

from ingest.files.dates import local_dates
from ingest.files.problems import FileFormatError, RowProblem
from ingest.files.reach import row_days
from kpi.language.models import SourceSpec


def convert_currency(
    frame: pd.DataFrame,
    spec: SourceSpec,
    rates: pd.DataFrame,
    reporting_currency: str,
    time_zone: str = "UTC",
    problems_out: list[RowProblem] | None = None,
) -> pd.DataFrame:
    """Convert the source's money column to the reporting currency with daily rates.

    ``rates`` has columns date, currency, rate (reporting currency per unit). A row whose
    currency has no rate for its (reporting-zone) date stops the load with a RowProblem
    naming the file, line, currency and date; given ``problems_out`` the problems are
    appended there instead (the row keeps a null rate) so the caller can quarantine them.
    """
    conv = spec.currency_conversion
    if conv is None or frame.empty:
        return frame
    out = frame.rename(columns={conv.amount: f"original_{conv.amount}"})
    out = out.rename(columns={conv.currency_column: "original_currency"})
    days = local_dates(frame, spec, time_zone)
    lookup = {(r.date, r.currency): float(r.rate) for r in rates.itertuples(index=False)}
    fx: list[float | None] = []
    problems = []
    for day, cur, file, line in zip(
        days, out["original_currency"], out["_source_file"], out["_source_line"], strict=True
    ):
        if cur == reporting_currency:
            fx.append(1.0)
        elif (day, cur) in lookup:
            fx.append(lookup[(day, cur)])
        else:
            fx.append(None)
            problems.append(
                RowProblem(
                    str(file),
                    int(line),
                    conv.currency_column,
                    str(cur),
                    f"an exchange rate {cur} -> {reporting_currency} for {day} in the "
                    "fx_rates source (none is loaded for that day)",
                )
            )
    if problems and problems_out is None:
        raise FileFormatError(problems)
    if problems_out is not None:
        problems_out.extend(problems)
    out["fx_rate"] = fx
    out[conv.amount] = (out[f"original_{conv.amount}"] * out["fx_rate"]).round(6)
    return out


def reject_fx(
    frame: pd.DataFrame,
    rejected: pd.DataFrame,
    problems: list[RowProblem],
    spec: SourceSpec,
    zone: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Move rows without an exchange rate from ``frame`` to ``rejected``."""
    reasons = {(p.file, p.line): f"parse: {p}" for p in problems}
    keys = list(zip(frame["_source_file"], frame["_source_line"], strict=True))
    mask = pd.Series([k in reasons for k in keys], index=frame.index)
    bad = frame[mask].copy()
    bad["_problem"] = [reasons[k] for k, m in zip(keys, mask, strict=True) if m]
    bad["_partition_day"] = row_days(bad, spec, zone)
    bad = bad.drop(columns=["fx_rate"], errors="ignore")
    moved = pd.concat([rejected, bad], ignore_index=True) if not rejected.empty else bad
    return frame[~mask].reset_index(drop=True), moved.reset_index(drop=True)
