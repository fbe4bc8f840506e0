"""GA4 assets: one per report of ``kpi_definitions/ga4/reports.yaml``, named after its table's
source in ``sources.yaml`` (``ga4_traffic``, ``ga4_ecommerce``, ``ga4_users_weekly``, ...).

A run for the days ``first..last`` loads the report for every property with
:func:`ingest.ga4.loading.load_report` (one request per period of the report's grain, each
period replaced whole, every request in ``raw.ga4_load_log``); this module wraps it in Dagster:
the partitions, the run's log, the failure, the checks and the metadata.

Time zones: GA4 reports each property's days in the property's own time zone and offers no
way to ask for another. A partition ``2026-03-01`` therefore loads, for each property, its
own 1 March. A property whose zone is not the reporting zone is loaded all the same (its zone
is in the load log); the non-blocking ``ga4_flags`` check then warns, because its days are not
the reporting zone's days. Currency works the same way.

Failures: a property that fails (no permission, quota gone, retries exhausted, or a write
whose rows do not add up: received != loaded + quarantined) does not stop the other
properties; once all are done the run fails with a ``Failure`` naming each failed property,
the cause and what was and was not loaded. The periods already loaded stay loaded.
"""

from functools import cache
from pathlib import Path

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.freshness import DAILY_FRESHNESS
from assets.metadata import metadata_table, table_metadata
from assets.partitions import daily_partitions, monthly_chunks, partition_dates
from assets.quality import quality_check_spec, run_quality_check
from assets.settings import (
    catalog,
    definitions_dir,
    source_code_version,
    suites_dir,
    warehouse_kind,
    warehouse_pool,
)
from ingest.ga4.load_log import STATUS_LOADED
from ingest.ga4.loading import GA4LoadError
from ingest.ga4.loading import load_report as load_ga4_report
from ingest.ga4.reports import GA4Report, load_reports, table_declarations
from kpi.language.models import Reporting
from kpi.warehouse.connection import Warehouse
from resources.ga4 import GA4Resource
from resources.quality import QualityResource
from resources.warehouse import WarehouseResource

# Beside the area files, not among them: the KPI catalog reads every top-level *.yaml.
REPORTS_FILE = Path("ga4") / "reports.yaml"
FLAGS_CHECK = "ga4_flags"
_LOG_PREVIEW_COLUMNS = [
    "property_id",
    "date",
    "status",
    "rows",
    "other_rows",
    "pages",
    "requests",
    "time_zone",
    "currency_code",
    "period_complete",
    "sampled",
    "sampling_ratio",
    "thresholded",
    "data_loss_from_other_row",
    "tokens_per_day_consumed",
    "tokens_per_day_remaining",
    "tokens_per_hour_remaining",
    "error",
]
_LOG_PREVIEW_ROWS = 100


def reports_path() -> Path:
    """``ga4/reports.yaml`` in the definitions folder (``KPI_DEFINITIONS_DIR``)."""
    return definitions_dir() / REPORTS_FILE


@cache
def ga4_reports() -> dict[str, GA4Report]:
    """The checked reports; a bad file raises here, so the code location fails to load."""
    cat = catalog()
    return load_reports(
        reports_path(), table_declarations(cat), week_start=cat.reporting.week_start
    )


def flags_check_spec(source: str) -> AssetCheckSpec:
    return AssetCheckSpec(
        FLAGS_CHECK,
        asset=source,
        blocking=False,
        description="Warns (never blocks) when GA4 sampled or thresholded the data, folded "
        "rows into (other), reported a day that was not over yet in the property's time zone, "
        "or when a property's time zone or currency is not the reporting one.",
    )


def build_ga4_asset(report: GA4Report) -> AssetsDefinition:
    """The partitioned asset loading ``report`` into its table."""
    grain_text = {
        "day": "one request per property and day",
        "week": "one request per property and ISO week touched by the run, pulled whole",
        "month": "one request per property and month touched by the run, pulled whole",
    }[report.grain]

    @asset(
        name=report.source,
        description=(
            f"{report.description}\n\nGA4 report `{report.name}` "
            f"({report.file.name}): {grain_text}, days in the property's time zone; each run "
            f"replaces the periods it pulls in `{report.table.table}` and logs every request in "
            "`raw.ga4_load_log`."
        ),
        partitions_def=daily_partitions,
        backfill_policy=monthly_chunks,
        group_name="raw_ga4",
        owners=["team:data-engineering"],
        kinds={"ga4", "sql", warehouse_kind()},
        check_specs=[quality_check_spec(report.source), flags_check_spec(report.source)],
        tags={"source": "ga4"},
        # Steps calling the GA4 API share the `ga4` pool across runs (deploy/dagster.yaml); on
        # DuckDB the warehouse's one-writer pool, which also keeps GA4 calls to one run.
        pool=warehouse_pool("ga4"),
        freshness_policy=DAILY_FRESHNESS,
        code_version=source_code_version(report.source),
        metadata={
            "ga4_report": report.name,
            "ga4_dimensions": ", ".join(report.spec.dimensions),
            "ga4_metrics": ", ".join(report.spec.metrics),
            "grain": report.grain,
        },
    )
    def _ga4_asset(
        context: AssetExecutionContext,
        ga4: GA4Resource,
        warehouse: WarehouseResource,
        quality: QualityResource,
    ) -> MaterializeResult:
        return load_report(context, ga4, warehouse.warehouse, report, quality.docs_folder)

    return _ga4_asset


