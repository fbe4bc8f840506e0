"""Great Expectations suites run as blocking asset checks on what was just written."""

from __future__ import annotations

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, MetadataValue
from sqlalchemy.sql.elements import ColumnElement

from assets.settings import suites_dir
from kpi.warehouse import Warehouse
from quality.suites import load_suite
from quality.validate import validate_frame

CHECK_NAME = "quality_suite"


def quality_check_spec(asset_name: str) -> AssetCheckSpec:
    return AssetCheckSpec(
        CHECK_NAME,
        asset=asset_name,
        blocking=True,
        description=f"Great Expectations suite kpi_definitions/quality/{asset_name}.yaml "
        "on the rows written by this run; a failure stops the KPIs that read them.",
    )


def run_quality_check(
    wh: Warehouse, table, where: ColumnElement | None, asset_name: str
) -> AssetCheckResult:
    """Validate the rows of ``table`` selected by ``where`` with the asset's suite."""
    import sqlalchemy as sa

    suite = load_suite(suites_dir() / f"{asset_name}.yaml")
    query = sa.select(table)
    if where is not None:
        query = query.where(where)
    frame = wh.read(query)
    report = validate_frame(frame, suite)
    failed_error = [o for o in report.failed if o.severity == "error"]
    return AssetCheckResult(
        check_name=CHECK_NAME,
        asset_key=asset_name,
        passed=report.success,
        severity=AssetCheckSeverity.ERROR if failed_error else AssetCheckSeverity.WARN,
        metadata={
            "rows_checked": report.row_count,
            "expectations": len(report.outcomes),
            "failed_expectations": len(report.failed),
            "success_percent": float(report.success_percent),
            "failures": MetadataValue.md(report.markdown() or "_none_"),
        },
    )
