"""The peer-shaped benchmark runs on a tiny table and every answer it times agrees with
the hand-written floor (bench/peer_bench.py)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import yaml

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
    # set 5: 40 days x (total + 2 channels) x 2 growths; set 6: 40 days x (total + 3
    # campaigns).
    assert "agree on 1 rows" in lines["1 sessions by year"], out
    assert "agree on 720 rows" in lines["2 six metrics by day x channel"], out
    assert "agree on 28 rows" in lines["3 sessions, revenue by month x channel x campaign"], out
    assert "agree on 40 rows" in lines["4 revenue to date (all time) by day"], out
    assert (
        "agree on 240 rows" in lines["5 sessions vs 7 days and 1 month earlier by day x channel"]
    ), out
    assert "agree on 160 rows" in lines["6 revenue to date (all time) by day x campaign"], out


def test_campaign_declared_sparse_agrees_too_in_full_and_daily_runs(peer_bench, capsys, tmp_path):
    args = ["--days", "40", "--channels", "2", "--campaigns", "3", "--repeat", "1"]
    assert peer_bench.main([*args, "--sets", "3", "--daily", "--sparse", "campaign"]) == 0
    out = capsys.readouterr().out
    # As dense: every channel x campaign has rows every day. 2 months x (total + 6) x 2
    # KPIs; the daily run's day (2026-01-01) opens a third month: 42.
    assert "agree on 28 rows" in out and "agree on 42 rows" in out, out
    peer_bench.write_definitions(tmp_path, peer_bench.question_sets()[2], ("campaign",))
    sources = yaml.safe_load((tmp_path / "sources.yaml").read_text())
    assert sources["dimensions"] == {"channel": {"sparse": False}, "campaign": {"sparse": True}}


@pytest.mark.postgres
def test_a_full_refresh_on_postgresql_agrees_with_the_floor(peer_bench, capsys, postgres_url):
    args = ["--days", "40", "--channels", "2", "--campaigns", "3", "--repeat", "1"]
    assert (
        peer_bench.main([*args, "--sets", "3,4", "--sparse", "campaign", "--pg-url", postgres_url])
        == 0
    )
    out = capsys.readouterr().out
    assert "peer table copied into PostgreSQL (peer_bench_pg)" in out, out
    on_pg = [line for line in out.splitlines() if "ours on PostgreSQL" in line]
    # The rows of set 3 (28, as on DuckDB) and of set 4 (one per day).
    assert len(on_pg) == 2 and "agree on 28 rows" in on_pg[0] and "agree on 40 rows" in on_pg[1]


def test_an_unreachable_postgresql_is_skipped_with_the_reason(peer_bench, capsys):
    args = ["--days", "40", "--channels", "2", "--campaigns", "3", "--repeat", "1"]
    url = "postgresql://nobody:s3cret@127.0.0.1:1/x"
    assert peer_bench.main([*args, "--sets", "1", "--pg-url", url]) == 0
    out = capsys.readouterr().out
    assert "PostgreSQL skipped: postgresql://nobody:***@127.0.0.1:1/x unreachable" in out, out
    assert "s3cret" not in out and "ours on PostgreSQL" not in out


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
    assert len(daily) == 6 and all("agree on" in line for line in daily), out
    # One more day, 1 January 2026: a second year for set 1, a 41st day for sets 4 and 6.
    assert "agree on 2 rows" in daily[0] and "agree on 41 rows" in daily[3], out
    assert "agree on 164 rows" in daily[5], out


def test_the_breakdown_splits_each_fastest_run_into_sql_and_the_rest(peer_bench, capsys):
    args = ["--days", "40", "--channels", "2", "--campaigns", "3", "--repeat", "2"]
    assert peer_bench.main([*args, "--sets", "1", "--daily", "--breakdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    timed = [i for i, line in enumerate(lines) if "agree on" in line]
    assert len(timed) == 2, lines  # the full refresh and the daily run
    counts = []
    for i in timed:
        ours_ms = float(lines[i].split()[-6]) * 1000  # ... ours s, x floor, agree on n rows
        found = re.fullmatch(
            r"\s+SQL ([\d.]+) ms in (\d+) statements, the rest ([-\d.]+) ms", lines[i + 1]
        )
        assert found, lines[i + 1]
        sql, statements, rest = float(found[1]), int(found[2]), float(found[3])
        # Each run sends statements and takes more than its SQL; the parts add up to the
        # time reported above them (the breakdown is of that run, the fastest).
        assert statements > 0 and sql > 0 and rest > 0, lines[i + 1]
        assert abs(sql + rest - ours_ms) < 1.0, (lines[i], lines[i + 1])
        counts.append(statements)
    # A daily run also finds the changed days and rewrites the open periods.
    assert counts[1] > counts[0], lines
