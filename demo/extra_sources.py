"""Demo data for the sources beyond GA4 and the shop: donations, volunteer hours,
operations output and market revenue. Deterministic: each day is seeded from its date."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from demo.generator import DEMO_TIME_ZONE

_SEED = 11
_CAMPAIGNS = ("spring_appeal", "year_end_giving", "general")
_ACTIVITIES = ("events", "fundraising", "outreach")
_TEAMS = ("fulfilment", "support")


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def _rng(stream: int, day: dt.date) -> np.random.Generator:
    return np.random.default_rng([_SEED, stream, day.toordinal()])


def donations(start: dt.date, end: dt.date) -> pd.DataFrame:
    """One row per donation: donation_id, donated_at (UTC), donor_id, amount (EUR), campaign.

    Donors come back (ids drawn from a pool of 3,000), so unique donors per month are fewer
    than the sum of daily unique donors. December giving is about twice the usual.
    """
    rows = []
    for day in _days(start, end):
        rng = _rng(1, day)
        n = int(rng.poisson(30 if day.month == 12 else 15))
        seconds = rng.integers(0, 86_400, n)
        local = pd.Timestamp(day, tz=DEMO_TIME_ZONE)
        for i in range(n):
            rows.append(
                {
                    "donation_id": f"D{day:%Y%m%d}-{i:03d}",
                    "donated_at": (local + pd.Timedelta(seconds=int(seconds[i]))).tz_convert("UTC"),
                    "donor_id": f"donor-{int(rng.integers(1, 3_000)):04d}",
                    "amount": round(float(rng.lognormal(3.4, 0.7)), 2),
                    "currency": "EUR",
                    "campaign": _CAMPAIGNS[
                        2 if day.month not in (3, 12) else (0 if day.month == 3 else 1)
                    ],
                }
            )
    return pd.DataFrame(
        rows, columns=["donation_id", "donated_at", "donor_id", "amount", "currency", "campaign"]
    )


def volunteer_hours(start: dt.date, end: dt.date) -> pd.DataFrame:
    """One row per volunteer shift: shift_id, date, volunteer_id, activity, hours."""
    rows = []
    for day in _days(start, end):
        rng = _rng(2, day)
        shifts = int(rng.poisson(6 if day.weekday() >= 5 else 3))
        for i in range(shifts):
            rows.append(
                {
                    "shift_id": f"S{day:%Y%m%d}-{i:02d}",
                    "date": day,
                    "volunteer_id": f"vol-{int(rng.integers(1, 120)):03d}",
                    "activity": _ACTIVITIES[int(rng.integers(0, len(_ACTIVITIES)))],
                    "hours": float(rng.choice([1.5, 2.0, 3.0, 4.0])),
                }
            )
    return pd.DataFrame(rows, columns=["shift_id", "date", "volunteer_id", "activity", "hours"])


def operations_output(start: dt.date, end: dt.date) -> pd.DataFrame:
    """One row per working day and team: date, team, output_units, hours_worked."""
    rows = []
    for day in _days(start, end):
        if day.weekday() >= 5:
            continue
        rng = _rng(3, day)
        for team in _TEAMS:
            hours = float(rng.integers(5, 9) * 7.5)
            rows.append(
                {
                    "date": day,
                    "team": team,
                    "output_units": int(hours * rng.uniform(9, 12)),
                    "hours_worked": hours,
                }
            )
    return pd.DataFrame(rows, columns=["date", "team", "output_units", "hours_worked"])


def market_revenue(start: dt.date, end: dt.date) -> pd.DataFrame:
    """Monthly revenue of the whole market (an industry report): month, market_revenue."""
    months = pd.date_range(start.replace(day=1), end, freq="MS").date
    return pd.DataFrame(
        {
            "month": months,
            "market_revenue": [
                round(
                    2_400_000 * (1.3 if m.month in (11, 12) else 1.0) * (1.04 ** (m.year - 2025)), 2
                )
                for m in months
            ],
        }
    )


def write_extra_landing(folder: Path, start: dt.date, end: dt.date) -> dict[str, list[Path]]:
    """Write one CSV per source under ``folder``; the same bytes every time."""
    frames = {
        "donations": donations(start, end),
        "volunteer_hours": volunteer_hours(start, end),
        "operations": operations_output(start, end),
        "market": market_revenue(start, end),
    }
    written = {}
    for name, frame in frames.items():
        target = Path(folder) / name
        target.mkdir(parents=True, exist_ok=True)
        path = target / f"{name}.csv"
        frame.to_csv(path, index=False, lineterminator="\n", float_format="%.2f")
        written[name] = [path]
    return written
