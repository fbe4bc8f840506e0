"""The one Definitions object of the code location.

Production by default: GA4 is read from the properties of ``GA4_PROPERTY_IDS``. The demo
(``make run``, ``make dev``) sets the one switch ``KPI_DEMO=1``; only then is the demo's
GA4 resource (the local fake server holding the demo data) imported and used. Every setting
comes from :mod:`resources.settings`.
"""

from __future__ import annotations

from dagster import Definitions, in_process_executor

from kpi.publication.report import DEFAULT_REPORT_DIR
from pipelines.assets_list import all_assets
from pipelines.jobs import marketing_kpis_job
from pipelines.run_alerts import run_failure_alert_sensor
from pipelines.schedules import daily_refresh_schedule
from pipelines.sensors import landing_files_sensor
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


def resources(config: Settings) -> dict:
    return {
        "warehouse": WarehouseResource(url=env_var("WAREHOUSE_URL", config.warehouse_url)),
        "ga4": ga4_resource(config),
        "landing": LandingResource(root=env_var("LANDING_ROOT", "data/landing")),
        "notifier": notifier_from_env(),
        "reports": ReportResource(
            folder=env_var("KPI_REPORT_DIR", DEFAULT_REPORT_DIR),
            base_url=env_var("KPI_REPORT_BASE_URL"),
        ),
        "quality": QualityResource(docs_folder=env_var("KPI_QUALITY_DIR", "data/quality")),
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
