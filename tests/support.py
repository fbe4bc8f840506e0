"""Helpers to run the real pipeline in process against real parts."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from dagster import AssetKey, DagsterInstance, Definitions, ExecuteInProcessResult
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from demo.fake_ga4 import FakeGA4Server, FakeProperty
from resources.ad_platforms import GoogleAdsResource, MetaAdsResource
from resources.ga4 import GA4Resource
from resources.landing import LandingResource
from resources.notifier import NotifierResource
from resources.quality import QualityResource
from resources.reports import ReportResource
from resources.warehouse import WarehouseResource

PROPERTY_ID = "123456789"
ZONE = "Europe/Copenhagen"

TRAFFIC_COLUMNS = [
    "date",
    "sessionDefaultChannelGroup",
    "sessionSource",
    "sessionMedium",
    "sessionCampaignName",
    "deviceCategory",
    "sessions",
    "engagedSessions",
    "newUsers",
    "keyEvents",
    "transactions",
    "purchaseRevenue",
]


def traffic_rows(rows: list[tuple]) -> pd.DataFrame:
    """GA4-shaped rows from tuples: (date, channel, device, sessions, engaged, transactions,
    revenue); source/medium/campaign are filled in."""
    records = []
    for day, channel, device, sessions, engaged, transactions, revenue in rows:
        records.append(
            {
                "date": day,
                "sessionDefaultChannelGroup": channel,
                "sessionSource": "google" if "Search" in channel else "(direct)",
                "sessionMedium": "cpc" if channel.startswith("Paid") else "(none)",
                "sessionCampaignName": "spring" if channel.startswith("Paid") else "(direct)",
                "deviceCategory": device,
                "sessions": sessions,
                "engagedSessions": engaged,
                "newUsers": sessions // 2,
                "keyEvents": transactions,
                "transactions": transactions,
                "purchaseRevenue": revenue,
            }
        )
    return pd.DataFrame(records, columns=TRAFFIC_COLUMNS)


def fake_ga4(rows: pd.DataFrame, **kwargs) -> FakeGA4Server:
    prop = FakeProperty(property_id=PROPERTY_ID, rows=rows, time_zone=ZONE, currency_code="EUR")
    return FakeGA4Server([prop], **kwargs)


def run_pipeline(
    warehouse_url: str,
    ga4_endpoint: str,
    landing: Path,
    start: dt.date,
    end: dt.date,
    as_of: dt.date | None = None,
    instance: DagsterInstance | None = None,
    raise_on_error: bool = True,
    assets: Iterable[str] | None = None,
    ad_platforms: dict | None = None,
) -> ExecuteInProcessResult:
    """Run ``marketing_kpis_job`` for the days ``start..end`` with these resources.

    The project's own Definitions are rebuilt around test resources, so the job, assets,
    checks and executor are exactly the ones ``dagster dev`` loads. ``assets`` runs only
    those assets of the job (and their checks), as a user's selection in the UI does; the
    whole job is for tests about the whole job.
    """
    from pipelines import definitions

    resources = {
        "warehouse": WarehouseResource(url=warehouse_url),
        "ga4": GA4Resource(
            property_ids=[PROPERTY_ID], api_endpoint=ga4_endpoint, initial_backoff_s=0.0
        ),
        "landing": LandingResource(root=str(landing)),
        "notifier": NotifierResource(),  # no channel configured: alerts are recorded only
        # The folder conftest gives every test (the production wiring reads the same variable).
        "reports": ReportResource(folder=os.environ.get("KPI_REPORT_DIR", "data/reports")),
        "quality": quality_resource(),
        # Not configured: their assets write nothing (tests of the APIs pass their own).
        "google_ads_api": GoogleAdsResource(),
        "meta_api": MetaAdsResource(),
        **(ad_platforms or {}),
    }
    defs = Definitions(
        assets=list(definitions.defs.assets),
        jobs=list(definitions.defs.jobs),
        executor=definitions.defs.executor,
        resources=resources,
    )
    selection = None if assets is None else [AssetKey(name) for name in assets]
    run_config = {}
    if selection is None or AssetKey("kpi_periods") in selection:
        run_config = {"ops": {"kpi_periods": {"config": {"as_of": (as_of or end).isoformat()}}}}
    return defs.resolve_job_def("marketing_kpis_job").execute_in_process(
        instance=instance,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: start.isoformat(),
            ASSET_PARTITION_RANGE_END_TAG: end.isoformat(),
        },
        run_config=run_config,
        raise_on_error=raise_on_error,
        asset_selection=selection,
    )


def quality_resource() -> QualityResource:
    """The data-docs folder conftest gives every test (``KPI_QUALITY_DIR``, as the production
    wiring reads it)."""
    return QualityResource(docs_folder=os.environ.get("KPI_QUALITY_DIR", "data/quality"))