def load_report(
    context: AssetExecutionContext,
    ga4: GA4Resource,
    wh: Warehouse,
    report: GA4Report,
    docs_folder: str | None = None,
) -> MaterializeResult:
    """Load ``report`` for the run's partitions and every property; see the module docstring."""
    cat = catalog()
    first, last = partition_dates(context)
    run_id = context.run.run_id
    try:
        load = load_ga4_report(
            wh,
            ga4,
            report,
            cat.sources[report.source],
            first,
            last,
            run_id=run_id,
            time_zone=cat.reporting.time_zone,
            log=context.log,
            suites=suites_dir(),
        )
    except GA4LoadError as error:
        raise Failure(
            description=error.description,
            metadata={"ga4_load_log": _log_table(error.log), "run_id": run_id},
            # The client already retried what is worth retrying; another step attempt would
            # only spend more quota on a permission or quota problem.
            allow_retries=False,
        ) from None

    table, buckets = load.table, load.buckets
    time_column = table.c[cat.sources[report.source].time.column]
    keys = [b.key for b in buckets]
    window = time_column.between(min(keys), max(keys))
    check = run_quality_check(
        wh,
        table,
        window,
        report.source,
        load.conservation,
        time_column,
        (min(keys), max(keys)),
        run_id,
        docs_folder=docs_folder,
    )
    return MaterializeResult(
        metadata={
            **table_metadata(wh, table, window, order_by=[time_column]),
            "window": f"{first}..{last}",
            "periods": f"{len(buckets)} {report.grain}(s) {buckets[0].start}..{buckets[-1].end}",
            "properties": list(ga4.property_ids),
            **load.conservation.to_metadata(),
            "ga4_load_log": _log_table(load.log),
            "ga4_requests": len(load.log),
        },
        check_results=[check, flags_result(report, load.log, cat.reporting)],
    )


def _log_table(frame: pd.DataFrame) -> MetadataValue:
    """The run's first requests (every one is in raw.ga4_load_log; ``ga4_requests`` counts them)."""
    shown = frame.reindex(columns=_LOG_PREVIEW_COLUMNS).copy()
    shown["error"] = shown["error"].map(lambda e: e if e is None else str(e)[:120])
    return metadata_table(shown, max_rows=_LOG_PREVIEW_ROWS)


def flags_result(report: GA4Report, log: pd.DataFrame, reporting: Reporting) -> AssetCheckResult:
    """WARN when the loaded data is doubtful, or not in the reporting zone or currency."""
    loaded = log[log["status"] == STATUS_LOADED]
    issues: list[str] = []
    for property_id, rows in loaded.groupby("property_id", sort=True):
        zones = sorted({z for z in rows["time_zone"] if isinstance(z, str)})
        if zones and zones != [reporting.time_zone]:
            issues.append(
                f"property {property_id} reports in {', '.join(zones)}, not the reporting zone "
                f"{reporting.time_zone}: its dates are its own calendar days"
            )
        currencies = sorted({c for c in rows["currency_code"] if isinstance(c, str)})
        if currencies and currencies != [reporting.currency]:
            issues.append(
                f"property {property_id} reports money in {', '.join(currencies)}, not "
                f"{reporting.currency}: revenue columns are not converted"
            )
        for column, what in (
            ("sampled", "sampled"),
            ("thresholded", "thresholded (rows withheld for privacy)"),
            ("data_loss_from_other_row", "partly folded into the (other) row"),
        ):
            dates = [str(d) for d in rows.loc[rows[column].fillna(False).astype(bool), "date"]]
            if dates:
                issues.append(f"property {property_id}: {what} on {_dates_text(dates)}")
        if report.grain == "day":
            open_days = [str(d) for d in rows.loc[rows["period_complete"].eq(False), "date"]]
            if open_days:
                issues.append(
                    f"property {property_id}: {_dates_text(open_days)} not over yet in "
                    f"{', '.join(zones)} when pulled; the next run's lookback re-pulls it"
                )
    return AssetCheckResult(
        check_name=FLAGS_CHECK,
        asset_key=report.source,
        passed=not issues,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "issues": MetadataValue.md("\n".join(f"- {i}" for i in issues) or "_none_"),
            "issue_count": len(issues),
        },
    )


def _dates_text(dates: list[str]) -> str:
    shown = ", ".join(dates[:5])
    return shown + (f" and {len(dates) - 5} more" if len(dates) > 5 else "")


ga4_assets: list[AssetsDefinition] = [build_ga4_asset(r) for r in ga4_reports().values()]
GA4_ASSETS: dict[str, AssetsDefinition] = {a.key.to_user_string(): a for a in ga4_assets}
