"""Ad platform assets: ``google_ads`` and ``meta_ads``, campaign x day from each platform's
API into ``raw.google_ads`` / ``raw.meta_ads`` (read by the KPIs through ``raw.paid_media``).

A run for the partitions ``first..last`` pulls the platform's re-pull window up to ``last``
(``GOOGLE_ADS_REPULL_DAYS``, default 30; ``META_REPULL_DAYS``, default 28), because both
platforms revise recent days, and replaces exactly those days of the accounts pulled
(``ingest.ad_platforms.loading``). An account whose pull fails keeps its rows; the others
load, then the run fails naming it and what to fix. A platform without accounts configured
is not pulled: the materialization says so, and nothing is written.
"""

import datetime as dt

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    asset,
)

from assets.freshness import DAILY_FRESHNESS
from assets.metadata import table_metadata
from assets.partitions import daily_partitions, monthly_chunks, partition_dates
from assets.quality import CHECK_NAME, check_result, quality_check_spec
from assets.settings import (
    catalog,
    history_start,
    source_code_version,
    suites_dir,
    warehouse_kind,
    warehouse_pool,
)
from ingest.ad_platforms.loading import days_also_in_files, load_campaign_days, repull_window
from ingest.files.loading import FX_RATES
from quality.checks import check_written_rows
from resources.ad_platforms import AdPlatformResource

ONCE_CHECK = "spend_counted_once"

# asset (= source in sources.yaml) -> (resource key, kind shown in the UI, what it is)
AD_PLATFORMS = {
    "google_ads": (
        "google_ads_api",
        "googleads",
        "Google Ads campaigns by day through the official google-ads client "
        "(GoogleAdsService.SearchStream, one GAQL query per customer).",
    ),
    "meta_ads": (
        "meta_api",
        "meta",
        "Meta campaigns by day, by placement, through the official facebook-business client "
        "(Insights API, cursor paging).",
    ),
}


def build_ad_platform_asset(source: str) -> AssetsDefinition:
    resource_key, kind, description = AD_PLATFORMS[source]

    @asset(
        name=source,
        description=f"{description}\n\nEach run re-pulls the platform's revision window up to "
        "its last partition and replaces those days of the accounts pulled, so a revised "
        "day is replaced and a re-run adds nothing. Cost is exact (no float on the way) and "
        "converted to the reporting currency with `fx_rates`; a row without a rate is "
        "quarantined with the reason.",
        partitions_def=daily_partitions,
        backfill_policy=monthly_chunks,
        group_name="raw_ad_platforms",
        owners=["team:data-engineering"],
        kinds={kind, "sql", warehouse_kind()},
        pool=warehouse_pool(),
        deps=[FX_RATES],
        check_specs=[
            quality_check_spec(source),
            AssetCheckSpec(
                ONCE_CHECK,
                asset=source,
                blocking=True,
                description="The landing files hold none of this platform's spend for the "
                "days pulled: raw.paid_media would count it twice (files and API).",
            ),
        ],
        freshness_policy=DAILY_FRESHNESS,
        code_version=source_code_version(source),
        required_resource_keys={"warehouse", "quality", resource_key},
    )
    def _load(context: AssetExecutionContext) -> MaterializeResult:
        platform: AdPlatformResource = getattr(context.resources, resource_key)
        wh = context.resources.warehouse.warehouse
        cat = catalog()
        if not platform.configured:
            note = (
                f"not configured: set {platform_setting(source)} (and the credentials, "
                "README, 'Ad platforms') to pull it; nothing was written"
            )
            context.log.info(f"{source}: {note}")
            return MaterializeResult(
                metadata={"configured": False, "note": note},
                check_results=[
                    AssetCheckResult(
                        check_name=name,
                        asset_key=source,
                        passed=True,
                        metadata={"note": "no accounts configured: nothing to check"},
                    )
                    for name in (CHECK_NAME, ONCE_CHECK)
                ],
            )
        first, last = partition_dates(context)
        start, end = repull_window(
            first, last, platform.repull_days, dt.date.fromisoformat(history_start())
        )
        try:
            pulls, failures = platform.pull(start, end)
        except Exception as error:  # credentials: no account can be pulled
            raise Failure(description=f"{source}: {error}; nothing was loaded or deleted") from None
        load = load_campaign_days(
            wh,
            cat,
            source,
            platform.platform,
            pulls,
            start,
            end,
            context.run.run_id,
            context.log,
            suites=suites_dir(),
        )
        window = load.table.c.date.between(start, end) & load.table.c.account.in_(load.accounts)
        outcome = check_written_rows(
            wh,
            load.table,
            window,
            source,
            load.conservation,
            load.table.c.date,
            (start, end),
            context.run.run_id,
            cat.reporting.time_zone,
            suites=suites_dir(),
            docs_folder=context.resources.quality.docs_folder,
        )
        if failures:
            lines = "; ".join(f"account {a}: {why}" for a, why in sorted(failures.items()))
            loaded = ", ".join(load.accounts) or "none"
            raise Failure(
                description=f"{source}: {len(failures)} account(s) failed ({lines}); the "
                f"others were loaded for {start}..{end} ({loaded}); the failed ones keep "
                "their rows",
                metadata=load.summary(),
            )
        twice = days_also_in_files(wh, cat, platform.platform, start, end)
        once = AssetCheckResult(
            check_name=ONCE_CHECK,
            asset_key=source,
            passed=not twice,
            severity=AssetCheckSeverity.ERROR,
            description=(
                f"the landing files also hold {platform.platform} spend on {len(twice)} "
                f"day(s) ({twice[0]}..{twice[-1]}): remove it from the ad_spend files, or "
                f"stop pulling the platform ({platform_setting(source)})"
                if twice
                else None
            ),
            metadata={"days_in_both": len(twice)},
        )
        return MaterializeResult(
            metadata={**table_metadata(wh, load.table, window), **load.summary()},
            check_results=[check_result(source, outcome), once],
        )

    return _load


def platform_setting(source: str) -> str:
    return {"google_ads": "GOOGLE_ADS_CUSTOMER_IDS", "meta_ads": "META_AD_ACCOUNT_IDS"}[source]


ad_platform_assets = [build_ad_platform_asset(source) for source in AD_PLATFORMS]
