"""The trend charts of the report: inline SVG drawn here, so the page opens offline and
looks the same everywhere (no scripts, fonts, CDN or network).

Every text that comes from the data or the definitions is escaped here, once: the chart is
handed to the templates as ``Markup``.
"""

from __future__ import annotations

import datetime as dt
import math
from html import escape

import pandas as pd
from markupsafe import Markup

from kpi.compute.coverage import Coverage
from kpi.language.models import Unit
from kpi.publication.formatting import month_label, number, status_label
from kpi.publication.report.data import KpiMeta

CHART_W, CHART_H = 440, 220
_M_LEFT, _M_RIGHT, _M_TOP, _M_BOTTOM = 56, 14, 24, 34
COLORS = {
    "actual": "#1f4e8c",
    "target": "#1b7a3a",
    "benchmark": "#a05a00",
    "open": "#eceff3",
    "grid": "#dde1e6",
    "axis": "#4a5563",
}


def _nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Round tick values covering ``lo..hi`` (1, 2, 2.5 or 5 times a power of ten apart)."""
    span = hi - lo
    if span <= 0:
        span = abs(hi) * 0.1 or 1.0
        lo, hi = lo - span / 2, hi + span / 2
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if raw <= m * magnitude * 1.0000001)
    first = math.floor(lo / step + 1e-9) * step
    ticks = [first]
    while ticks[-1] < hi - step * 1e-9:
        ticks.append(first + len(ticks) * step)
    return [round(t, 12) for t in ticks]


def axis_label(value: float, unit: Unit, step: float) -> str:
    """A short tick label (``113k``, ``62%``, ``1.25``); the unit is in the chart caption."""
    if unit == Unit.percent:
        value, step = value * 100, step * 100
    magnitude = abs(value) if value else abs(step)
    suffix, scale = "", 1.0
    if magnitude >= 1e6:
        suffix, scale = "M", 1e6
    elif magnitude >= 1e4:
        suffix, scale = "k", 1e3
    scaled_step = step / scale
    digits = max(0, min(4, -math.floor(math.log10(scaled_step) + 1e-9))) if scaled_step else 0
    if scaled_step and abs(scaled_step * 10**digits - round(scaled_step * 10**digits)) > 1e-6:
        digits += 1  # a step of 2.5 needs one more decimal than its power of ten says
    text = f"{value / scale:,.{digits}f}{suffix}"
    if unit == Unit.percent:
        text += "%"
    elif unit == Unit.seconds:
        text += " s"
    return text


def trend_svg(
    meta: KpiMeta,
    series: pd.DataFrame,
    months: list[dt.date],
    as_of: dt.date,
    coverage: Coverage | None = None,
) -> Markup:
    """A monthly line chart of one KPI as inline SVG: actual, target line or band,
    benchmark line or band, the open month shaded and its to-date value hollow.

    ``coverage`` (the days the KPI's sources loaded; None: unknown) makes a month without
    any loaded day a gap marked "no data" rather than a point at 0, and the open month's
    values run to the last loaded day, not to the as-of date."""
    by_month = {row.period_start: row for row in series.itertuples(index=False)}
    data_end = as_of if coverage is None or coverage.empty else min(coverage.last, as_of)

    def loaded(row) -> bool:
        return coverage is None or coverage.overlaps(row.period_start, min(row.period_end, as_of))

    def planned(row) -> bool:
        # An open month with nothing loaded has no to-date actual, so its to-date target
        # and benchmark compare with nothing: left out, like the actual.
        return loaded(row) or bool(row.is_complete_period)

    slot = (CHART_W - _M_LEFT - _M_RIGHT) / len(months)
    plot_bottom = CHART_H - _M_BOTTOM

    def x_left(i: int) -> float:
        return _M_LEFT + i * slot

    def x_mid(i: int) -> float:
        return x_left(i) + slot / 2

    values: list[float] = []
    for row in by_month.values():
        if not planned(row):
            continue
        for column in (
            "target",
            "band_min",
            "band_max",
            "benchmark_value",
            "benchmark_min",
            "benchmark_max",
        ):
            v = number(getattr(row, column))
            if v is not None:
                values.append(v)
        if not loaded(row):
            continue  # a 0 for want of rows must not stretch the axis down to it
        actual, projected = number(row.actual), number(row.projected)
        if actual is not None:
            values.append(actual)
        if projected is not None and not bool(row.is_complete_period):
            values.append(projected)

    title = f"{meta.name}: monthly trend, {month_label(months[0])} to {month_label(months[-1])}"
    desc = _chart_description(meta, series, as_of, coverage)
    chart_id = f"chart-{meta.kpi_id}"
    parts = [
        f'<svg class="trend" id="{escape(chart_id)}" role="img" '
        f'viewBox="0 0 {CHART_W} {CHART_H}" width="{CHART_W}" height="{CHART_H}" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(desc)}</desc>',
    ]
    if not values:
        parts.append(
            f'<text x="{CHART_W / 2}" y="{CHART_H / 2}" text-anchor="middle" class="empty">'
            "No monthly values in the last 13 months</text></svg>"
        )
        return Markup("".join(parts))

    ticks = _nice_ticks(min(values), max(values))
    lo, hi = ticks[0], ticks[-1]
    if hi == lo:
        hi = lo + 1.0

    def y(v: float) -> float:
        return plot_bottom - (v - lo) / (hi - lo) * (plot_bottom - _M_TOP)

    # Partial months are shaded and labelled, so a to-date dip is not read as a fall: the
    # open month (values to the last loaded day) and a first month the data starts inside
    # of; so is a month without any loaded day, which has no point.
    for i, month in enumerate(months):
        row = by_month.get(month)
        if row is not None and not loaded(row):
            kind, label, note = "partial no-data", "no data", "no data loaded for this month"
            if row.period_end > as_of:
                note = f"no data loaded yet (last day with data: {data_end:%d %B})"
        elif row is not None and not bool(row.is_complete_period):
            kind, (label, note) = "partial", _partial_label(row.period_end, data_end)
        else:
            continue
        parts.append(
            f'<rect class="{kind}" x="{x_left(i):.1f}" y="{_M_TOP}" width="{slot:.1f}" '
            f'height="{plot_bottom - _M_TOP:.1f}" fill="{COLORS["open"]}">'
            f"<title>{escape(month_label(month))}: {escape(note)}</title></rect>"
            f'<text x="{x_mid(i):.1f}" y="{_M_TOP - 7}" text-anchor="middle" '
            f'class="open-label">{escape(label)}</text>'
        )

    # Bands first, lines over them.
    for i, month in enumerate(months):
        row = by_month.get(month)
        if row is None or not planned(row):
            continue
        for kind, low, high in (
            ("benchmark", row.benchmark_min, row.benchmark_max),
            ("target", row.band_min, row.band_max),
        ):
            low, high = number(low), number(high)
            if low is None or high is None:
                continue
            parts.append(
                f'<rect class="{kind}-band" x="{x_left(i):.1f}" y="{y(high):.1f}" '
                f'width="{slot:.1f}" height="{max(y(low) - y(high), 1):.1f}" '
                f'fill="{COLORS[kind]}" fill-opacity="0.14">'
                f"<title>{kind} band {escape(month_label(month))}: {escape(meta.show(low))} to "
                f"{escape(meta.show(high))}</title></rect>"
            )

    for tick in ticks:
        parts.append(
            f'<line x1="{_M_LEFT}" x2="{CHART_W - _M_RIGHT}" y1="{y(tick):.1f}" '
            f'y2="{y(tick):.1f}" stroke="{COLORS["grid"]}" stroke-width="1"/>'
            f'<text x="{_M_LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" class="tick">'
            f"{escape(axis_label(tick, meta.unit, ticks[1] - ticks[0] if len(ticks) > 1 else 1))}"
            "</text>"
        )
    for i, month in enumerate(months):
        # Every other month is labelled; the year shows in January and on the first month.
        if (len(months) - 1 - i) % 2:
            continue
        label = f"{month:%b}" if month.month != 1 and i > 1 else f"{month:%b %y}"
        parts.append(
            f'<text x="{x_mid(i):.1f}" y="{plot_bottom + 16}" text-anchor="middle" '
            f'class="tick">{escape(label)}</text>'
        )
    parts.append(
        f'<line x1="{_M_LEFT}" x2="{CHART_W - _M_RIGHT}" y1="{plot_bottom}" y2="{plot_bottom}" '
        f'stroke="{COLORS["axis"]}" stroke-width="1"/>'
    )

    # Target and benchmark values are per month (they can be phased), so each is a step.
    for kind, column, dash in (
        ("benchmark", "benchmark_value", "2 3"),
        ("target", "target", "6 4"),
    ):
        for i, month in enumerate(months):
            row = by_month.get(month)
            v = number(getattr(row, column)) if row is not None and planned(row) else None
            if v is None:
                continue
            parts.append(
                f'<line class="{kind}-line" x1="{x_left(i):.1f}" x2="{x_left(i) + slot:.1f}" '
                f'y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="{COLORS[kind]}" stroke-width="2" '
                f'stroke-dasharray="{dash}"><title>{kind} {escape(month_label(month))}: '
                f"{escape(meta.show(v))}</title></line>"
            )

    # The actual line: solid between complete months, dashed into the open month; a month
    # without a value breaks the line rather than bridging the gap.
    previous: tuple[float, float, bool] | None = None
    for i, month in enumerate(months):
        row = by_month.get(month)
        v = number(row.actual) if row is not None and loaded(row) else None
        if v is None:
            previous = None
            continue
        point = (x_mid(i), y(v), bool(row.is_complete_period))
        if previous is not None:
            dashed = "" if point[2] and previous[2] else ' stroke-dasharray="4 3"'
            parts.append(
                f'<line x1="{previous[0]:.1f}" y1="{previous[1]:.1f}" x2="{point[0]:.1f}" '
                f'y2="{point[1]:.1f}" stroke="{COLORS["actual"]}" stroke-width="2.5"{dashed}/>'
            )
        previous = point
    for i, month in enumerate(months):
        row = by_month.get(month)
        v = number(row.actual) if row is not None and loaded(row) else None
        if v is None:
            continue
        complete = bool(row.is_complete_period)
        label = month_label(month)
        if not complete:
            label += f" ({_partial_label(row.period_end, data_end)[1]})"
        status = status_label(row.status)
        fill = COLORS["actual"] if complete else "#ffffff"
        parts.append(
            f'<circle class="{"point" if complete else "point-open"}" cx="{x_mid(i):.1f}" '
            f'cy="{y(v):.1f}" r="4" fill="{fill}" stroke="{COLORS["actual"]}" '
            f'stroke-width="2"><title>{escape(label)}: {escape(meta.show(v))} ({escape(status)})'
            "</title></circle>"
        )
        projected = number(row.projected)
        if not complete and projected is not None and not math.isclose(projected, v):
            px, py = x_mid(i), y(projected)
            parts.append(
                f'<path class="projected" d="M{px:.1f},{py - 5:.1f} L{px + 5:.1f},{py:.1f} '
                f'L{px:.1f},{py + 5:.1f} L{px - 5:.1f},{py:.1f} Z" fill="none" '
                f'stroke="{COLORS["actual"]}" stroke-width="1.5"><title>projected for '
                f"{escape(month_label(month, long=True))}: {escape(meta.show(projected))}"
                "</title></path>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def _partial_label(period_end: dt.date, as_of: dt.date) -> tuple[str, str]:
    """(short label, explanation) of an incomplete month."""
    if period_end > as_of:
        return f"to {as_of.day} {as_of:%b}", f"open, values to {as_of:%d %B}"
    return "partial", "partial: the data starts during this month"


def _chart_description(
    meta: KpiMeta, series: pd.DataFrame, as_of: dt.date, coverage: Coverage | None = None
) -> str:
    """The chart in words, for screen readers and as the text behind the picture."""
    spans = zip(series["period_start"], series["period_end"], strict=True)
    loaded = pd.Series(
        [coverage is None or coverage.overlaps(s, min(e, as_of)) for s, e in spans],
        index=series.index,
        dtype=bool,
    )
    complete = series[series["is_complete_period"].astype(bool) & series["actual"].notna() & loaded]
    if complete.empty:
        return f"No complete month of {meta.name} in the window."
    first, last = complete.iloc[0], complete.iloc[-1]
    text = (
        f"{meta.name} went from {meta.show(first.actual)} in {month_label(first.period_start)}"
        f" to {meta.show(last.actual)} in {month_label(last.period_start)}"
    )
    target = number(last.target)
    if target is not None:
        text += f"; target {meta.show(target)}"
    elif number(last.band_min) is not None:
        text += f"; target band {meta.show(last.band_min)} to {meta.show(last.band_max)}"
    text += f"; status {status_label(last.status)}."
    is_open = ~series["is_complete_period"].astype(bool) & (series["period_end"] > as_of)
    open_rows = series[is_open]
    if not open_rows.empty and not bool(loaded[is_open].iloc[-1]):
        text += f" {month_label(open_rows.iloc[-1].period_start)}: no data loaded yet."
    elif not open_rows.empty and number(open_rows.iloc[-1].actual) is not None:
        row = open_rows.iloc[-1]
        text += (
            f" {month_label(row.period_start)} so far: {meta.show(row.actual)}, "
            f"{status_label(row.status)} against the target to date."
        )
    return text
