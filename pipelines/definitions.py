"""The one Definitions object of the code location."""

from __future__ import annotations

import os

from dagster import Definitions, EnvVar, in_process_executor

from assets.files.sources import file_assets
from assets.ga4.traffic import ga4_traffic
from assets.ga4.users import ga4_users_monthly
from assets.kpis.tables import (
    kpi_anomalies,
    kpi_catalog,
    kpi_comparisons,
    kpi_periods,
    kpi_targets,
    kpi_values,
)
from pipelines.jobs import marketing_kpis_job
from pipelines.schedules import daily_refresh_schedule
from resources.ga4 import GA4Resource
from resources.landing import LandingResource
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
    }


defs = Definitions(
    assets=[
        ga4_traffic,
        ga4_users_monthly,
        *file_assets,
        kpi_catalog,
        kpi_periods,
        kpi_values,
        kpi_targets,
        kpi_comparisons,
        kpi_anomalies,
    ],
    jobs=[marketing_kpis_job],
    schedules=[daily_refresh_schedule],
    resources=resources(),
    # DuckDB allows one writer per file: the steps of a run (and runs launched from the UI
    # on single assets) execute one after another in one process.
    executor=in_process_executor,
)
