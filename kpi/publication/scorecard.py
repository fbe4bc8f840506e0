"""The scorecard: the latest complete period of each KPI, as managers read it."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from kpi.language.catalog import Catalog
from kpi.language.models import KpiType
from kpi.publication.catalog_tables import scorecard_select
from kpi.publication.formatting import format_value, percent, points, status_mark
from kpi.warehouse.connection import Warehouse


def latest_scorecard(
    wh: Warehouse, comparisons: sa.Table, dimensions: list[str], grain: str = "month"
) -> pd.DataFrame:
    """The total row of each KPI's latest complete period at ``grain``, sorted by area."""
    return wh.read(scorecard_select(comparisons, dimensions, grain))


def render(frame: pd.DataFrame, catalog: Catalog) -> str:
    """A plain-text table: KPI, period, value, target, previous, change, status."""
    headers = ["area", "KPI", "period", "value", "target", "vs previous", "status"]
    rows = []
    for r in frame.itertuples():
        kpi = catalog.kpis[r.kpi_id]
        currency = kpi.currency or catalog.reporting.currency
        change = "-" if pd.isna(r.change_rel) else percent(r.change_rel, signed=True)
        if kpi.type == KpiType.period_over_period:
            # A growth rate moves in points: 33.4% after 4.9% is +28.4 pp, not +576%.
            gone = pd.isna(r.actual) or pd.isna(r.previous)
            change = "-" if gone else points(r.actual - r.previous)
        if pd.isna(r.previous) and not pd.isna(r.actual):
            # The previous period lies before the data: nothing to compare with, not a 0.
            change = "no history"
        target = format_value(r.target, kpi.unit, currency, kpi.format)
        if kpi.target is not None and kpi.target.band is not None:
            band = kpi.target.band
            low = format_value(band.min, kpi.unit, currency, kpi.format)
            target = f"{low} .. {format_value(band.max, kpi.unit, currency, kpi.format)}"
        rows.append(
            [
                r.area,
                kpi.name,
                f"{r.period_start:%Y-%m}",
                format_value(r.actual, kpi.unit, currency, kpi.format),
                target,
                change,
                status_mark(r.status),
            ]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)), line]
    out += ["  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(out)
