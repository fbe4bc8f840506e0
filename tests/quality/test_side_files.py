"""A data-docs page that cannot be written must not fail a step whose rows are committed
(issue 13, item 25).

Tests run as root, for whom ``chmod`` stops nothing; a folder *under a regular file* cannot be
created by anyone (``NotADirectoryError``), and a folder that *is* a regular file cannot be
written into (``FileExistsError`` from ``mkdir``), so those are the unwritable folders here.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import AssetKey, DagsterEventType, DagsterInstance

from demo.generator import ga4_traffic
from demo.landing import write_demo_landing
from kpi.warehouse.connection import Warehouse
from quality.docs import write_data_docs, write_data_docs_or_warn
from quality.validate import ValidationReport
from tests.support import fake_ga4, run_pipeline

D = dt.date
# One raw step of each kind (a GA4 report, a landing file source): both write their check
# through assets.quality.run_quality_check, the one place that writes the data-docs page.
RAW_STEPS = {"ga4_traffic", "orders"}
# kpi_periods reads every raw table; kpi_values is the refresh on the new rows.
KPI_ASSETS = {"kpi_catalog", "kpi_periods", "kpi_values"}


def _unwritable(tmp_path: Path, kind: str) -> Path:
    blocker = tmp_path / "file.txt"
    blocker.write_text("a regular file, not a folder\n")
    return blocker / "sub" if kind == "under-a-file" else blocker


def _report() -> ValidationReport:
    return ValidationReport(suite="orders", success=True, outcomes=[], row_count=3)


@pytest.mark.parametrize("kind", ["under-a-file", "is-a-file"])
def test_unwritable_folder_is_a_warning_naming_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    folder = _unwritable(tmp_path, kind)
    # The folder really is unwritable, for root too.
    with pytest.raises(OSError):
        write_data_docs(_report(), "orders", "run-1", folder=folder)

    path, problem = write_data_docs_or_warn(_report(), "orders", "run-1", folder=folder)

    assert path is None
    assert problem is not None
    assert str(folder) in problem and "KPI_QUALITY_DIR" in problem
    assert "orders" in problem


def test_writable_folder_still_gets_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The folder is the argument: the environment variable the code location reads is not.
    monkeypatch.setenv("KPI_QUALITY_DIR", str(tmp_path / "elsewhere"))
    path, problem = write_data_docs_or_warn(_report(), "orders", "run/1", folder=tmp_path / "docs")
    assert problem is None
    assert path == (tmp_path / "docs" / "orders-run_1.html").resolve()
    assert not (tmp_path / "elsewhere").exists()
    assert "Suite orders: passed" in path.read_text(encoding="utf-8")


def test_run_with_unwritable_docs_folder_tells_the_truth(
    warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every raw step commits its rows and succeeds, its check says the page was not written
    and where, and the KPI refresh runs on the new data. A selection of the job (a GA4 step,
    a file step, the KPI refresh): the whole job is tested in test_pipeline.py."""
    folder = _unwritable(tmp_path, "under-a-file")
    monkeypatch.setenv("KPI_QUALITY_DIR", str(folder))
    start, end = D(2026, 1, 20), D(2026, 1, 31)
    landing = tmp_path / "landing"
    write_demo_landing(landing, start, end)
    instance = DagsterInstance.ephemeral()
    with fake_ga4(ga4_traffic(start, end)) as server:
        result = run_pipeline(
            warehouse_url,
            server.endpoint,
            landing,
            start,
            end,
            instance=instance,
            raise_on_error=False,
            assets=sorted(RAW_STEPS | KPI_ASSETS),
        )

    failed = {
        e.step_key for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE
    }
    assert failed == set()
    materialized = {
        m.event_specific_data.materialization.asset_key.to_user_string()
        for m in result.get_asset_materialization_events()
    }
    assert materialized >= RAW_STEPS | KPI_ASSETS
    checks = {
        c.asset_key: c
        for c in result.get_asset_check_evaluations()
        if c.check_name == "quality_suite"
    }
    assert set(checks) == {AssetKey(name) for name in RAW_STEPS}
    for check in checks.values():
        assert "data_docs" not in check.metadata
        problem = check.metadata["data_docs_error"].text
        assert str(folder) in problem and check.asset_key.to_user_string() in problem

    # Logged as a warning in the run's log, once per check, naming the folder.
    warnings = [
        r.user_message
        for r in instance.all_logs(result.run_id)
        if r.level == logging.WARNING and "data-docs page" in r.user_message
    ]
    assert len(warnings) == len(checks)
    assert all(str(folder) in w for w in warnings)

    wh = Warehouse(warehouse_url)
    try:
        orders = wh.count(sa.table("orders", schema="raw"))
        values = wh.count(sa.table("kpi_values", schema="kpi"))
    finally:
        wh.dispose()
    assert orders > 0 and values > 0
