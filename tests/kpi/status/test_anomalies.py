"""Anomaly flags on a fixture with a planted spike and a planted drop."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from kpi.status.anomalies import flag_anomalies

START = dt.date(2026, 1, 5)  # a Monday


def _series(days: int = 70) -> pd.DataFrame:
    # Weekdays around 100, weekends around 60 (a strong weekly pattern), with a small,
    # fixed wobble so the spread is not zero.
    wobble = [0.0, 2.0, -1.0, 1.5, -2.0, 1.0, -0.5]
    rows = []
    for i in range(days):
        day = START + dt.timedelta(days=i)
        base = 60.0 if day.weekday() >= 5 else 100.0
        rows.append({"kpi_id": "sessions", "period_start": day, "value": base + wobble[i % 7]})
    return pd.DataFrame(rows)


def test_weekly_pattern_alone_is_not_an_anomaly():
    flagged = flag_anomalies(_series())
    # Saturdays at 60 next to weekdays at 100 would be "drops" for a naive 28-day band.
    assert not flagged["is_anomaly"].any()


def test_planted_spike_and_drop_are_flagged_and_nothing_else():
    frame = _series()
    spike_day, drop_day = START + dt.timedelta(days=45), START + dt.timedelta(days=52)
    frame.loc[frame["period_start"] == spike_day, "value"] *= 3  # a campaign spike
    frame.loc[frame["period_start"] == drop_day, "value"] *= 0.2  # a tracking outage
    flagged = flag_anomalies(frame)
    hits = flagged[flagged["is_anomaly"]].set_index("period_start")
    assert list(hits.index) == [spike_day, drop_day]
    assert hits.loc[spike_day, "kind"] == "spike"
    assert hits.loc[drop_day, "kind"] == "drop"
    # Day 45 after a Monday is a Thursday (45 = 6 * 7 + 3); its baseline is the median of
    # the four previous Thursdays.
    weekday = spike_day.weekday()
    previous = [spike_day - dt.timedelta(days=7 * k) for k in range(1, 5)]
    expected = np.median(frame.set_index("period_start").loc[previous, "value"])
    assert previous[0].weekday() == weekday
    assert hits.loc[spike_day, "baseline"] == pytest.approx(expected)


def test_too_little_history_is_not_judged():
    flagged = flag_anomalies(_series(25))
    early = flagged[flagged["period_start"] < START + dt.timedelta(days=21)]
    assert early["baseline"].isna().all()
    assert not early["is_anomaly"].any()
