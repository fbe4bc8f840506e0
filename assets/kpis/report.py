"""The HTML scorecard report, written after every refresh of the KPI comparisons."""

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field

from assets.kpis.tables import KPI_FRESHNESS, OWNERS, catalog_code_version
from assets.metadata import metadata_table
from assets.settings import catalog, warehouse_kind, warehouse_pool
from kpi.compute.tables import KpiTables
from kpi.publication.report import (
    headline_kpi,
    load_report_data,
    render_report,
    summary_frame,
    vega_lite_trend,
    write_report,
)
from resources.reports import ReportResource
from resources.warehouse import WarehouseResource


class ReportConfig(Config):
    folder: str | None = Field(
        default=None,
        description="Folder the report is written to in this run; default: the `reports` "
        "resource's folder (KPI_REPORT_DIR, else data/reports)",
    )
    headline_kpi: str | None = Field(
        default=None,
        description="KPI id of the trend shown in the run metadata; default: the first KPI "
        "with a goal",
    )


@asset(
    code_version=catalog_code_version(),
    group_name="kpis",
    owners=OWNERS,
    kinds={"html", warehouse_kind()},
    pool=warehouse_pool(),
    deps=["kpi_comparisons"],
    # Managers open it every morning, like the tables it is made from.
    freshness_policy=KPI_FRESHNESS,
)
def kpi_report(
    context: AssetExecutionContext,
    config: ReportConfig,
    warehouse: WarehouseResource,
    reports: ReportResource,
) -> MaterializeResult:
    """The scorecard as one self-contained HTML page for managers,
    `scorecard-<as-of date>.html`: status by area (actual, target, attainment, change on the
    previous month and last year, benchmark position), a 13-month trend chart per KPI with its
    target and benchmark and the open month marked, the top movers, and the definition
    versions. Inline CSS and SVG only: it opens offline, in a mail or printed."""
    tables = KpiTables.for_catalog(catalog())
    data = load_report_data(warehouse.warehouse, tables)
    path = write_report(render_report(data), config.folder or reports.folder, data.as_of)
    context.log.info(f"scorecard report written to {path}")

    metadata = {
        "path": MetadataValue.path(str(path.resolve())),
        "report": MetadataValue.url(reports.link(path)),
        "as_of": str(data.as_of),
        "summary": metadata_table(summary_frame(data)),
        "status_counts": data.scorecard["status"].value_counts().to_dict()
        if not data.scorecard.empty
        else {},
    }
    kpi_id = config.headline_kpi or headline_kpi(data)
    if kpi_id is not None:
        if kpi_id not in set(data.trends["kpi_id"]):
            raise ValueError(f"headline_kpi {kpi_id!r} has no monthly values in the warehouse")
        metadata["headline_trend"] = MetadataValue.json(vega_lite_trend(data, kpi_id))
    return MaterializeResult(metadata=metadata)
