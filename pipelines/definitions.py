"""The one Definitions object of the code location.

Production by default: GA4 is read from the properties of ``GA4_PROPERTY_IDS``. The demo
(``make run``, ``make dev``) sets the one switch ``KPI_DEMO=1``; only then is the demo's
GA4 resource (the local fake server holding the demo data) imported and used. Every setting
comes from :mod:`resources.settings`.
"""

from __future__ import annotations

import gc
import os

from dagster import Definitions, EnvVar, in_process_executor

from kpi.publication.report import DEFAULT_REPORT_DIR
from pipelines.assets_list import all_assets
from pipelines.jobs import marketing_kpis_job
from pipelines.run_alerts import run_failure_alert_sensor
from pipelines.schedules import daily_refresh_schedule
from pipelines.sensors import landing_files_sensor
from resources.ad_platforms import GoogleAdsResource, MetaAdsResource
from resources.ga4 import GA4Resource
from resources.landing import LandingResource
from resources.notifier import notifier_from_env
from resources.quality import QualityResource
from resources.reports import ReportResource
from resources.settings import DEMO_SWITCH, Settings, SettingsError, env_var, settings
from resources.warehouse import WarehouseResource


def ga4_resource(config: Settings) -> GA4Resource:
    """The GA4 resource: the demo's when the demo switch is on, production's otherwise."""
    if config.demo:
        # The only import of the demo outside demo/: taken only with the switch on, so the
        # production code location never loads the demo's modules.
        from demo.resources import demo_ga4_resource

        return demo_ga4_resource()
    if not config.ga4_property_ids:
        raise SettingsError(
            "GA4_PROPERTY_IDS is not set: set it to your numeric GA4 property ids "
            f"(comma-separated), or set {DEMO_SWITCH}=1 to run the demo on generated data "
            "from a local fake GA4 server"
        )
    return GA4Resource(
        property_ids=list(config.ga4_property_ids),
        credentials_json=env_var("GA4_CREDENTIALS_JSON"),
        api_endpoint=env_var("GA4_API_ENDPOINT"),
        min_daily_tokens=config.ga4_min_daily_tokens,
    )


def _days(name: str, default: int) -> EnvVar | int:
    return EnvVar.int(name) if os.environ.get(name) else default


def ad_platform_resources(config: Settings) -> dict:
    """Google Ads and Meta: every setting from its environment variable (EnvVar, so secrets
    stay out of run config and the UI); the demo's serve the demo's spend from local fakes
    of both APIs."""
    if config.demo:
        from demo.ad_platforms import demo_ad_platform_resources

        return demo_ad_platform_resources()
    return {
        "google_ads_api": GoogleAdsResource(
            account_ids=env_var("GOOGLE_ADS_CUSTOMER_IDS"),
            developer_token=env_var("GOOGLE_ADS_DEVELOPER_TOKEN"),
            client_id=env_var("GOOGLE_ADS_CLIENT_ID"),
            client_secret=env_var("GOOGLE_ADS_CLIENT_SECRET"),
            refresh_token=env_var("GOOGLE_ADS_REFRESH_TOKEN"),
            login_customer_id=env_var("GOOGLE_ADS_LOGIN_CUSTOMER_ID"),
            endpoint=env_var("GOOGLE_ADS_ENDPOINT"),
            token_uri=env_var("GOOGLE_ADS_TOKEN_URI"),
            repull_days=_days("GOOGLE_ADS_REPULL_DAYS", 30),
        ),
        "meta_api": MetaAdsResource(
            account_ids=env_var("META_AD_ACCOUNT_IDS"),
            access_token=env_var("META_ACCESS_TOKEN"),
            app_id=env_var("META_APP_ID"),
            app_secret=env_var("META_APP_SECRET"),
            graph_url=env_var("META_GRAPH_URL"),
            repull_days=_days("META_REPULL_DAYS", 28),
        ),
    }


def resources(config: Settings) -> dict:
    return {
        "warehouse": WarehouseResource(
            url=env_var("WAREHOUSE_URL", config.warehouse_url),
            postgres_settings=env_var("KPI_POSTGRES_SETTINGS"),
        ),
        "ga4": ga4_resource(config),
        "landing": LandingResource(
            root=env_var("LANDING_ROOT", "data/landing"),
            parse_cache=env_var("KPI_PARSE_CACHE_DIR", "data/cache/parsed"),
        ),
        "notifier": notifier_from_env(),
        "reports": ReportResource(
            folder=env_var("KPI_REPORT_DIR", DEFAULT_REPORT_DIR),
            base_url=env_var("KPI_REPORT_BASE_URL"),
        ),
        "quality": QualityResource(docs_folder=env_var("KPI_QUALITY_DIR", "data/quality")),
        **ad_platform_resources(config),
    }


defs = Definitions(
    assets=all_assets,
    jobs=[marketing_kpis_job],
    schedules=[daily_refresh_schedule],
    sensors=[landing_files_sensor, run_failure_alert_sensor],
    resources=resources(settings()),
    # DuckDB allows one writer per file: the steps of a run (and runs launched from the UI
    # on single assets) execute one after another in one process.
    executor=in_process_executor,
)

# Python's cyclic collector rescans every tracked object whenever the heap has grown by a
# quarter: with Dagster, pandas, SQLAlchemy and the clients loaded, 0.1-0.25 s a pass, about
# a second of a daily run, and more at the process's exit. What is alive once the code
# location is loaded (the modules, the definitions) lives as long as the process, so it is
# moved out of the collector's sight (what Dagster builds from them later, and what runs
# make, is collected as before). The young generations are collected first, so that the
# garbage of the last imports is not frozen with it.
gc.collect(1)
gc.freeze()
