"""Great Expectations suites run as blocking asset checks on what was just written.

The logic is Dagster-free: ``quality.writes`` (the write with its quarantine, in one
transaction) and ``quality.checks`` (the suite's outcome on the rows written). Here the
outcome becomes an :class:`AssetCheckResult`: a blocking failure (severity ``error``, or
rows not conserved) has severity ERROR and stops the KPIs that read the source; a warning
fails the check with severity WARN, which does not block.
"""

from __future__ import annotations

import datetime as dt

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    MetadataValue,
    get_dagster_logger,
)
from sqlalchemy.sql.elements import ColumnElement

from assets.settings import suites_dir
from kpi.warehouse.connection import Warehouse
from quality.checks import (
    CheckOutcome,
    check_written_rows,
)
from quality.docs import DEFAULT_QUALITY_DIR
from quality.quarantine import Conservation

CHECK_NAME = "quality_suite"


def quality_check_spec(asset_name: str) -> AssetCheckSpec:
    return AssetCheckSpec(
        CHECK_NAME,
        asset=asset_name,
        blocking=True,
        description=f"Great Expectations suite kpi_definitions/quality/{asset_name}.yaml "
        "on the rows written by this run (invalid rows are quarantined before the write); "
        "a table-level failure stops the KPIs that read them.",
    )


def check_result(asset_name: str, outcome: CheckOutcome) -> AssetCheckResult:
    """The asset check result of ``outcome``: its counts, failures and data-docs page."""
    metadata = {
        "rows_checked": outcome.rows_checked,
        "expectations": outcome.expectations,
        "failed_expectations": outcome.failed_expectations,
        "success_percent": outcome.success_percent,
        "failures": MetadataValue.md(outcome.failures_markdown),
        **(outcome.conservation.to_metadata() if outcome.conservation is not None else {}),
    }
    if outcome.volume_anomalies:
        metadata["volume_anomalies"] = outcome.volume_anomalies
    if outcome.docs_path is not None:
        metadata["data_docs"] = MetadataValue.path(str(outcome.docs_path))
    else:
        # The rows are committed by now: a missing page is a warning, not a failed step.
        get_dagster_logger().warning(outcome.docs_problem)
        metadata["data_docs_error"] = MetadataValue.text(outcome.docs_problem or "")
    return AssetCheckResult(
        check_name=CHECK_NAME,
        asset_key=asset_name,
        # A warning fails the check visibly but with severity WARN, which Dagster does not
        # let block the downstream assets; only ERROR stops the KPIs.
        passed=outcome.passed,
        severity=AssetCheckSeverity.ERROR if outcome.blocking else AssetCheckSeverity.WARN,
        metadata=metadata,
    )


def run_quality_check(
    wh: Warehouse,
    table,
    where: ColumnElement | None,
    asset_name: str,
    conservation: Conservation | None = None,
    day_expr: ColumnElement | None = None,
    window: tuple[dt.date, dt.date] | None = None,
    run_id: str = "run",
    time_zone: str | None = None,
    docs_folder: str | None = None,
) -> AssetCheckResult:
    """:func:`quality.checks.check_written_rows` as a Dagster asset check result, with the
    suites of the code location's definitions folder; pages into ``docs_folder``."""
    outcome = check_written_rows(
        wh,
        table,
        where,
        asset_name,
        conservation,
        day_expr,
        window,
        run_id,
        time_zone,
        suites=suites_dir(),
        docs_folder=docs_folder or DEFAULT_QUALITY_DIR,
    )
    return check_result(asset_name, outcome)
