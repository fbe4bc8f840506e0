"""The peer-shaped benchmark runs on a tiny table and every answer it times agrees with
the hand-written floor (bench/peer_bench.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "peer_bench.py"


@pytest.fixture(scope="module")
def peer_bench():
    spec = importlib.util.spec_from_file_location("peer_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["peer_bench"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_expressible_question_set_agrees_with_its_floor(peer_bench, capsys):
    assert (
        peer_bench.main(["--days", "40", "--channels", "2", "--campaigns", "3", "--repeat", "1"])
        == 0
    )
    out = capsys.readouterr().out
    lines = {line.split("  ")[0].strip(): line for line in out.splitlines()[2:]}
    # Worked out from the shape: 40 days in one year; set 2: 40 days x (total + 2 channels)
    # x 6 KPIs; set 3: 2 months x (total + 2 x 3 combinations) x 2 KPIs; set 4: 40 days;
    # set 5: 40 days x (total + 2 channels) x 2 growths.
    assert "agree on 1 rows" in lines["1 sessions by year"], out
    assert "agree on 720 rows" in lines["2 six metrics by day x channel"], out
    assert "agree on 28 rows" in lines["3 sessions, revenue by month x channel x campaign"], out
    assert "agree on 40 rows" in lines["4 revenue to date (all time) by day"], out
    assert (
        "agree on 240 rows" in lines["5 sessions vs 7 days and 1 month earlier by day x channel"]
    ), out


def test_a_wrong_answer_is_reported(peer_bench):
    ours = [("sessions", "2025-01-01", None, None, 10.0)]
    floor = [("sessions", "2025-01-01", None, None, 11.0)]
    assert peer_bench.compare(ours, floor, ["sessions"]).startswith("DIFFER: 1 different")
    assert "only in floor" in peer_bench.compare([], floor, ["sessions"])


def test_a_daily_run_of_every_set_agrees_with_its_floor_on_the_longer_table(peer_bench, capsys):
    argv = ["--days", "40", "--channels", "2", "--campaigns", "3", "--repeat", "1", "--daily"]
    assert peer_bench.main(argv) == 0
    out = capsys.readouterr().out
    daily = [line for line in out.splitlines() if line.strip().startswith("daily run")]
    assert len(daily) == 5 and all("agree on" in line for line in daily), out
    # One more day, 1 January 2026: a second year for set 1, a 41st day for set 4.
    assert "agree on 2 rows" in daily[0] and "agree on 41 rows" in daily[3], out
