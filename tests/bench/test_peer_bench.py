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
    for name in (
        "1 sessions by year",
        "2 six metrics by day x channel",
        "4 revenue to date (all time) by day",
    ):
        assert "agree on" in lines[name], out
    # 40 days x (total + 2 channels) x 6 KPIs on set 2.
    assert "agree on 720 rows" in lines["2 six metrics by day x channel"], out


def test_a_wrong_answer_is_reported(peer_bench):
    ours = [("sessions", "2025-01-01", None, None, 10.0)]
    floor = [("sessions", "2025-01-01", None, None, 11.0)]
    assert peer_bench.compare(ours, floor, ["sessions"]).startswith("DIFFER: 1 different")
    assert "only in floor" in peer_bench.compare([], floor, ["sessions"])
