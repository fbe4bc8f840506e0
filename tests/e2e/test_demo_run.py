"""`make run` (``python -m demo.run``), the README's first command, on a short window.

A subprocess, as `make run` starts it: the demo sets its environment before the Dagster
definitions are imported, which an in-process call after other tests could not redo.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[2]


def test_demo_run_prints_the_scorecard_and_the_report_path(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env |= {
        "WAREHOUSE_URL": f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        "DEMO_START": "2026-03-01",
        "DEMO_END": "2026-04-03",
        "LANDING_ROOT": str(tmp_path / "landing"),
        "KPI_REPORT_DIR": str(tmp_path / "reports"),
        "KPI_QUALITY_DIR": str(tmp_path / "quality"),
        "LOG_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [sys.executable, "-m", "demo.run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    # The window of DEMO_START / DEMO_END, not the default 425 days.
    assert "demo data: 2026-03-01 .. 2026-04-03" in out
    assert "Scorecard: latest complete month" in out
    # March (whole, from its first day) is the latest complete month; every area shows.
    for area in ("customer_service", "marketing", "nonprofit", "operations", "sales"):
        assert f"\n{area} " in out
    assert " 2026-03 " in out
    report = Path(out.split("report: ", 1)[1].split()[0])
    assert report.parent == tmp_path / "reports" and report.is_file()
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        first, last = con.execute("select min(date), max(date) from raw.ga4_traffic").fetchone()
    finally:
        con.close()
    assert (str(first), str(last)) == ("2026-03-01", "2026-04-03")
