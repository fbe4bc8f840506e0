"""Raw tables loaded from landing files (CSV or Parquet), one asset per declared source."""

import datetime as dt

import sqlalchemy as sa
from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, asset

from assets.metadata import table_metadata
from assets.partitions import daily_partitions, monthly_chunks, partition_dates
from assets.quality import quality_check_spec, run_quality_check
from assets.settings import catalog
from ingest.files import convert_currency, landing_files, read_source_files, rows_between
from kpi.compiler import local_date
from kpi.schema import source_table
from kpi.warehouse import Warehouse
from resources.landing import LandingResource
from resources.warehouse import WarehouseResource

FILE_SOURCES = {
    "fx_rates": "Daily exchange rates into the reporting currency.",
    "ad_spend": "Ad platform spend by day, platform and campaign, in the reporting currency.",
    "orders": "Shop orders, one row per order, by order time.",
    "survey_answers": "Customer survey answers (CSAT 1-5, NPS 0-10).",
    "donations": "Donations, one row per gift, by donation time.",
    "volunteer_hours": "Volunteer shifts and their hours, from the volunteer log.",
    "operations": "Output units and hours worked per team and working day.",
    "market": "Revenue of the whole market per month, from an industry report.",
}


def _day_of(table: sa.Table, name: str) -> sa.ColumnElement:
    spec = catalog().sources[name]
    col = table.c[spec.time.column]
    if spec.time.type == "date":
        return col
    return local_date(col, sa.literal(catalog().reporting.time_zone))


def _rates(wh: Warehouse) -> sa.Table:
    return source_table("fx_rates", catalog().sources["fx_rates"], sa.MetaData())


def build_file_asset(name: str, description: str) -> AssetsDefinition:
    spec = catalog().sources[name]
    deps = ["fx_rates"] if spec.currency_conversion else []

    @asset(
        name=name,
        description=f"{description}\n\nLoaded from `{spec.landing}/` in the landing folder; "
        "each run replaces the days of its partitions, so reloading never duplicates rows.",
        partitions_def=daily_partitions,
        backfill_policy=monthly_chunks,
        group_name="raw_files",
        owners=["team:data-engineering"],
        kinds={"csv", "sql"},
        deps=deps,
        check_specs=[quality_check_spec(name)],
    )
    def _load(
        context: AssetExecutionContext, landing: LandingResource, warehouse: WarehouseResource
    ) -> MaterializeResult:
        cat = catalog()
        table = source_table(name, spec, sa.MetaData())
        wh = warehouse.warehouse
        wh.ensure_tables([table])
        start, end = partition_dates(context)
        files = landing_files(landing.path, spec)
        frame = rows_between(
            read_source_files(files, spec), spec, cat.reporting.time_zone, start, end
        )
        if spec.currency_conversion is not None:
            rates_table = _rates(wh)
            rates = wh.read(sa.select(rates_table).where(rates_table.c.date.between(start, end)))
            frame = convert_currency(frame, spec, rates, cat.reporting.currency)
        frame = frame.assign(_run_id=context.run.run_id, _loaded_at=dt.datetime.now(dt.UTC))
        window = _day_of(table, name).between(start, end)
        deleted, inserted = wh.replace_rows(table, window, frame)
        context.log.info(f"{name}: {inserted} rows for {start}..{end} from {len(files)} file(s)")
        check = run_quality_check(wh, table, window, name)
        return MaterializeResult(
            metadata={
                **table_metadata(wh, table, window),
                "window": f"{start}..{end}",
                "files_read": len(files),
                "rows_loaded": inserted,
                "rows_replaced": deleted,
            },
            check_results=[check],
        )

    return _load


file_assets = [build_file_asset(name, text) for name, text in FILE_SOURCES.items()]
