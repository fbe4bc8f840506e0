"""bench/kpi_daily.py: daily runs on a small kpi_bench file add the day's rows, refresh
incrementally, and agree row for row with the floor computing everything again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "kpi_daily.py"

pytestmark = pytest.mark.slow


def test_two_daily_runs_agree_with_the_floor_on_the_longer_table():
    done = subprocess.run(
        [sys.executable, str(BENCH), "--rows", "20000", "--repeat", "2"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    days = [line.split() for line in done.stdout.splitlines() if line.startswith("2026-01-0")]
    # Each new day is a copy of the as-of date's rows: 10 GA4 combinations x 3 devices.
    assert [(d[0], d[1]) for d in days] == [("2026-01-01", "30"), ("2026-01-02", "30")]
    # kpi_bench's 143,384 rows over 1,096 days, and the rows of the two new days and of
    # January 2026: 110 per period (7 GA4 KPIs x (total + 7 channels + 3 devices), 3 ad
    # spend KPIs x (total + 4 channels), ROAS and CPA x (total + 8 channels)), plus month
    # to date on each, plus January's month over month growth: 2 x 111 + 112 = 334.
    assert "ours vs floor: 143,718 rows compared, 0 different, 0 only in floor, 0 only in " in (
        done.stdout
    )
    assert done.stdout.rstrip().endswith("-> AGREE"), done.stdout
