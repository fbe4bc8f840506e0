"""The HTML scorecard report: one self-contained page a manager can open, mail or print.

The page has a status table by area, a monthly trend chart per KPI (target line, benchmark
band, the open period marked), the top movers against the previous complete month, and the
definition versions behind the numbers. Everything is inline (CSS and SVG), so the file
opens offline and shows the same everywhere: no scripts, fonts or network.

- ``data``: what is read from the warehouse (two small result sets and the data coverage);
- ``judgement``: what the report says about each KPI (better / worse, gaps, movers);
- ``charts``: the trend charts as inline SVG;
- ``render``: the page, from the Jinja2 templates in ``templates/`` (autoescaped);
- ``writer``: the file, ``<folder>/scorecard-<as-of>.html``;
- ``metadata``: the status table and one trend for the Dagster run metadata.
"""

from kpi.publication.report.charts import COLORS, axis_label, trend_svg
from kpi.publication.report.data import (
    TREND_MONTHS,
    KpiMeta,
    ReportData,
    load_report_data,
    trend_select,
    warehouse_as_of,
)
from kpi.publication.report.judgement import (
    MIN_MOVE,
    TOP_MOVERS,
    judge_benchmark,
    judge_change,
    stale_definitions,
    top_movers,
)
from kpi.publication.report.metadata import headline_kpi, summary_frame, vega_lite_trend
from kpi.publication.report.render import build_report, render_report
from kpi.publication.report.writer import DEFAULT_REPORT_DIR, report_path, write_report

__all__ = [
    "COLORS",
    "DEFAULT_REPORT_DIR",
    "MIN_MOVE",
    "TOP_MOVERS",
    "TREND_MONTHS",
    "KpiMeta",
    "ReportData",
    "axis_label",
    "build_report",
    "headline_kpi",
    "judge_benchmark",
    "judge_change",
    "load_report_data",
    "render_report",
    "report_path",
    "stale_definitions",
    "summary_frame",
    "top_movers",
    "trend_select",
    "trend_svg",
    "vega_lite_trend",
    "warehouse_as_of",
    "write_report",
]
