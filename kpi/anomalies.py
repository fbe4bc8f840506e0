"""Early warnings: a daily KPI value far outside its recent, weekday-aware range.

For each day, the baseline is the median of the same weekday in the previous four weeks, so
Mondays are compared with Mondays. The spread is robust and weekday-aware too: the median
absolute change between a day and the same weekday a week earlier, over the previous 28
days, scaled to a standard deviation (1.4826 for a median absolute deviation, divided by
sqrt(2) because it is a difference of two days). A value beyond ``threshold`` robust
standard deviations from its baseline is flagged. This is kept apart from the status
against the target: an anomaly is a question, not a verdict.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

WINDOW_DAYS = 28
MAD_TO_SD = 1.4826  # the MAD of a normal distribution times this is its standard deviation
MIN_HISTORY = 21  # weekly changes needed before a day can be judged


def flag_anomalies(values: pd.DataFrame, threshold: float = 3.0) -> pd.DataFrame:
    """Flag anomalies in daily values.

    ``values`` has columns kpi_id, period_start (date), value. Returns one row per input row
    with baseline, robust_sd, z_score, is_anomaly and kind ("spike", "drop" or None).
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
        out.append(_flag_series(kpi_id, series, threshold))
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


def _flag_series(kpi_id: str, series: pd.Series, threshold: float) -> pd.DataFrame:
    same_weekday = pd.concat([series.shift(7 * k) for k in range(1, 5)], axis=1)
    baseline = same_weekday.median(axis=1, skipna=False)
    weekly_change = (series - series.shift(7)).abs().shift(1)
    history = weekly_change.rolling(WINDOW_DAYS, min_periods=MIN_HISTORY).median()
    spread = MAD_TO_SD * history / np.sqrt(2)
    deviation = series - baseline
    known = deviation.notna() & spread.notna()
    positive = known & (spread > 0)
    z = (deviation / spread).where(positive)
    # A perfectly flat history has no spread: any change from it is out of band.
    flat_break = known & (spread == 0) & (deviation != 0)
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
