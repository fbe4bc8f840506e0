"""Post-purchase survey answers (CSAT and NPS), following the day's order channels."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from demo.generator.catalogue import _CHANNEL_INDEX, _CSAT_P, _SEG_CHANNEL, _STREAM_SURVEY, CHANNELS
from demo.generator.days import _day_labels, _local_seconds, _ordinals, _rng, _utc_timestamps
from demo.generator.traffic import _traffic_day


def survey_answers(start: date, end: date, seed: int = 7) -> pd.DataFrame:
    """Post-purchase survey answers given on local days ``start``..``end``.

    Columns: ``answered_at`` (tz-aware UTC), ``response_id`` (unique), ``csat_score`` (1-5, mostly
    4-5), ``nps_score`` (0-10, mostly 7-10 and correlated with CSAT) and ``channel`` (GA4
    channel group of the purchase). 5-30 answers a day, ~30 % of the day's tracked orders.
    """
    ordinals = _ordinals(start, end)
    parts: list[tuple[np.ndarray, ...]] = []
    for ordinal in ordinals.tolist():
        day = _traffic_day(seed, ordinal)
        rng = _rng(seed, _STREAM_SURVEY, ordinal)
        order_channels = _SEG_CHANNEL[day.segment[day.txn_row]]
        n = int(np.clip(rng.poisson(0.3 * len(order_channels)), 5, 30))
        if len(order_channels):
            channel = rng.choice(order_channels, size=n)
        else:
            channel = np.full(n, _CHANNEL_INDEX["Direct"])
        csat = rng.choice(5, size=n, p=_CSAT_P) + 1
        nps = np.clip(np.rint(2 * csat - 0.2 + rng.normal(0.0, 1.1, n)), 0, 10).astype("int64")
        seconds = np.sort(_local_seconds(rng, n), kind="stable")
        parts.append((np.full(n, ordinal), np.arange(n), seconds, csat, nps, channel))
    row_ordinals, seq, seconds, csat, nps, channel = (
        np.concatenate([p[i] for p in parts]) for i in range(6)
    )
    response_id = _day_labels(row_ordinals, "SR-%Y%m%d-") + pd.Series(seq).map("{:03d}".format)
    return pd.DataFrame(
        {
            "answered_at": _utc_timestamps(row_ordinals, seconds),
            "response_id": response_id.to_numpy(dtype=object),
            "csat_score": csat.astype("int64"),
            "nps_score": nps,
            "channel": np.array(CHANNELS, dtype=object)[channel],
        }
    )
