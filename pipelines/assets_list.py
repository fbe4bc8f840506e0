"""Every asset of the code location, importable without building its resources (the
backfill CLI needs the asset graph, not a GA4 connection)."""

from __future__ import annotations

from assets.ad_platforms.campaign_days import ad_platform_assets
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

all_assets = [
    *ga4_assets,
    *file_assets,
    *ad_platform_assets,
    kpi_catalog,
    kpi_periods,
    kpi_values,
    kpi_targets,
    kpi_comparisons,
    kpi_anomalies,
    kpi_report,
    kpi_alerts,
]
