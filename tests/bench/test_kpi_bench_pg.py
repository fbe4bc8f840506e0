"""bench/kpi_bench.py's ours_pg contender: kpi.refresh on PostgreSQL over the same generated
rows agrees with the hand-written floor; an unreachable server skips it with the reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "kpi_bench.py"

pytestmark = pytest.mark.slow


def _bench(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(BENCH), "--rows", "20000", "--scaling-rows", "", "--repeat"]
    return subprocess.run(
        [*command, "1", *args], capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.postgres
def test_ours_on_postgresql_agrees_with_the_floor(postgres_url):
    done = _bench("--contenders", "floor,ours_pg", "--pg-url", postgres_url)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ours_pg: raw rows copied into PostgreSQL (kpi_bench_pg)" in done.stdout
    assert "ours_pg vs floor: 143,384 rows compared, 0 different" in done.stdout
    assert "-> AGREE" in done.stdout.split("ours_pg vs floor:")[1].splitlines()[0]


def test_an_unreachable_postgresql_skips_ours_pg_with_the_reason():
    done = _bench(
        "--contenders", "floor,ours_pg", "--pg-url", "postgresql://nobody:s3cret@127.0.0.1:1/x"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ours_pg skipped: PostgreSQL at postgresql://nobody:***@127.0.0.1:1/x unreachable" in (
        done.stdout
    )
    assert "s3cret" not in done.stdout + done.stderr
    assert "floor" in done.stdout.split("contender")[1]
