"""The real Dagster webserver and daemon: `dg dev` on a free port, its GraphQL API,
a run launched through it, and a screenshot of the asset graph in headless Chromium."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from assets.settings import PROJECT_ROOT
from demo.dev import prepare_instance
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
        assert proc.poll() is None, f"dg dev exited:\n{log.read_text()[-3000:]}"
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
    raise AssertionError(f"dg dev did not come up:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def dev_server(tmp_path: Path, start: dt.date, end: dt.date) -> Iterator[tuple[int, Path]]:
    """`dg dev` (as `make dev` starts it) on the demo code location, with the dev instance
    of deploy/dagster.dev.yaml (run queue, DuckDB pool) and its own warehouse and files."""
    port = _free_port()
    home = tmp_path / "home"
    prepare_instance(home)
    landing = tmp_path / "landing"
    write_demo_landing(landing, start, end)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "WAREHOUSE_URL": f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        "LANDING_ROOT": str(landing),
        "KPI_REPORT_DIR": str(tmp_path / "reports"),
        "KPI_QUALITY_DIR": str(tmp_path / "quality"),
        "DEMO_START": start.isoformat(),
        "DEMO_END": end.isoformat(),
        "KPI_HISTORY_START": start.isoformat(),  # as `make dev`: partitions from the data
        "KPI_DEMO": "1",  # as `make dev` sets it: the demo's GA4 resource
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("GA4_API_ENDPOINT", None)
    log = tmp_path / "dg_dev.log"
    dg = Path(sys.executable).parent / "dg"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(dg), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_up(port, proc, log)
        yield port, log, env
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def dagster_dev(tmp_path):
    start, end = dt.date(2026, 3, 1), dt.date(2026, 3, 7)
    with dev_server(tmp_path, start, end) as (port, log, _env):
        yield port, (start, end), log


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


RUNS = """
{ runsOrError { ... on Runs { results {
    runId status startTime endTime tags { key value } assetSelection { path }
} } } }
"""

BACKFILL = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } }
}
"""


def test_a_backfill_and_a_ui_materialization_queue_on_the_duckdb_pool(tmp_path):
    """The launch paths that failed on DuckDB's file lock: `make backfill` (an asset backfill
    in 31-day runs) and Materialize from the UI at the same time, on the dev instance of
    `make dev`. Every run succeeds, and no two runs were ever in progress at once."""
    start, end = dt.date(2026, 3, 1), dt.date(2026, 4, 5)  # 36 days: runs of 31 and 5
    with dev_server(tmp_path, start, end) as (port, log, env):
        submitted = subprocess.run(
            [sys.executable, "-m", "pipelines.backfill", "--from", str(start), "--to", str(end)],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert submitted.returncode == 0, submitted.stderr
        backfill_id = submitted.stdout.split()[1]
        # What the UI's Materialize button sends for one asset.
        params = {
            "selector": {
                "repositoryLocationName": "marketing_kpis",
                "repositoryName": "__repository__",
                "jobName": "__ASSET_JOB",
                "assetSelection": [{"path": ["kpi_catalog"]}],
            },
        }
        launched = _graphql(port, LAUNCH, {"params": params})["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched

        deadline, status = time.monotonic() + 600, None
        while time.monotonic() < deadline:
            status = _graphql(port, BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
            runs = _graphql(port, RUNS)["runsOrError"]["results"]
            done = all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs)
            if status and status["status"] not in ("REQUESTED",) and done:
                break
            time.sleep(3)
        assert status == {"status": "COMPLETED_SUCCESS"} or status == {"status": "COMPLETED"}, (
            status,
            log.read_text()[-3000:],
        )
    assert "Use 'dg dev' instead" not in log.read_text()  # the current entry point
    failed = [r["runId"] for r in runs if r["status"] != "SUCCESS"]
    assert not failed, f"runs {failed} did not succeed:\n{log.read_text()[-3000:]}"

    # The raw assets ran in chunks of at most 31 days covering the backfill exactly.
    ranges = []
    for run in runs:
        tags = {t["key"]: t["value"] for t in run["tags"]}
        if "dagster/asset_partition_range_start" in tags:
            first = dt.date.fromisoformat(tags["dagster/asset_partition_range_start"])
            last = dt.date.fromisoformat(tags["dagster/asset_partition_range_end"])
            ranges.append((first, last))
    assert sorted(ranges) == [(start, dt.date(2026, 3, 31)), (dt.date(2026, 4, 1), end)]
    # The UI's run and the backfill's KPI run ran too, and the runs took turns.
    assert len(runs) >= 4
    spans = sorted((r["startTime"], r["endTime"]) for r in runs)
    for (_, end_a), (start_b, _) in itertools.pairwise(spans):
        assert start_b >= end_a, f"two runs overlapped on the DuckDB file: {spans}"
