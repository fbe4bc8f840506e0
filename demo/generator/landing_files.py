"""The landing-zone CSV files of the file-based sources, one per source and local month."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from demo.generator.catalogue import DEMO_TIME_ZONE
from demo.generator.commerce import ad_spend, orders
from demo.generator.survey import survey_answers


def _local_month(timestamps: pd.Series) -> pd.Series:
    return timestamps.dt.tz_convert(DEMO_TIME_ZONE).dt.strftime("%Y-%m")


def write_landing_files(
    folder: Path, start: date, end: date, seed: int = 7, api_platforms: tuple[str, ...] = ()
) -> dict[str, list[Path]]:
    """Write the file-based sources as monthly CSVs under ``folder`` and return their paths.

    Layout: ``ad_spend/ad_spend_YYYY-MM.csv``, ``orders/orders_YYYY-MM.csv`` and
    ``survey/survey_YYYY-MM.csv``; months are local (property time zone) months and the first
    and last file hold only the days inside ``start``..``end``. Output bytes are deterministic.
    Existing files with the same names are overwritten; other files are left alone. The ad
    spend of ``api_platforms`` is left out: it is pulled from their APIs (demo.ad_platforms).
    """
    folder = Path(folder)
    spend = ad_spend(start, end, seed)
    spend = spend[~spend["platform"].isin(api_platforms)].reset_index(drop=True)
    order_rows = orders(start, end, seed)
    answers = survey_answers(start, end, seed)
    frames = {
        "ad_spend": (spend, pd.to_datetime(spend["date"]).dt.strftime("%Y-%m")),
        "orders": (order_rows, _local_month(order_rows["ordered_at"])),
        "survey": (answers, _local_month(answers["answered_at"])),
    }
    written: dict[str, list[Path]] = {}
    for name, (frame, month) in frames.items():
        target = folder / name
        target.mkdir(parents=True, exist_ok=True)
        written[name] = []
        for key in sorted(month.unique()):
            path = target / f"{name}_{key}.csv"
            frame[month == key].to_csv(path, index=False, lineterminator="\n", float_format="%.2f")
            written[name].append(path)
    return written
