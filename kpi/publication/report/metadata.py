"""The report for other viewers: a status table as text columns and one trend as a
Vega-Lite spec (the Dagster run metadata shows both)."""

from __future__ import annotations

import pandas as pd

from kpi.language.models import Unit
from kpi.publication.formatting import NO_HISTORY, STATUS_LABEL, number, percent
from kpi.publication.report.charts import COLORS
from kpi.publication.report.data import ReportData
from kpi.publication.report.judgement import actual_text, attainment, no_history


def summary_frame(data: ReportData) -> pd.DataFrame:
    """The status table as formatted text columns, for a markdown table."""
    rows = []
    for r in data.scorecard.itertuples(index=False):
        meta = data.meta(r.kpi_id, r.kpi_name, r.area)
        band = data.band(r.kpi_id, r.period_start)
        target = number(r.target)
        rows.append(
            {
                "area": r.area,
                "KPI": meta.name,
                "month": f"{r.period_start:%Y-%m}",
                "actual": actual_text(data, meta, r),
                "target": meta.show(target)
                if target is not None or band is None
                else meta.show_range(band[0], band[1]),
                "attainment": attainment(data, meta, r),
                "vs previous": NO_HISTORY
                if no_history(data, r, r.previous, 1)
                else percent(r.change_rel, signed=True),
                "status": STATUS_LABEL.get(r.status, r.status),
            }
        )
    return pd.DataFrame(rows)


def headline_kpi(data: ReportData) -> str | None:
    """The KPI a single chart should show: the first with a goal (a SMART goal marks the KPIs
    the business steers by), else the first with data."""
    candidates = sorted(data.kpis.values(), key=lambda m: (m.goal is None, m.area, m.kpi_id))
    ids = set(data.trends["kpi_id"]) if not data.trends.empty else set()
    with_data = [m for m in candidates if m.kpi_id in ids]
    return with_data[0].kpi_id if with_data else None


def vega_lite_trend(data: ReportData, kpi_id: str) -> dict:
    """A Vega-Lite v5 spec of one KPI's monthly trend, with its target; open month hollow."""
    meta = data.meta(kpi_id)
    values = []
    for r in data.series(kpi_id).itertuples(index=False):
        month = r.period_start.isoformat()
        loaded = data.has_data(kpi_id, r.period_start, r.period_end)
        values.append(
            {
                "month": month,
                "series": "actual",
                # A month without loaded data is a gap, not a 0.
                "value": number(r.actual) if loaded else None,
                "complete": bool(r.is_complete_period),
            }
        )
        target = number(r.target)
        if target is not None:
            values.append(
                {
                    "month": month,
                    "series": "target",
                    "value": target,
                    "complete": bool(r.is_complete_period),
                }
            )
    y_format = ".1%" if meta.unit == Unit.percent else ",.2~f"
    tooltip = [
        {"field": "month", "type": "temporal", "timeUnit": "yearmonth"},
        {"field": "series", "type": "nominal"},
        {"field": "value", "type": "quantitative", "format": y_format},
        {"field": "complete", "type": "nominal"},
    ]
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": f"{meta.name}, monthly (open month to {data.as_of.isoformat()})",
        "width": 480,
        "height": 220,
        "data": {"values": values},
        "encoding": {
            "x": {"field": "month", "type": "temporal", "timeUnit": "yearmonth", "title": None},
            "y": {
                "field": "value",
                "type": "quantitative",
                "title": meta.name,
                "axis": {"format": y_format},
                "scale": {"zero": False},
            },
            "color": {
                "field": "series",
                "type": "nominal",
                "scale": {
                    "domain": ["actual", "target"],
                    "range": [COLORS["actual"], COLORS["target"]],
                },
            },
            "strokeDash": {
                "field": "series",
                "type": "nominal",
                "scale": {"domain": ["actual", "target"], "range": [[1, 0], [6, 4]]},
                "legend": None,
            },
        },
        "layer": [
            {"mark": {"type": "line"}},
            # Two point layers: the open month is drawn hollow, as in the HTML report.
            {
                "transform": [{"filter": "datum.complete"}],
                "mark": {"type": "point", "size": 50, "filled": True},
                "encoding": {"tooltip": tooltip},
            },
            {
                "transform": [{"filter": "!datum.complete"}],
                "mark": {"type": "point", "size": 50, "filled": False},
                "encoding": {"tooltip": tooltip},
            },
        ],
    }
