"""Raw GA4 traffic, extracted with the official client."""

import datetime as dt

import pandas as pd
import sqlalchemy as sa
from dagster import AssetExecutionContext, MaterializeResult, asset

from assets.metadata import table_metadata
from assets.partitions import daily_partitions, monthly_chunks, partition_dates
from assets.quality import quality_check_spec, run_quality_check
from assets.settings import catalog
from ingest.ga4 import TRAFFIC_REPORT
from kpi.schema import source_table
from resources.ga4 import GA4Resource
from resources.warehouse import WarehouseResource

SOURCE = "ga4_traffic"


@asset(
    partitions_def=daily_partitions,
    backfill_policy=monthly_chunks,
    group_name="raw_ga4",
    owners=["team:data-engineering"],
    kinds={"ga4", "sql"},
    check_specs=[quality_check_spec(SOURCE)],
    tags={"source": "ga4"},
)
def ga4_traffic(
    context: AssetExecutionContext, ga4: GA4Resource, warehouse: WarehouseResource
) -> MaterializeResult:
    """GA4 sessions, engagement and e-commerce by day x channel group x source/medium x
    campaign x device, one row set per property and day (days in the property's time zone).

    Each run replaces the days of its partitions, so re-pulling recent days (GA4 changes
    them for up to 48 hours) updates rows instead of adding them.
    """
    cat = catalog()
    spec = cat.sources[SOURCE]
    table = source_table(SOURCE, spec, sa.MetaData())
    wh = warehouse.warehouse
    wh.ensure_tables([table])
    start, end = partition_dates(context)

    loaded_at = dt.datetime.now(dt.UTC)
    reports = {}
    for property_id in ga4.property_ids:
        result = ga4.run_report(property_id, TRAFFIC_REPORT, start, end)
        if result.time_zone and result.time_zone != cat.reporting.time_zone:
            raise ValueError(
                f"GA4 property {property_id} reports in {result.time_zone}, but "
                f"kpi_definitions/sources.yaml declares {cat.reporting.time_zone}: its dates "
                "would be days in another zone. Align the property or the reporting zone."
            )
        rows = result.rows.copy()
        # An (other) row has no day of its own, so it cannot be put in any daily partition.
        # It is counted and reported here; the load log of #4 will keep it.
        other = rows[rows["is_other_row"]] if "is_other_row" in rows else rows.iloc[:0]
        if len(other):
            context.log.warning(
                f"GA4 property {property_id}: {len(other)} (other) row(s) with "
                f"{int(other['sessions'].sum())} sessions could not be assigned to a day"
            )
        rows = rows[~rows["is_other_row"]] if "is_other_row" in rows else rows
        rows["property_id"] = property_id
        rows["_source_file"] = f"ga4:properties/{property_id}/{TRAFFIC_REPORT.name}"
        rows["_source_line"] = pd.Series(range(1, len(rows) + 1), dtype="int64")
        rows["_run_id"] = context.run.run_id
        rows["_loaded_at"] = loaded_at
        rows = rows[[c for c in rows.columns if c in table.c]]
        in_window = (table.c.property_id == property_id) & table.c.date.between(start, end)
        deleted, inserted = wh.replace_rows(table, in_window, rows)
        reports[property_id] = {
            "rows": inserted,
            "replaced": deleted,
            "pages": result.pages,
            "requests": result.requests,
            "time_zone": result.time_zone,
            "currency": result.currency_code,
            "sampled": result.sampled,
            "thresholded": result.thresholded,
            "data_loss_from_other_row": result.data_loss_from_other_row,
            "other_rows": len(other),
            "quota": result.quota,
        }
        context.log.info(
            f"GA4 property {property_id}: {inserted} rows for {start}..{end} "
            f"({result.pages} page(s), replaced {deleted})"
        )

    window = table.c.date.between(start, end)
    check = run_quality_check(wh, table, window, SOURCE)
    return MaterializeResult(
        metadata={
            **table_metadata(wh, table, window, order_by=[table.c.date]),
            "window": f"{start}..{end}",
            "properties": reports,
        },
        check_results=[check],
    )
