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
    report = Path(out.split("\nreport: ", 1)[1].split()[0])
    assert report.parent == tmp_path / "reports" and report.is_file()
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        first, last = con.execute("select min(date), max(date) from raw.ga4_traffic").fetchone()
        counts = {
            name: con.execute(f"select count(*) from {name}").fetchone()[0]
            for name in ("raw.ga4_traffic", "raw.orders", "kpi.kpi_values", "kpi.kpi_comparisons")
        }
    finally:
        con.close()
    assert (str(first), str(last)) == ("2026-03-01", "2026-04-03")
    # While the job runs, a line per finished step, with counts the tables confirm.
    lines = {line.split(":")[0].strip(): line for line in out.splitlines() if line.startswith("  ")}
    assert f"{counts['kpi.kpi_values']:,} rows in the table" in lines["kpi_values"]
    assert f"{counts['kpi.kpi_comparisons']:,} rows in the table" in lines["kpi_comparisons"]
    assert f"{counts['raw.orders']:,} loaded" in lines["orders"]
    assert "34 partitions" in lines["ga4_traffic"]  # 1 March .. 3 April
    assert out.index("  kpi_values:") < out.index("Scorecard:")
