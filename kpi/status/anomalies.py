"""Early warnings: a daily KPI value far outside its recent, weekday-aware range.

For each day, the baseline is the median of the same weekday in the previous four weeks, so
Mondays are compared with Mondays. The spread is robust and measures what is tested: the
median absolute deviation of the previous 28 days from their own baselines, scaled to a
standard deviation (x 1.4826). A value beyond ``threshold`` robust standard deviations from
its baseline is flagged. This is kept apart from the status against the target: an anomaly
is a question, not a verdict.

Why the deviations from the baseline and not the day-to-day noise: a baseline that is a
median of four days has an error of its own (about 0.55 times the noise for four normal
days), and a trend or a yearly season moves the level between those weeks. A spread of the
noise alone (the older estimate, from changes on a week earlier) is some 10-25% too narrow
for the deviations it judges. On plain noise around a weekly pattern that flagged about 2%
of ordinary days; now about 0.8% (3 standard deviations are 0.27% with a known spread; one
estimated from 28 days is itself uncertain by about a fifth, which fattens the tails).

Days outside the loaded data of a KPI's sources (``known``: before the first or after the
last day with rows, as ``kpi.compute.coverage`` reads them) are unknown, not zero: they are neither
judged nor used as history, so an open day not loaded yet is not a "drop", and the empty days
before a source starts do not make a flat history that every real day would break.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from kpi.compute.coverage import Coverage

WINDOW_DAYS = 28
MAD_TO_SD = 1.4826  # the MAD of a normal distribution times this is its standard deviation
MIN_HISTORY = 14  # deviations from a baseline (two of each weekday) before a day is judged
# Deviations this small (relative to the level) are float noise, not a break of a flat history.
FLAT_TOLERANCE = 1e-9


def flag_anomalies(
    values: pd.DataFrame,
    threshold: float = 3.0,
    known: Mapping[str, Coverage] | None = None,
) -> pd.DataFrame:
    """Flag anomalies in daily values.

    ``values`` has columns kpi_id, period_start (date), value. ``known`` maps a KPI to the
    days its sources have data (a KPI not in it: every day given is known). Returns one row
    per input row with baseline, robust_sd, z_score, is_anomaly and kind ("spike", "drop" or
    None); a day outside the known days has a value but no baseline and is never flagged.
    """
    out = []
    for kpi_id, frame in values.groupby("kpi_id", sort=True):
        series = (
            frame.assign(period_start=pd.to_datetime(frame["period_start"]))
            .set_index("period_start")["value"]
            .astype("float64")
            .sort_index()
            .asfreq("D")
        )
        coverage = (known or {}).get(kpi_id)
        judged = series
        if coverage is not None:
            days = pd.Series(series.index.date, index=series.index)
            judged = series.where(days.map(coverage.covers_day))
        out.append(_flag_series(kpi_id, series, judged, threshold))
    if not out:
        return pd.DataFrame(
            columns=[
                "kpi_id",
                "period_start",
                "value",
                "baseline",
                "robust_sd",
                "z_score",
                "is_anomaly",
                "kind",
            ]
        )
    return pd.concat(out, ignore_index=True)


def _flag_series(
    kpi_id: str, series: pd.Series, judged: pd.Series, threshold: float
) -> pd.DataFrame:
    """``series``: the values as stored; ``judged``: the same with unknown days as NaN."""
    same_weekday = pd.concat([judged.shift(7 * k) for k in range(1, 5)], axis=1)
    # An unknown day has no expected value either: it is not compared with anything.
    baseline = same_weekday.median(axis=1, skipna=False).where(judged.notna())
    deviation = judged - baseline
    # The spread of the deviations themselves over the previous 28 days (see the module).
    history = deviation.abs().shift(1).rolling(WINDOW_DAYS, min_periods=MIN_HISTORY).median()
    spread = MAD_TO_SD * history
    known = deviation.notna() & spread.notna()
    positive = known & (spread > 0)
    z = (deviation / spread).where(positive)
    # A perfectly flat history has no spread: any change from it is out of band.
    moved = deviation.abs() > FLAT_TOLERANCE * (1 + baseline.abs())
    flat_break = known & (spread == 0) & moved
    flagged = (positive & (z.abs() > threshold)) | flat_break
    kind = np.where(flagged, np.where(deviation > 0, "spike", "drop"), None)
    return pd.DataFrame(
        {
            "kpi_id": kpi_id,
            "period_start": series.index.date,
            "value": series.to_numpy(),
            "baseline": baseline.to_numpy(),
            "robust_sd": spread.to_numpy(),
            "z_score": z.to_numpy(),
            "is_anomaly": flagged.to_numpy(),
            "kind": kind,
        }
    )
