"""`make dev` (``python -m demo.dev``) opens on a living demo: the first start records the
demo's run in the dev instance, so the UI shows every asset materialized with its
partitions; the next start records nothing again. The UI itself is left out (``--no-ui``);
tests/e2e/test_webserver.py starts it."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest
import yaml
from dagster import AssetKey, DagsterInstance

from assets.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow
UNSET = ("KPI_HISTORY_START", "GA4_API_ENDPOINT", "DAGSTER_HOME")


def _dev(env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "demo.dev", "--no-ui"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_make_dev_records_the_demo_once_in_the_dev_instance(tmp_path):
    home = tmp_path / "dagster_home"
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if k not in ("KPI_HISTORY_START", "GA4_API_ENDPOINT")
        },
        "DAGSTER_HOME": str(home),
        "WAREHOUSE_URL": f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        "DEMO_START": "2026-03-01",
        "DEMO_END": "2026-03-20",
        "LANDING_ROOT": str(tmp_path / "landing"),
        "KPI_REPORT_DIR": str(tmp_path / "reports"),
        "KPI_QUALITY_DIR": str(tmp_path / "quality"),
        "LOG_LEVEL": "WARNING",
    }
    first = _dev(env).stdout
    assert "daily partitions from 2026-03-01" in first
    assert "recording the demo's first run" in first and "Scorecard:" in first
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    assert config["concurrency"]["pools"] == {"granularity": "run", "default_limit": 1}

    with DagsterInstance.from_config(str(home)) as instance:
        days = instance.get_materialized_partitions(AssetKey("ga4_traffic"))
        expected = {(dt.date(2026, 3, 1) + dt.timedelta(days=i)).isoformat() for i in range(20)}
        assert days == expected
        for key in ("kpi_values", "kpi_comparisons", "kpi_report", "orders"):
            assert instance.get_latest_materialization_event(AssetKey(key)), key
        runs = len(instance.get_runs())
    assert runs == 1

    second = _dev(env).stdout
    assert "the demo's history is recorded" in second and "Scorecard:" not in second
    with DagsterInstance.from_config(str(home)) as instance:
        assert len(instance.get_runs()) == runs
