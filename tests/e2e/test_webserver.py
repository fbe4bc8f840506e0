"""Smoke test of the real Dagster webserver: `dagster dev` on a free port, its GraphQL API,
a run launched through it, and a screenshot of the asset graph in headless Chromium."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from assets.settings import PROJECT_ROOT
from demo.landing import write_demo_landing
from tests.browser import CHROMIUM, Browser

SCREENSHOT = PROJECT_ROOT / "docs" / "screenshots" / "asset-graph.png"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.load(response)
    assert "errors" not in payload, payload["errors"]
    return payload["data"]


def _wait_until_up(port: int, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"dagster dev exited:\n{log.read_text()[-3000:]}"
        try:
            data = _graphql(port, "{ version }")
            if data.get("version"):
                # The code location loads after the server answers.
                nodes = _graphql(port, "{ assetNodes { id } }")["assetNodes"]
                if nodes:
                    return
        except (OSError, AssertionError):
            pass
        time.sleep(1)
    raise AssertionError(f"dagster dev did not come up:\n{log.read_text()[-3000:]}")


@pytest.fixture
def dagster_dev(tmp_path):
    """`dagster dev` on the demo code location, with its own home, warehouse and files."""
    port = _free_port()
    home = tmp_path / "home"
    home.mkdir()
    # nux off: no first-visit dialog over the page in the screenshot.
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    start, end = dt.date(2026, 3, 1), dt.date(2026, 3, 7)
    landing = tmp_path / "landing"
    write_demo_landing(landing, start, end)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "WAREHOUSE_URL": f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        "LANDING_ROOT": str(landing),
        "DEMO_START": start.isoformat(),
        "DEMO_END": end.isoformat(),
        "KPI_DEMO": "1",  # as `make dev` sets it: the demo's GA4 resource
    }
    env.pop("GA4_API_ENDPOINT", None)
    log = tmp_path / "dagster_dev.log"
    dagster = Path(sys.executable).parent / "dagster"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_up(port, proc, log)
        yield port, (start, end), log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


ASSETS_QUERY = """
{ assetNodes {
    assetKey { path } description groupName kinds
    owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
    assetChecksOrError { ... on AssetChecks { checks { name blocking } } }
} }
"""

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""

STATUS = """
query Status($runId: ID!) {
  runOrError(runId: $runId) { ... on Run { status } }
}
"""


def test_webserver_serves_the_graph_launches_a_run_and_renders(dagster_dev, tmp_path):
    port, (start, end), log = dagster_dev
    nodes = _graphql(port, ASSETS_QUERY)["assetNodes"]
    by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    assert {"ga4_traffic", "kpi_values", "kpi_comparisons"} <= set(by_key)
    for key, node in by_key.items():
        assert node["description"] and node["groupName"] and node["owners"], key
    checks = by_key["ga4_traffic"]["assetChecksOrError"]["checks"]
    assert ("quality_suite", True) in [(c["name"], c["blocking"]) for c in checks]

    params = {
        "selector": {
            "repositoryLocationName": "marketing_kpis",
            "repositoryName": "__repository__",
            "jobName": "marketing_kpis_job",
        },
        "runConfigData": {"ops": {"kpi_periods": {"config": {"as_of": end.isoformat()}}}},
        "executionMetadata": {
            "tags": [
                {"key": "dagster/asset_partition_range_start", "value": start.isoformat()},
                {"key": "dagster/asset_partition_range_end", "value": end.isoformat()},
            ]
        },
    }
    launched = _graphql(port, LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline, status = time.monotonic() + 300, None
    while time.monotonic() < deadline:
        status = _graphql(port, STATUS, {"runId": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    assert status == "SUCCESS", f"run {run_id} ended {status}:\n{log.read_text()[-3000:]}"

    if CHROMIUM is None:
        if os.environ.get("KPI_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium): no screenshot")
    shot = tmp_path / "asset-graph.png"
    url = (
        f"http://127.0.0.1:{port}/assets/kpi_comparisons"
        "?view=lineage&lineageScope=upstream&lineageDepth=5"
    )
    with Browser() as browser:
        text = browser.screenshot(url, shot, wait_for_text="ga4_traffic", settle=4)
    # The graph shows the KPI tables and every raw source upstream of them.
    for asset in ("kpi_comparisons", "kpi_values", "kpi_periods", "ga4_traffic", "orders"):
        assert asset in text
    assert shot.stat().st_size > 20_000, "the screenshot looks empty"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":  # refresh the README's picture
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, SCREENSHOT)
