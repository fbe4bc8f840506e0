"""The one Definitions object of the code location."""

from __future__ import annotations

import os

from dagster import Definitions, EnvVar, in_process_executor

from assets.files.sources import file_assets
from assets.ga4.reports import ga4_assets
from assets.kpis.alerts import kpi_alerts
from assets.kpis.report import kpi_report
from assets.kpis.tables import (
    kpi_anomalies,
    kpi_catalog,
    kpi_comparisons,
    kpi_periods,
    kpi_targets,
    kpi_values,
)
from pipelines.jobs import marketing_kpis_job
from pipelines.run_alerts import run_failure_alert_sensor
from pipelines.schedules import daily_refresh_schedule
from pipelines.sensors import landing_files_sensor
from resources.ga4 import GA4Resource
from resources.landing import LandingResource
from resources.notifier import notifier_from_env
from resources.warehouse import WarehouseResource


def _env(name: str, default: str | None = None):
    """``EnvVar(name)`` when the variable is set, so the value stays out of run config."""
    return EnvVar(name) if os.environ.get(name) else default


def ga4_resource() -> GA4Resource:
    """The production GA4 resource when GA4_PROPERTY_IDS is set; the demo otherwise."""
    ids = os.environ.get("GA4_PROPERTY_IDS")
    if ids:
        return GA4Resource(
            property_ids=[p.strip() for p in ids.split(",") if p.strip()],
            credentials_json=_env("GA4_CREDENTIALS_JSON"),
            api_endpoint=_env("GA4_API_ENDPOINT"),
            min_daily_tokens=int(os.environ.get("GA4_MIN_DAILY_TOKENS", "10000")),
        )
    from demo.generator import DEMO_PROPERTY_ID

    return GA4Resource(
        property_ids=[DEMO_PROPERTY_ID],
        api_endpoint=_env("GA4_API_ENDPOINT"),
        serve_demo_data=not os.environ.get("GA4_API_ENDPOINT"),
        demo_start=os.environ.get("DEMO_START"),
        demo_end=os.environ.get("DEMO_END"),
    )


def resources() -> dict:
    return {
        "warehouse": WarehouseResource(
            url=_env("WAREHOUSE_URL", "duckdb:///data/warehouse.duckdb")
        ),
        "ga4": ga4_resource(),
        "landing": LandingResource(root=_env("LANDING_ROOT", "data/landing")),
        "notifier": notifier_from_env(),
    }


defs = Definitions(
    assets=[
        *ga4_assets,
        *file_assets,
        kpi_catalog,
        kpi_periods,
        kpi_values,
        kpi_targets,
        kpi_comparisons,
        kpi_anomalies,
        kpi_report,
        kpi_alerts,
    ],
    jobs=[marketing_kpis_job],
    schedules=[daily_refresh_schedule],
    sensors=[landing_files_sensor, run_failure_alert_sensor],
    resources=resources(),
    # DuckDB allows one writer per file: the steps of a run (and runs launched from the UI
    # on single assets) execute one after another in one process.
    executor=in_process_executor,
)
