"""Write the demo's landing files: ad spend, orders, survey answers and exchange rates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from demo.ad_platforms import api_platforms
from demo.extra_sources import write_extra_landing
from demo.generator import eur_usd_rate, write_landing_files


def fx_rates(start: dt.date, end: dt.date) -> pd.DataFrame:
    """Daily exchange rates, EUR per USD: the generator bills USD campaigns at its
    USD-per-EUR rate."""
    days = pd.date_range(start, end, freq="D").date
    return pd.DataFrame(
        {"date": days, "currency": "USD", "rate": [round(1 / eur_usd_rate(d), 6) for d in days]}
    )


def write_demo_landing(folder: Path, start: dt.date, end: dt.date) -> dict[str, list[Path]]:
    """Write every demo landing file for ``start..end`` under ``folder``; same bytes each time."""
    written = write_landing_files(folder, start, end, api_platforms=api_platforms())
    rates = fx_rates(start, end)
    target = Path(folder) / "fx_rates"
    target.mkdir(parents=True, exist_ok=True)
    path = target / "fx_rates.csv"
    rates.to_csv(path, index=False, lineterminator="\n")
    written["fx_rates"] = [path]
    written.update(write_extra_landing(folder, start, end))
    return written


def main() -> None:
    """Write the demo landing files for the demo window into LANDING_ROOT (for `make dev`)."""
    import os

    from demo.window import parse_window

    start, end = parse_window(os.environ.get("DEMO_START"), os.environ.get("DEMO_END"))
    folder = Path(os.environ.get("LANDING_ROOT", "data/landing"))
    written = write_demo_landing(folder, start, end)
    print(f"demo landing files for {start}..{end}: {sum(map(len, written.values()))} in {folder}/")


if __name__ == "__main__":
    main()
