"""GA4 user counts by month: users are not additive across days, so they come from a
report at month grain instead of being summed from daily rows."""

import datetime as dt

import pandas as pd
import sqlalchemy as sa
from dagster import AssetExecutionContext, MaterializeResult, asset

from assets.metadata import table_metadata
from assets.partitions import daily_partitions, monthly_chunks, partition_dates
from assets.quality import quality_check_spec, run_quality_check
from assets.settings import catalog
from ingest.ga4 import USERS_MONTHLY_REPORT
from kpi.schema import source_table
from resources.ga4 import GA4Resource
from resources.warehouse import WarehouseResource

SOURCE = "ga4_users_monthly"


@asset(
    partitions_def=daily_partitions,
    backfill_policy=monthly_chunks,
    group_name="raw_ga4",
    owners=["team:data-engineering"],
    kinds={"ga4", "sql"},
    check_specs=[quality_check_spec(SOURCE)],
    tags={"source": "ga4"},
)
def ga4_users_monthly(
    context: AssetExecutionContext, ga4: GA4Resource, warehouse: WarehouseResource
) -> MaterializeResult:
    """Total, new and active users per property and month (to date for the open month),
    pulled from GA4 at month grain because distinct users cannot be summed over days.

    A run for any day of a month re-pulls that month from its first day, so the open
    month's users are always counted over the whole month to date."""
    spec = catalog().sources[SOURCE]
    table = source_table(SOURCE, spec, sa.MetaData())
    wh = warehouse.warehouse
    wh.ensure_tables([table])
    start, end = partition_dates(context)
    month_start = start.replace(day=1)
    loaded_at = dt.datetime.now(dt.UTC)
    for property_id in ga4.property_ids:
        result = ga4.run_report(property_id, USERS_MONTHLY_REPORT, month_start, end)
        rows = result.rows[~result.rows["is_other_row"]].rename(columns={"year_month": "month"})
        rows = rows.assign(
            property_id=property_id,
            _source_file=f"ga4:properties/{property_id}/{USERS_MONTHLY_REPORT.name}",
            _source_line=pd.Series(range(1, len(rows) + 1), dtype="int64", index=rows.index),
            _run_id=context.run.run_id,
            _loaded_at=loaded_at,
        )
        rows = rows[[c for c in rows.columns if c in table.c]]
        months = (table.c.property_id == property_id) & table.c.month.between(month_start, end)
        deleted, inserted = wh.replace_rows(table, months, rows)
        context.log.info(
            f"GA4 property {property_id}: {inserted} month(s) of users (replaced {deleted})"
        )
    window = table.c.month.between(month_start, end)
    return MaterializeResult(
        metadata={**table_metadata(wh, table, window), "months": f"{month_start}..{end}"},
        check_results=[run_quality_check(wh, table, window, SOURCE)],
    )
