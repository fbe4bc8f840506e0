"""The report page: what each part shows (worked out here) in the markup of the Jinja2
templates next to this module (``templates/``), autoescaped.

Every text from the data or the definitions reaches the page through the templates' escaping,
once; the charts arrive as ``Markup`` from ``charts``, which escapes its own texts. The page is
self-contained (inline CSS and SVG): it opens offline, in a mail or printed.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import dataclass
from typing import Any

import jinja2
import pandas as pd
from jinja2.ext import Extension
from markupsafe import Markup

from kpi.compute.periods import add_months
from kpi.compute.tables import KpiTables
from kpi.language.models import Direction, Unit
from kpi.publication.formatting import (
    DASH,
    NO_HISTORY,
    STATUS_ICON,
    STATUS_LABEL,
    STATUS_ORDER,
    month_label,
    number,
    percent,
    points,
)
from kpi.publication.report.charts import trend_svg
from kpi.publication.report.data import TREND_MONTHS, KpiMeta, ReportData, load_report_data
from kpi.publication.report.judgement import (
    MIN_MOVE,
    actual_text,
    attainment,
    change,
    gap,
    in_band,
    judge_benchmark,
    judge_change,
    no_history,
    stale_definitions,
    stored_versions,
    top_movers,
)
from kpi.status.target_gap import gap_text, gap_verdict
from kpi.warehouse.connection import Warehouse

_COMPACT = "{# compact"
_DAY = dt.timedelta(days=1)


class _Compact(Extension):
    """A template starting ``{# compact`` is written over many lines for reading; its line
    breaks and the indentation after them are removed before it is compiled, so the page
    has no whitespace between the table cells and spans (``{{ " " }}`` where one is meant)."""

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        return re.sub(r"\n[ \t]*", "", source) if source.startswith(_COMPACT) else source


def _escaped(value: object) -> object:
    """Text escaped as the report always was (``html.escape``: ``&#x27;`` and ``&quot;``),
    so a page renders byte for byte as before; ``Markup`` (the charts) passes as it is."""
    if hasattr(value, "__html__"):
        return value
    return Markup(html.escape(str(value)))


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("kpi.publication.report", "templates"),
    autoescape=True,
    finalize=_escaped,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    extensions=[_Compact],
)
_ENV.globals.update(DASH=DASH, STATUS_ICON=STATUS_ICON, STATUS_LABEL=STATUS_LABEL)

_UNIT_WORDS = {
    Unit.percent: "percent",
    Unit.count: "count",
    Unit.seconds: "seconds",
    Unit.ratio: "ratio",
}
_DIRECTION_WORDS = {
    Direction.higher_is_better: "higher is better",
    Direction.lower_is_better: "lower is better",
    Direction.within_band: "best within the target band",
}


@dataclass(frozen=True)
class ChangeCell:
    """A change as a table cell: ``arrow`` None means there is no change to show, only
    ``text`` (a dash, or "no history")."""

    text: str
    arrow: str | None = None
    css: str = "steady"
    word: str | None = None


def change_cell(
    value,
    verdict: str | None,
    inside_band: bool = False,
    without_history: bool = False,
    in_points: bool = False,
) -> ChangeCell:
    """A relative change (or, with ``in_points``, a difference of rates in percentage points)
    with its arrow and, in words, whether it is good news.

    ``without_history``: the period compared with lies (partly) before the first day of
    data, so there is nothing to compare with; said in words, never shown as a change from 0."""
    if without_history:
        return ChangeCell(NO_HISTORY)
    value = number(value)
    if value is None:
        return ChangeCell(DASH)
    arrow = "\u25b2" if value > 0 else ("\u25bc" if value < 0 else "")
    # A within-band KPI moving inside its band is neither better nor worse: say where it is.
    word = "in band" if verdict == "steady" and inside_band else verdict
    text = points(value) if in_points else percent(value, signed=True)
    return ChangeCell(text, arrow, verdict or "steady", word or None)


def _target_text(meta: KpiMeta, row, band: tuple[float, float] | None) -> str:
    target = number(row.target)
    if target is not None:
        return meta.show(target)
    if band is not None:
        return meta.show_range(band[0], band[1])
    return DASH


def _benchmark(meta: KpiMeta, r) -> dict | None:
    position = r.benchmark_position if isinstance(r.benchmark_position, str) else None
    if not position:
        return None
    if number(r.benchmark_min) is not None:
        reference = meta.show_range(r.benchmark_min, r.benchmark_max)
    else:
        reference = meta.show(r.benchmark_value)
    return {
        "position": position,
        "verdict": judge_benchmark(meta.direction, position) or "steady",
        "reference": reference,
        "example": meta.benchmark_example,
    }


def _status_row(data: ReportData, r) -> dict:
    meta = data.meta(r.kpi_id, r.kpi_name, r.area)
    band = data.band(r.kpi_id, r.period_start)
    actual = number(r.actual)
    loaded = data.has_data(r.kpi_id, r.period_start, r.period_end)
    no_prev, no_ly = (
        loaded and actual is not None and no_history(data, r, before, back)
        for before, back in ((r.previous, 1), (r.last_year, 12))
    )
    inside = in_band(meta, actual, band)
    target = _target_text(meta, r, band)
    row_gap = gap(data, meta, r)
    words = gap_text(row_gap, meta.unit, meta.show, meta.is_growth, meta.direction)
    return {
        "name": meta.name,
        "month": f"{r.period_start:%b %Y}",
        "actual": actual_text(data, meta, r),
        "target": target,
        "target_example": meta.target_example and target != DASH,
        "attainment": attainment(data, meta, r) if loaded else None,
        "gap_words": words,
        "gap_verdict": gap_verdict(row_gap),
        "vs_previous": change_cell(
            change(meta, r, r.previous, r.change_rel),
            judge_change(meta.direction, r.actual, r.previous, band),
            inside,
            no_prev,
            meta.is_growth,
        ),
        "vs_last_year": change_cell(
            change(meta, r, r.last_year, r.change_ly_rel),
            judge_change(meta.direction, r.actual, r.last_year, band),
            inside,
            no_ly,
            meta.is_growth,
        ),
        "benchmark": _benchmark(meta, r),
        "status": r.status,
    }


def _status_areas(data: ReportData) -> list[tuple[str, list[dict]]]:
    if data.scorecard.empty:
        return []
    return [
        (str(area).replace("_", " "), [_status_row(data, r) for r in group.itertuples(index=False)])
        for area, group in data.scorecard.groupby("area", sort=True)
    ]


def _movers(data: ReportData, frame: pd.DataFrame) -> list[dict]:
    rows = []
    for r in frame.itertuples(index=False):
        meta = data.meta(r.kpi_id)
        rows.append(
            {
                "name": meta.name,
                "change": change_cell(r.change_rel, r.verdict),
                "previous": meta.show(r.previous),
                "actual": meta.show(r.actual),
                "area": str(meta.area).replace("_", " "),
            }
        )
    return rows


def _chart_areas(data: ReportData) -> list[tuple[str, list[dict]]]:
    in_warehouse = {
        r.kpi_id: data.meta(r.kpi_id, r.kpi_name, r.area)
        for r in data.trends.drop_duplicates("kpi_id").itertuples(index=False)
    }
    metas = sorted({**in_warehouse, **data.kpis}.values(), key=lambda m: (m.area, m.name.lower()))
    latest = {r.kpi_id: r for r in data.scorecard.itertuples(index=False)}
    areas = []
    for area in sorted({m.area for m in metas}):
        figures = []
        for meta in (m for m in metas if m.area == area):
            row = latest.get(meta.kpi_id)
            figures.append(
                {
                    "kpi_id": meta.kpi_id,
                    "name": meta.name,
                    "month": f"{row.period_start:%b %Y}" if row is not None else None,
                    "actual": actual_text(data, meta, row) if row is not None else None,
                    "status": row.status if row is not None else None,
                    "unit": meta.currency if meta.unit == Unit.currency else _UNIT_WORDS[meta.unit],
                    "better": _DIRECTION_WORDS[meta.direction],
                    "svg": trend_svg(
                        meta,
                        data.series(meta.kpi_id),
                        data.months,
                        data.as_of,
                        data.coverage.get(meta.kpi_id),
                    ),
                }
            )
        areas.append((area.replace("_", " "), figures))
    return areas


def _definitions(data: ReportData) -> list[dict]:
    stored, stale = stored_versions(data), stale_definitions(data)
    return [
        {
            "name": meta.name,
            "area": meta.area.replace("_", " "),
            "version": meta.version or DASH,
            # The hash the numbers were computed with is the one that explains them.
            "hashes": ", ".join(stored.get(meta.kpi_id, [])) or meta.definition_version or DASH,
            "changed_to": (meta.definition_version or "") if meta.kpi_id in stale else None,
            "owner": meta.owner,
            "description": meta.description,
        }
        for meta in sorted(data.kpis.values(), key=lambda m: (m.area, m.name.lower()))
    ]


def _as_of_note(data: ReportData) -> str:
    """Where the loaded data ends before the KPI tables' as-of date, say so, per source."""
    through, lagging = data.data_through(), data.lagging_sources()
    parts = []
    if through < data.as_of:
        parts.append(f"the last day with loaded data; the KPI tables run to {data.as_of:%d %B}")
    if lagging:
        ends = ", ".join(
            f"{name.replace('_', ' ')} {'has none' if last is None else f'to {last:%d %B}'}"
            for name, last in lagging.items()
        )
        parts.append(f"sources behind: {ends}")
    return "; ".join(parts)


def page_context(data: ReportData, generated_at: dt.datetime) -> dict[str, Any]:
    """Everything the page template shows, worked out from ``data``."""
    card = data.scorecard
    counts = card["status"].value_counts().to_dict() if not card.empty else {}
    latest = max(card["period_start"]) if not card.empty else None
    last_month = data.months[-1]
    open_month = last_month if data.as_of < add_months(last_month, 1) - _DAY else None
    through = data.data_through()
    better, worse = top_movers(data)
    targets = sum(m.target_example for m in data.kpis.values())
    benchmarks = sum(m.benchmark_example for m in data.kpis.values())
    stale = stale_definitions(data)
    return {
        "as_of": data.as_of,
        "through": through,
        "as_of_note": _as_of_note(data),
        "latest_month": month_label(latest, True) if latest else None,
        "open_month": month_label(open_month, True) if open_month is not None else None,
        "open_empty": open_month is not None and through < open_month,
        "summary": [(str(s), counts[s]) for s in STATUS_ORDER if counts.get(s)],
        "examples": {"targets": targets, "benchmarks": benchmarks, "kpis": len(data.kpis)}
        if targets or benchmarks
        else None,
        "stale_names": sorted(data.kpis[k].name for k in stale),
        "movers_period": month_label(latest, True) if latest else "the latest month",
        "min_move": f"{MIN_MOVE:.0%}",
        "better": _movers(data, better),
        "worse": _movers(data, worse),
        "status_areas": _status_areas(data),
        "trend_months": TREND_MONTHS,
        "chart_areas": _chart_areas(data),
        "definitions": _definitions(data),
        "generated_at": generated_at,
        "dialect": data.dialect,
    }


def render_report(data: ReportData, generated_at: dt.datetime | None = None) -> str:
    """The report page as one HTML string."""
    generated_at = (generated_at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return _ENV.get_template("report.html.j2").render(page_context(data, generated_at))


def build_report(wh: Warehouse, tables: KpiTables, as_of: dt.date | None = None) -> str:
    """The HTML report of the warehouse's KPI tables as of ``as_of`` (default: the date the
    tables were computed through)."""
    return render_report(load_report_data(wh, tables, as_of))
