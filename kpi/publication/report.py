"""The HTML scorecard report: one self-contained page a manager can open, mail or print.

The page has a status table by area, a monthly trend chart per KPI (target line, benchmark
band, the open period marked), the top movers against the previous complete month, and the
definition versions behind the numbers. Everything is inline (CSS and SVG drawn here), so
the file opens offline and shows the same everywhere: no scripts, fonts or network.

The warehouse does the filtering; the report reads two small result sets: the scorecard
(one row per KPI) and the monthly total rows of the last 13 months.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from kpi.compute.coverage import Coverage, kpi_coverage, source_coverage
from kpi.compute.periods import add_months
from kpi.compute.tables import KpiTables
from kpi.language.models import Direction, KpiType, Unit
from kpi.publication.catalog_tables import scorecard_select
from kpi.publication.scorecard import format_value
from kpi.status.target_gap import attainment_text, favourable_gap, gap_text, gap_verdict
from kpi.warehouse.connection import Warehouse

DEFAULT_REPORT_DIR = "data/reports"
TREND_MONTHS = 13
TOP_MOVERS = 5
# A smaller move is noise for a monthly KPI, not news: it is left out of the top movers.
MIN_MOVE = 0.01

STATUS_TEXT = {
    "on_track": "On track",
    "at_risk": "At risk",
    "off_track": "Off track",
    "insufficient_data": "Insufficient data",
    "no_target": "No target",
}
# A symbol besides the colour, so status reads in greyscale prints and for colour-blind readers.
STATUS_ICON = {
    "on_track": "\u2714",
    "at_risk": "\u25b2",
    "off_track": "\u2716",
    "insufficient_data": "?",
    "no_target": "\u2013",
}
DASH = "\u2013"
NO_DATA = "no data"
NO_HISTORY = "no history"
STATUS_ORDER = ["off_track", "at_risk", "on_track", "insufficient_data", "no_target"]


def report_dir() -> Path:
    """The folder reports are written to: ``KPI_REPORT_DIR``, default ``data/reports``."""
    return Path(os.environ.get("KPI_REPORT_DIR", DEFAULT_REPORT_DIR))


def report_path(folder: Path | str, as_of: dt.date) -> Path:
    """``<folder>/scorecard-<as-of>.html``: one file per as-of date, so reruns replace it."""
    return Path(folder) / f"scorecard-{as_of.isoformat()}.html"


def warehouse_as_of(wh: Warehouse, tables: KpiTables) -> dt.date | None:
    """The last day the KPI tables were computed through (None before the first run)."""
    value = wh.scalar(sa.select(sa.func.max(tables.periods.c.window_end)))
    if isinstance(value, dt.datetime):
        return value.date()
    return value


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KpiMeta:
    """What the report needs to know about a KPI to show its numbers."""

    kpi_id: str
    name: str
    area: str
    unit: Unit
    currency: str
    direction: Direction
    kpi_type: str
    description: str
    owner: str
    version: str | None
    definition_version: str | None
    target_example: bool
    benchmark_example: bool
    benchmark_source: str | None
    goal: str | None = None


@dataclass
class ReportData:
    """Everything the page shows, read from the warehouse in a few small queries."""

    as_of: dt.date
    months: list[dt.date]
    scorecard: pd.DataFrame
    trends: pd.DataFrame
    kpis: dict[str, KpiMeta]
    dialect: str
    # The days the loaded data covers, per KPI and per source (kpi.compute.coverage). A KPI that is
    # not in ``coverage`` is unknown, and its values are shown as stored.
    coverage: dict[str, Coverage] = field(default_factory=dict)
    sources: dict[str, Coverage] = field(default_factory=dict)

    def has_data(self, kpi_id: str, start: dt.date, end: dt.date) -> bool:
        """Whether the KPI's sources loaded any day of ``start`` .. ``end`` (to the as-of
        date). A period without is missing, not 0: its sums are 0 only for want of rows."""
        known = self.coverage.get(kpi_id)
        return known is None or known.overlaps(start, min(end, self.as_of))

    def before_data(self, kpi_id: str, start: dt.date) -> bool:
        """Whether a period starting on ``start`` begins before the KPI's first day of data:
        there is no history to compare with (kpi_comparisons leaves it NULL)."""
        known = self.coverage.get(kpi_id)
        return known is not None and known.starts_after(start)

    def data_through(self) -> dt.date:
        """The last day with loaded data of any source (at most the as-of date)."""
        lasts = [c.last for c in self.sources.values() if not c.empty]
        return min(max(lasts), self.as_of) if lasts else self.as_of

    def lagging_sources(self) -> dict[str, dt.date | None]:
        """Sources whose data ends before ``data_through``: name -> last day (None: empty)."""
        through = self.data_through()
        return {
            name: None if c.empty else c.last
            for name, c in sorted(self.sources.items())
            if c.empty or c.last < through
        }

    def meta(self, kpi_id: str, name: str | None = None, area: str | None = None) -> KpiMeta:
        """The KPI's metadata; a KPI dropped from the definitions keeps a neutral fallback."""
        if kpi_id in self.kpis:
            return self.kpis[kpi_id]
        return KpiMeta(
            kpi_id=kpi_id,
            name=name or kpi_id,
            area=area or "other",
            unit=Unit.ratio,
            currency="",
            direction=Direction.higher_is_better,
            kpi_type="",
            description="No longer in the definitions.",
            owner="",
            version=None,
            definition_version=None,
            target_example=False,
            benchmark_example=False,
            benchmark_source=None,
        )

    def series(self, kpi_id: str) -> pd.DataFrame:
        """The KPI's monthly rows in the chart window, oldest first."""
        return self.trends[self.trends["kpi_id"] == kpi_id].sort_values("period_start")


def _kpi_meta(tables: KpiTables) -> dict[str, KpiMeta]:
    cat = tables.catalog
    out = {}
    for kpi in cat.kpis.values():
        out[kpi.id] = KpiMeta(
            kpi_id=kpi.id,
            name=kpi.name,
            area=kpi.area,
            unit=Unit(kpi.unit),
            currency=kpi.currency or cat.reporting.currency,
            direction=Direction(kpi.direction),
            kpi_type=str(kpi.type),
            description=kpi.description,
            owner=kpi.owner,
            version=kpi.version,
            definition_version=cat.versions.get(kpi.id),
            target_example=bool(kpi.target and kpi.target.example),
            benchmark_example=bool(kpi.benchmark and kpi.benchmark.example),
            benchmark_source=kpi.benchmark.source if kpi.benchmark else None,
            goal=kpi.goal or None,
        )
    return out


def _month_start(day: dt.date, back: int = 0) -> dt.date:
    return add_months(day, -back)


def trend_select(
    tables: KpiTables, start: dt.date, as_of: dt.date, grain: str = "month"
) -> sa.Select:
    """The total rows of every KPI at ``grain`` from ``start`` to ``as_of``, with the target
    band of each period (within-band KPIs have a band instead of a target value)."""
    c, t = tables.comparisons, tables.targets
    total = [c.c[d].is_(None) for d in tables.catalog.dimensions]
    return (
        sa.select(
            c.c.kpi_id,
            c.c.kpi_name,
            c.c.area,
            c.c.period_start,
            c.c.period_end,
            c.c.is_complete_period,
            c.c.actual,
            c.c.target,
            c.c.previous,
            c.c.benchmark_value,
            c.c.benchmark_min,
            c.c.benchmark_max,
            c.c.projected,
            c.c.status,
            c.c.definition_version,
            t.c.band_min,
            t.c.band_max,
        )
        .select_from(
            c.outerjoin(
                t,
                sa.and_(
                    t.c.kpi_id == c.c.kpi_id,
                    t.c.grain == c.c.grain,
                    t.c.period_start == c.c.period_start,
                ),
            )
        )
        .where(
            c.c.grain == grain,
            c.c.period_start >= start,
            c.c.period_start <= as_of,
            *total,
        )
        .order_by(c.c.kpi_id, c.c.period_start)
    )


def load_report_data(wh: Warehouse, tables: KpiTables, as_of: dt.date | None = None) -> ReportData:
    """Read what the report shows. ``as_of`` must be the date the warehouse was refreshed
    through (the default): the open month's to-date values exist only for that date."""
    stored = warehouse_as_of(wh, tables)
    if as_of is None:
        as_of = stored
    if as_of is None:
        raise ValueError("the KPI tables are empty: run the pipeline before the report")
    if stored is not None and stored != as_of:
        raise ValueError(
            f"the warehouse is computed through {stored}, not {as_of}: a report for {as_of} "
            f"needs the KPI tables refreshed with as_of={as_of}"
        )
    months = [_month_start(as_of, back) for back in range(TREND_MONTHS - 1, -1, -1)]
    scorecard = wh.read(scorecard_select(tables.comparisons, tables.catalog.dimensions))
    trends = wh.read(trend_select(tables, months[0], as_of))
    for frame in (scorecard, trends):
        for col in ("period_start", "period_end"):
            if col in frame:
                frame[col] = pd.to_datetime(frame[col]).dt.date
    # Only the sources some KPI reads: the header lists those whose data ends early.
    used = {n for k in tables.catalog.kpis.values() for n in tables.compiler.source_names(k)}
    sources = {n: c for n, c in source_coverage(wh, tables.compiler).items() if n in used}
    coverage = kpi_coverage(tables.compiler, sources)
    if not coverage:
        sources = {}  # nothing loaded at all: unknown, not "no data" (kpi.compute.coverage)
    return ReportData(
        as_of=as_of,
        months=months,
        scorecard=scorecard,
        trends=trends,
        kpis=_kpi_meta(tables),
        dialect=wh.dialect,
        coverage=coverage,
        sources=sources,
    )


# ---------------------------------------------------------------------------------------------
# Judgements and formatting
# ---------------------------------------------------------------------------------------------


def _num(value) -> float | None:
    """A float, or None for SQL NULL / NaN / pandas NA."""
    if value is None or value is pd.NA:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _distance(value: float, band: tuple[float, float]) -> float:
    lo, hi = band
    return lo - value if value < lo else (value - hi if value > hi else 0.0)


def judge_change(
    direction: Direction | str,
    actual: float | None,
    before: float | None,
    band: tuple[float, float] | None = None,
) -> str | None:
    """Better, worse or steady: the verdict on a move from ``before`` to ``actual``.

    Direction-aware: a falling cost per click is better. A within-band KPI is better when it
    gets closer to its band and steady while it stays inside; without a band there is no
    judgement (None). A move that rounds to 0.0% is steady, so noise is not called a trend.
    """
    actual, before = _num(actual), _num(before)
    if actual is None or before is None:
        return None
    if before != 0 and abs((actual - before) / before) < 0.0005:
        return "steady"
    direction = Direction(direction)
    if direction == Direction.within_band:
        if band is None or None in band:
            return None
        now, then = _distance(actual, band), _distance(before, band)
        if math.isclose(now, then):
            return "steady"
        return "better" if now < then else "worse"
    if actual == before:
        return "steady"
    up = actual > before
    return "better" if up == (direction == Direction.higher_is_better) else "worse"


def judge_benchmark(direction: Direction | str, position: str | None) -> str | None:
    """Whether the benchmark position is good news, for the KPI's direction."""
    if position is None or (isinstance(position, float) and math.isnan(position)):
        return None
    direction = Direction(direction)
    if position in ("within", "at"):
        return "steady"
    if direction == Direction.within_band:
        return None
    good = "above" if direction == Direction.higher_is_better else "below"
    return "better" if position == good else "worse"


def _pct(value: float | None, signed: bool = False, digits: int = 1) -> str:
    value = _num(value)
    if value is None:
        return DASH
    return f"{value * 100:+.{digits}f}%" if signed else f"{value * 100:.{digits}f}%"


def _month_label(day: dt.date, long: bool = False) -> str:
    return f"{day:%B %Y}" if long else f"{day:%b %Y}"


def _esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _range(meta: KpiMeta, low, high) -> str:
    """``30,000\u201340,000 EUR``: the unit once, so a band fits a table cell."""
    # Whole numbers lose their zero decimals: "30\u201345%" reads faster than "30.00\u201345.00%".
    lo, hi = (re.sub(r"\.00\b", "", _value(meta, v)) for v in (low, high))
    for suffix in ("%", f" {meta.currency}", " s"):
        if suffix.strip() and lo.endswith(suffix) and hi.endswith(suffix):
            return f"{lo[: -len(suffix)]}\u2013{hi}"
    return f"{lo}\u2013{hi}"


def _value(meta: KpiMeta, value) -> str:
    value = _num(value)
    if meta.unit == Unit.currency and value is not None and abs(value) >= 1000:
        # Cents on a five-figure amount are noise to a reader of a monthly report.
        return f"{value:,.0f} {meta.currency}"
    return format_value(value, meta.unit, meta.currency)


def _actual_text(data: ReportData, meta: KpiMeta, row) -> str:
    """The value of a scorecard row, or "no data" for a period none of whose days loaded."""
    if not data.has_data(meta.kpi_id, row.period_start, row.period_end):
        return NO_DATA
    return _value(meta, row.actual)


def _is_growth(meta: KpiMeta) -> bool:
    return meta.kpi_type == str(KpiType.period_over_period)


def _gap(data: ReportData, meta: KpiMeta, row) -> float | None:
    """The row's gap to its target, positive = better (``variance_favourable``)."""
    band = _band_of(data, row.kpi_id, row.period_start)
    stored = getattr(row, "variance_favourable", None)
    return favourable_gap(meta.direction, row.actual, row.target, band, stored)


def _attainment(data: ReportData, meta: KpiMeta, row) -> str:
    """Attainment as printed: a percentage for a level, points for a rate of change."""
    return attainment_text(_is_growth(meta), row.attainment, _gap(data, meta, row))


# ---------------------------------------------------------------------------------------------
# Trend chart (inline SVG)
# ---------------------------------------------------------------------------------------------

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
) -> str:
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
            v = _num(getattr(row, column))
            if v is not None:
                values.append(v)
        if not loaded(row):
            continue  # a 0 for want of rows must not stretch the axis down to it
        actual, projected = _num(row.actual), _num(row.projected)
        if actual is not None:
            values.append(actual)
        if projected is not None and not bool(row.is_complete_period):
            values.append(projected)

    title = f"{meta.name}: monthly trend, {_month_label(months[0])} to {_month_label(months[-1])}"
    desc = _chart_description(meta, series, as_of, coverage)
    chart_id = f"chart-{meta.kpi_id}"
    parts = [
        f'<svg class="trend" id="{_esc(chart_id)}" role="img" '
        f'viewBox="0 0 {CHART_W} {CHART_H}" width="{CHART_W}" height="{CHART_H}" '
        f'aria-labelledby="{_esc(chart_id)}-title {_esc(chart_id)}-desc" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{_esc(chart_id)}-title">{_esc(title)}</title>',
        f'<desc id="{_esc(chart_id)}-desc">{_esc(desc)}</desc>',
    ]
    if not values:
        parts.append(
            f'<text x="{CHART_W / 2}" y="{CHART_H / 2}" text-anchor="middle" class="empty">'
            "No monthly values in the last 13 months</text></svg>"
        )
        return "".join(parts)

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
            f"<title>{_esc(_month_label(month))}: {_esc(note)}</title></rect>"
            f'<text x="{x_mid(i):.1f}" y="{_M_TOP - 7}" text-anchor="middle" '
            f'class="open-label">{_esc(label)}</text>'
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
            low, high = _num(low), _num(high)
            if low is None or high is None:
                continue
            parts.append(
                f'<rect class="{kind}-band" x="{x_left(i):.1f}" y="{y(high):.1f}" '
                f'width="{slot:.1f}" height="{max(y(low) - y(high), 1):.1f}" '
                f'fill="{COLORS[kind]}" fill-opacity="0.14">'
                f"<title>{kind} band {_esc(_month_label(month))}: {_esc(_value(meta, low))} to "
                f"{_esc(_value(meta, high))}</title></rect>"
            )

    for tick in ticks:
        parts.append(
            f'<line x1="{_M_LEFT}" x2="{CHART_W - _M_RIGHT}" y1="{y(tick):.1f}" '
            f'y2="{y(tick):.1f}" stroke="{COLORS["grid"]}" stroke-width="1"/>'
            f'<text x="{_M_LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" class="tick">'
            f"{_esc(axis_label(tick, meta.unit, ticks[1] - ticks[0] if len(ticks) > 1 else 1))}"
            "</text>"
        )
    for i, month in enumerate(months):
        # Every other month is labelled; the year shows in January and on the first month.
        if (len(months) - 1 - i) % 2:
            continue
        label = f"{month:%b}" if month.month != 1 and i > 1 else f"{month:%b %y}"
        parts.append(
            f'<text x="{x_mid(i):.1f}" y="{plot_bottom + 16}" text-anchor="middle" '
            f'class="tick">{_esc(label)}</text>'
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
            v = _num(getattr(row, column)) if row is not None and planned(row) else None
            if v is None:
                continue
            parts.append(
                f'<line class="{kind}-line" x1="{x_left(i):.1f}" x2="{x_left(i) + slot:.1f}" '
                f'y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="{COLORS[kind]}" stroke-width="2" '
                f'stroke-dasharray="{dash}"><title>{kind} {_esc(_month_label(month))}: '
                f"{_esc(_value(meta, v))}</title></line>"
            )

    # The actual line: solid between complete months, dashed into the open month; a month
    # without a value breaks the line rather than bridging the gap.
    previous: tuple[float, float, bool] | None = None
    for i, month in enumerate(months):
        row = by_month.get(month)
        v = _num(row.actual) if row is not None and loaded(row) else None
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
        v = _num(row.actual) if row is not None and loaded(row) else None
        if v is None:
            continue
        complete = bool(row.is_complete_period)
        label = _month_label(month)
        if not complete:
            label += f" ({_partial_label(row.period_end, data_end)[1]})"
        status = STATUS_TEXT.get(row.status, str(row.status))
        fill = COLORS["actual"] if complete else "#ffffff"
        parts.append(
            f'<circle class="{"point" if complete else "point-open"}" cx="{x_mid(i):.1f}" '
            f'cy="{y(v):.1f}" r="4" fill="{fill}" stroke="{COLORS["actual"]}" '
            f'stroke-width="2"><title>{_esc(label)}: {_esc(_value(meta, v))} ({_esc(status)})'
            "</title></circle>"
        )
        projected = _num(row.projected)
        if not complete and projected is not None and not math.isclose(projected, v):
            px, py = x_mid(i), y(projected)
            parts.append(
                f'<path class="projected" d="M{px:.1f},{py - 5:.1f} L{px + 5:.1f},{py:.1f} '
                f'L{px:.1f},{py + 5:.1f} L{px - 5:.1f},{py:.1f} Z" fill="none" '
                f'stroke="{COLORS["actual"]}" stroke-width="1.5"><title>projected for '
                f"{_esc(_month_label(month, long=True))}: {_esc(_value(meta, projected))}"
                "</title></path>"
            )
    parts.append("</svg>")
    return "".join(parts)


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
        f"{meta.name} went from {_value(meta, first.actual)} in {_month_label(first.period_start)}"
        f" to {_value(meta, last.actual)} in {_month_label(last.period_start)}"
    )
    target = _num(last.target)
    if target is not None:
        text += f"; target {_value(meta, target)}"
    elif _num(last.band_min) is not None:
        text += f"; target band {_value(meta, last.band_min)} to {_value(meta, last.band_max)}"
    text += f"; status {STATUS_TEXT.get(last.status, last.status)}."
    is_open = ~series["is_complete_period"].astype(bool) & (series["period_end"] > as_of)
    open_rows = series[is_open]
    if not open_rows.empty and not bool(loaded[is_open].iloc[-1]):
        text += f" {_month_label(open_rows.iloc[-1].period_start)}: no data loaded yet."
    elif not open_rows.empty and _num(open_rows.iloc[-1].actual) is not None:
        row = open_rows.iloc[-1]
        text += (
            f" {_month_label(row.period_start)} so far: {_value(meta, row.actual)}, "
            f"{STATUS_TEXT.get(row.status, row.status)} against the target to date."
        )
    return text


# ---------------------------------------------------------------------------------------------
# Movers
# ---------------------------------------------------------------------------------------------


def _band_of(data: ReportData, kpi_id: str, period: dt.date) -> tuple[float, float] | None:
    rows = data.trends[(data.trends["kpi_id"] == kpi_id) & (data.trends["period_start"] == period)]
    if rows.empty:
        return None
    lo, hi = _num(rows.iloc[0].band_min), _num(rows.iloc[0].band_max)
    return (lo, hi) if lo is not None and hi is not None else None


def top_movers(
    data: ReportData, limit: int = TOP_MOVERS, min_move: float = MIN_MOVE
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The KPIs that moved most against the previous complete month: (better, worse).

    Relative change of each KPI's latest complete month, at least ``min_move``; "better"
    and "worse" follow the KPI's direction. Period-over-period KPIs are left out: they are
    already a change, and the change of a growth rate is not a comparable percentage.
    """
    rows = []
    for r in data.scorecard.itertuples(index=False):
        meta = data.meta(r.kpi_id, r.kpi_name, r.area)
        change, previous = _num(r.change_rel), _num(r.previous)
        if change is None or not previous or meta.kpi_type == str(KpiType.period_over_period):
            continue
        # A month before the data started (or partly so) is no history: a move from it is a
        # jump that never happened. Nor is a month without loaded data a move.
        if _no_history(data, r, previous, 1) or not data.has_data(
            r.kpi_id, r.period_start, r.period_end
        ):
            continue
        if abs(change) < min_move:
            continue
        verdict = judge_change(
            meta.direction, r.actual, previous, _band_of(data, r.kpi_id, r.period_start)
        )
        if verdict not in ("better", "worse"):
            continue
        rows.append(
            {
                "kpi_id": r.kpi_id,
                "name": meta.name,
                "area": meta.area,
                "period_start": r.period_start,
                "previous": previous,
                "actual": _num(r.actual),
                "change_rel": change,
                "verdict": verdict,
            }
        )
    frame = pd.DataFrame(
        rows,
        columns=[
            "kpi_id",
            "name",
            "area",
            "period_start",
            "previous",
            "actual",
            "change_rel",
            "verdict",
        ],
    )
    # Rounded, so KPIs that moved by the same amount (up to float noise) rank by id everywhere.
    frame["size"] = frame["change_rel"].abs().round(9)
    frame = frame.sort_values(["size", "kpi_id"], ascending=[False, True])
    better = frame[frame["verdict"] == "better"].head(limit).drop(columns="size")
    worse = frame[frame["verdict"] == "worse"].head(limit).drop(columns="size")
    return better.reset_index(drop=True), worse.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Page
# ---------------------------------------------------------------------------------------------

CSS = """
:root { --ink: #1d2430; --muted: #5b6573; --line: #d5dae1; --bg: #f6f7f9;
  --good: #1b6e36; --good-bg: #e3f3e7; --warn: #7a4f00; --warn-bg: #fff1cc;
  --bad: #a4161a; --bad-bg: #fde2e1; --none: #4a5563; --none-bg: #eceff3; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  "Liberation Sans", sans-serif; }
main { max-width: 1360px; margin: 0 auto; padding: 24px 28px 48px; }
header h1 { font-size: 26px; margin: 0 0 4px; }
header p { margin: 2px 0; color: var(--muted); }
h2 { font-size: 20px; margin: 32px 0 10px; padding-bottom: 4px;
  border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 8px; text-transform: capitalize; }
.note { background: #fff8e1; border: 1px solid #e8d48a; border-radius: 6px; padding: 10px 14px;
  margin: 14px 0; }
.summary { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0 0; padding: 0;
  list-style: none; }
.summary li { background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 8px 14px; }
.summary strong { font-size: 20px; margin-right: 6px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 4px 0;
  overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
table.fixed { table-layout: fixed; }
.card table { font-size: 14px; }
.status-table { min-width: 1100px; }
td { font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: 10px 12px 6px; font-size: 16px; }
th, td { padding: 6px 8px; border-top: 1px solid var(--line); text-align: right;
  white-space: nowrap; vertical-align: top; }
td.wrap, th.wrap { white-space: normal; }
tr.area th { text-align: left; background: #f0f2f5; font-size: 14px; letter-spacing: 0.02em;
  text-transform: uppercase; color: #3b4452; padding-top: 8px; }
.ref { font-size: 12px; color: var(--muted); margin-left: 6px; }
.defs .ref { display: block; margin-left: 0; }
thead th { border-top: none; color: var(--muted); font-weight: 600; font-size: 13px; }
th[scope="row"], td.text, th.text { text-align: left; }
th[scope="row"] { font-weight: 600; white-space: normal; }
.status { display: inline-block; min-width: 96px; padding: 2px 9px; border-radius: 999px;
  font-weight: 600; font-size: 13px; text-align: left; }
.status-on_track { color: var(--good); background: var(--good-bg); }
.status-at_risk { color: var(--warn); background: var(--warn-bg); }
.status-off_track { color: var(--bad); background: var(--bad-bg); }
.status-insufficient_data, .status-no_target { color: var(--none); background: var(--none-bg); }
.better { color: var(--good); } .worse { color: var(--bad); } .steady { color: var(--muted); }
.verdict { font-size: 12px; margin-left: 4px; }
.gap { display: block; font-size: 12px; white-space: normal; }
.ex { font-size: 11px; color: var(--muted); margin-left: 3px; }
.movers { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr));
  gap: 16px; }
.legend { display: flex; flex-wrap: wrap; gap: 18px; margin: 6px 0 12px; color: var(--muted);
  font-size: 13px; list-style: none; padding: 0; }
.legend li { display: flex; align-items: center; gap: 6px; }
.sw { display: inline-block; width: 26px; height: 0; border-top: 3px solid; }
.sw-actual { border-color: #1f4e8c; }
.sw-target { border-top: 3px dashed #1b7a3a; }
.sw-bench { border-top: 3px dotted #a05a00; }
.sw-box { height: 12px; border: none; }
.sw-tband { background: rgba(27, 122, 58, 0.22); }
.sw-bband { background: rgba(160, 90, 0, 0.2); }
.sw-open { background: #eceff3; border: 1px solid #c9ced6; }
.sw-dot { width: 10px; height: 10px; border-radius: 50%; border: 2px solid #1f4e8c; }
.sw-diamond { width: 9px; height: 9px; border: 1.5px solid #1f4e8c; transform: rotate(45deg); }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(400px, 1fr));
  gap: 14px; }
figure { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 10px 12px 6px; }
figcaption { font-size: 14px; margin-bottom: 4px; }
figcaption .name { font-weight: 600; display: block; }
figcaption .latest { display: block; margin: 2px 0; }
figcaption .sub { display: block; color: var(--muted); font-size: 12.5px; }
svg.trend { width: 100%; height: auto; display: block; }
svg.trend text { font: 11px system-ui, -apple-system, "Segoe UI", Roboto, Arial,
  "Liberation Sans", sans-serif; fill: #4a5563; }
svg.trend text.open-label { font-size: 10px; fill: #5b6573; }
svg.trend text.empty { font-size: 13px; }
.defs td.text { white-space: normal; }
.mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "Liberation Mono",
  monospace; font-size: 13px; }
footer { margin-top: 32px; color: var(--muted); font-size: 13px; }
@media print { body { background: #fff; } main { max-width: none; padding: 0; }
  figure, .card, tr { break-inside: avoid; } }
"""


def _status_badge(status: str | None) -> str:
    status = status or "insufficient_data"
    text = STATUS_TEXT.get(status, status.replace("_", " "))
    icon = STATUS_ICON.get(status, "")
    return (
        f'<span class="status status-{_esc(status)}"><span aria-hidden="true">{icon}</span> '
        f"{_esc(text)}</span>"
    )


def _points(change: float) -> str:
    return f"{change * 100:+.1f} pp"


def _change(meta: KpiMeta, row, before, change_rel):
    """The change shown against ``before``: relative, but for a growth KPI the difference in
    points (33.4% after 4.9% is +28.4 pp, not +576%: a relative change of a rate misleads)."""
    if meta.kpi_type != str(KpiType.period_over_period):
        return change_rel
    actual, before = _num(row.actual), _num(before)
    return None if actual is None or before is None else actual - before


def _change_cell(
    change,
    verdict: str | None,
    in_band: bool = False,
    no_history: bool = False,
    points: bool = False,
) -> str:
    """A relative change (or, with ``points``, a difference of rates in percentage points)
    with its arrow and, in words, whether it is good news.

    ``no_history``: the period compared with lies (partly) before the first day of data,
    so there is nothing to compare with; said in words, never shown as a change from 0."""
    if no_history:
        return f'<td><span class="steady">{NO_HISTORY}</span></td>'
    change = _num(change)
    if change is None:
        return f'<td><span class="steady">{DASH}</span></td>'
    arrow = "\u25b2" if change > 0 else ("\u25bc" if change < 0 else "")
    # A within-band KPI moving inside its band is neither better nor worse: say where it is.
    word = "in band" if verdict == "steady" and in_band else verdict
    css = verdict or "steady"
    word_html = f'<span class="verdict">{_esc(word)}</span>' if word else ""
    return (
        f'<td class="{css}"><span aria-hidden="true">{arrow}</span> '
        f"{_esc(_points(change) if points else _pct(change, signed=True))}{word_html}</td>"
    )


def _target_text(meta: KpiMeta, row, band: tuple[float, float] | None) -> str:
    target = _num(row.target)
    if target is not None:
        text = _value(meta, target)
    elif band is not None:
        text = _range(meta, band[0], band[1])
    else:
        return DASH
    if meta.target_example:
        text = f'{_esc(text)}<span class="ex" title="example target">ex.</span>'
        return text
    return _esc(text)


def _benchmark_cell(meta: KpiMeta, r) -> str:
    position = r.benchmark_position if isinstance(r.benchmark_position, str) else None
    if not position:
        return f'<td class="text wrap"><span class="steady">{DASH}</span></td>'
    verdict = judge_benchmark(meta.direction, position)
    if _num(r.benchmark_min) is not None:
        ref = _range(meta, r.benchmark_min, r.benchmark_max)
    else:
        ref = _value(meta, r.benchmark_value)
    example = '<span class="ex" title="example benchmark">ex.</span>'
    return (
        f'<td class="text wrap"><span class="{verdict or "steady"}">{_esc(position)}</span>'
        f'<span class="ref">{_esc(ref)}{example if meta.benchmark_example else ""}</span></td>'
    )


def _no_history(data: ReportData, row, before, months_back: int) -> bool:
    """Whether a monthly row has nothing to compare with ``months_back`` months earlier:
    the value is NULL, or that month starts before the KPI's first day of data."""
    start = add_months(row.period_start, -months_back)
    return _num(before) is None or data.before_data(row.kpi_id, start)


def _attainment_cell(data: ReportData, meta: KpiMeta, row) -> str:
    """Attainment, and under it the gap to the target in the KPI's unit, coloured by
    ``variance_favourable``: positive is better whichever way the KPI points."""
    gap = _gap(data, meta, row)
    words = gap_text(gap, meta.unit, lambda v: _value(meta, v), _is_growth(meta), meta.direction)
    note = f'<span class="gap {gap_verdict(gap)}">{_esc(words)}</span>' if words else ""
    return f"<td>{_esc(_attainment(data, meta, row))}{note}</td>"


STATUS_COLUMNS = [
    ("KPI", "text", 16),
    ("Month", "", 6),
    ("Actual", "", 9),
    ("Target", "", 14),
    ("Attainment", "", 10),
    ("vs previous month", "", 11),
    ("vs last year", "", 11),
    ("Benchmark", "text", 14),
    ("Status", "text", 9),
]


def _status_tables(data: ReportData) -> str:
    """One table, one row group per area: the columns line up across areas."""
    if data.scorecard.empty:
        return '<p class="note">No complete month yet: the status table starts after one.</p>'
    cols = "".join(f'<col style="width:{w}%">' for _, _, w in STATUS_COLUMNS)
    head = "".join(f'<th scope="col" class="{c}">{_esc(n)}</th>' for n, c, _ in STATUS_COLUMNS)
    groups = []
    for area, group in data.scorecard.groupby("area", sort=True):
        rows = [
            f'<tr class="area"><th scope="rowgroup" colspan="{len(STATUS_COLUMNS)}">'
            f"{_esc(str(area).replace('_', ' '))}</th></tr>"
        ]
        for r in group.itertuples(index=False):
            meta = data.meta(r.kpi_id, r.kpi_name, r.area)
            band = _band_of(data, r.kpi_id, r.period_start)
            vs_prev = judge_change(meta.direction, r.actual, r.previous, band)
            vs_ly = judge_change(meta.direction, r.actual, r.last_year, band)
            actual = _num(r.actual)
            loaded = data.has_data(r.kpi_id, r.period_start, r.period_end)
            no_prev, no_ly = (
                loaded and actual is not None and _no_history(data, r, before, back)
                for before, back in ((r.previous, 1), (r.last_year, 12))
            )
            growth = meta.kpi_type == str(KpiType.period_over_period)
            prev_change = _change(meta, r, r.previous, r.change_rel)
            ly_change = _change(meta, r, r.last_year, r.change_ly_rel)
            in_band = (
                meta.direction == Direction.within_band
                and band is not None
                and actual is not None
                and band[0] <= actual <= band[1]
            )
            rows.append(
                "<tr>"
                f'<th scope="row">{_esc(meta.name)}</th>'
                f"<td>{_esc(f'{r.period_start:%b %Y}')}</td>"
                f"<td><strong>{_esc(_actual_text(data, meta, r))}</strong></td>"
                f'<td class="wrap">{_target_text(meta, r, band)}</td>'
                f"{_attainment_cell(data, meta, r) if loaded else f'<td>{DASH}</td>'}"
                f"{_change_cell(prev_change, vs_prev, in_band, no_prev, growth)}"
                f"{_change_cell(ly_change, vs_ly, in_band, no_ly, growth)}"
                f"{_benchmark_cell(meta, r)}"
                f'<td class="text">{_status_badge(r.status)}</td>'
                "</tr>"
            )
        groups.append(f"<tbody>{''.join(rows)}</tbody>")
    return (
        '<div class="card"><table class="fixed status-table">'
        "<caption>Latest complete month of each KPI, by area</caption>"
        f"<colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead>{''.join(groups)}"
        "</table></div>"
    )


def _movers_table(title: str, frame: pd.DataFrame, data: ReportData, empty: str) -> str:
    if frame.empty:
        body = f'<tr><td class="text wrap" colspan="4">{_esc(empty)}</td></tr>'
    else:
        body = ""
        for r in frame.itertuples(index=False):
            meta = data.meta(r.kpi_id)
            body += (
                f'<tr><th scope="row">{_esc(meta.name)}</th>'
                f"{_change_cell(r.change_rel, r.verdict)}"
                f'<td class="wrap">{_esc(_value(meta, r.previous))} \u2192 '
                f"<strong>{_esc(_value(meta, r.actual))}</strong></td>"
                f'<td class="text wrap">{_esc(str(meta.area).replace("_", " "))}</td></tr>'
            )
    return (
        f'<div class="card"><table class="fixed"><caption>{_esc(title)}</caption>'
        '<colgroup><col style="width:34%"><col style="width:20%"><col style="width:30%">'
        '<col style="width:16%"></colgroup><thead><tr>'
        '<th scope="col" class="text">KPI</th><th scope="col">Change</th>'
        '<th scope="col">Previous \u2192 latest</th><th scope="col" class="text">Area</th>'
        f"</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _charts(data: ReportData) -> str:
    sections = []
    # Every defined KPI gets a chart, with or without values; the definitions name them.
    in_warehouse = {
        r.kpi_id: data.meta(r.kpi_id, r.kpi_name, r.area)
        for r in data.trends.drop_duplicates("kpi_id").itertuples(index=False)
    }
    metas = sorted({**in_warehouse, **data.kpis}.values(), key=lambda m: (m.area, m.name.lower()))
    latest = {r.kpi_id: r for r in data.scorecard.itertuples(index=False)}
    for area in sorted({m.area for m in metas}):
        figures = []
        for meta in (m for m in metas if m.area == area):
            series = data.series(meta.kpi_id)
            unit = {
                Unit.currency: meta.currency,
                Unit.percent: "percent",
                Unit.count: "count",
                Unit.seconds: "seconds",
                Unit.ratio: "ratio",
            }[meta.unit]
            better = {
                Direction.higher_is_better: "higher is better",
                Direction.lower_is_better: "lower is better",
                Direction.within_band: "best within the target band",
            }[meta.direction]
            row = latest.get(meta.kpi_id)
            coverage = data.coverage.get(meta.kpi_id)
            headline = "No complete month yet"
            if row is not None:
                headline = (
                    f"{_esc(f'{row.period_start:%b %Y}')}: "
                    f"<strong>{_esc(_actual_text(data, meta, row))}</strong> "
                    f"{_status_badge(row.status)}"
                )
            figures.append(
                f'<figure id="trend-{_esc(meta.kpi_id)}"><figcaption>'
                f'<span class="name">{_esc(meta.name)}</span>'
                f'<span class="latest">{headline}</span>'
                f'<span class="sub">Monthly, {_esc(unit)}, {_esc(better)}</span></figcaption>'
                f"{trend_svg(meta, series, data.months, data.as_of, coverage)}</figure>"
            )
        sections.append(
            f'<h3>{_esc(area.replace("_", " "))}</h3><div class="charts">{"".join(figures)}</div>'
        )
    return "".join(sections)


def _legend() -> str:
    items = [
        ('<span class="sw sw-actual"></span>', "actual (complete month)"),
        ('<span class="sw sw-dot"></span>', "open month, to date"),
        ('<span class="sw sw-diamond"></span>', "projected for the open month"),
        ('<span class="sw sw-target"></span>', "target"),
        ('<span class="sw sw-box sw-tband"></span>', "target band"),
        ('<span class="sw sw-bench"></span>', "benchmark"),
        ('<span class="sw sw-box sw-bband"></span>', "benchmark band"),
        ('<span class="sw sw-box sw-open"></span>', "open month (values to date)"),
    ]
    lis = "".join(f'<li><span aria-hidden="true">{s}</span>{_esc(t)}</li>' for s, t in items)
    return f'<ul class="legend" aria-label="Chart legend">{lis}</ul>'


def stale_definitions(data: ReportData) -> dict[str, list[str]]:
    """KPIs whose numbers were computed with another definition version than the current
    one (the definitions changed after the last run): kpi id -> versions in the warehouse."""
    if data.trends.empty:
        return {}
    stored = data.trends.groupby("kpi_id")["definition_version"].agg(lambda s: sorted(set(s)))
    return {
        kpi_id: versions
        for kpi_id, versions in stored.items()
        if kpi_id in data.kpis and versions != [data.kpis[kpi_id].definition_version]
    }


def _definitions(data: ReportData) -> str:
    stored = (
        data.trends.groupby("kpi_id")["definition_version"].agg(lambda s: sorted(set(s)))
        if not data.trends.empty
        else pd.Series(dtype=object)
    ).to_dict()
    stale = stale_definitions(data)
    rows = []
    for meta in sorted(data.kpis.values(), key=lambda m: (m.area, m.name.lower())):
        # The hash the numbers were computed with is the one that explains them.
        shown = ", ".join(stored.get(meta.kpi_id, [])) or meta.definition_version or DASH
        note = ""
        if meta.kpi_id in stale:
            note = (
                f'<span class="ref worse">changed since: now {_esc(meta.definition_version)}, '
                "recomputed on the next run</span>"
            )
        rows.append(
            f'<tr><th scope="row">{_esc(meta.name)}</th>'
            f'<td class="text">{_esc(meta.area.replace("_", " "))}</td>'
            f'<td class="text">{_esc(meta.version or DASH)}</td>'
            f'<td class="text wrap"><span class="mono">{_esc(shown)}</span>{note}</td>'
            f'<td class="text wrap">{_esc(meta.owner)}</td>'
            f'<td class="text wrap">{_esc(meta.description)}</td></tr>'
        )
    return (
        '<div class="card defs"><table class="fixed"><caption>The definition version each KPI '
        "was computed with</caption>"
        '<colgroup><col style="width:19%"><col style="width:10%"><col style="width:7%">'
        '<col style="width:17%"><col style="width:15%"><col style="width:32%"></colgroup>'
        '<thead><tr><th scope="col" class="text">KPI</th><th scope="col" class="text">Area</th>'
        '<th scope="col" class="text">Version</th>'
        '<th scope="col" class="text">Definition hash</th>'
        '<th scope="col" class="text">Owner</th><th scope="col" class="text">What it measures</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _stale_note(data: ReportData) -> str:
    stale = stale_definitions(data)
    if not stale:
        return ""
    names = ", ".join(sorted(data.kpis[k].name for k in stale))
    return (
        '<p class="note" role="note"><strong>Definitions changed.</strong> '
        f"{len(stale)} KPIs were computed with an earlier version of their definition; the "
        f"next run recomputes their history: {_esc(names)}.</p>"
    )


def _example_note(data: ReportData) -> str:
    targets = sum(m.target_example for m in data.kpis.values())
    benchmarks = sum(m.benchmark_example for m in data.kpis.values())
    if not targets and not benchmarks:
        return ""
    return (
        '<p class="note" role="note"><strong>Example values.</strong> '
        f"{targets} of {len(data.kpis)} targets and {benchmarks} benchmarks are examples from "
        "the definitions, not agreed business goals (marked <em>ex.</em>). Statuses measured "
        "against them show how the report works, not how the business is doing.</p>"
    )


_DAY = dt.timedelta(days=1)


def _next_month(day: dt.date) -> dt.date:
    return add_months(day, 1)


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
    return f" ({_esc('; '.join(parts))})" if parts else ""


def render_report(data: ReportData, generated_at: dt.datetime | None = None) -> str:
    """The report page as one HTML string."""
    generated_at = (generated_at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    card = data.scorecard
    counts = card["status"].value_counts().to_dict() if not card.empty else {}
    summary = "".join(
        f"<li><strong>{counts[s]}</strong>{_status_badge(s)}</li>"
        for s in STATUS_ORDER
        if counts.get(s)
    )
    latest = max(card["period_start"]) if not card.empty else None
    open_month = data.months[-1] if data.as_of < _next_month(data.months[-1]) - _DAY else None
    period_text = (
        f"Status for the latest complete month, <strong>{_esc(_month_label(latest, True))}"
        "</strong>."
        if latest
        else "No complete month yet."
    )
    through = data.data_through()
    if open_month is not None and through < open_month:
        period_text += (
            f" {_esc(_month_label(open_month, True))} is still open and none of its days has "
            "loaded yet: its charts show no data, not 0."
        )
    elif open_month is not None:
        period_text += (
            f" {_esc(_month_label(open_month, True))} is still open: its charts show values to "
            f"{through:%d %B}, held against the target for the same days."
        )
    better, worse = top_movers(data)
    movers_period = _month_label(latest, True) if latest else "the latest month"
    no_better = f"No KPI improved by {MIN_MOVE:.0%} or more."
    no_worse = f"No KPI worsened by {MIN_MOVE:.0%} or more."
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="marketing-kpis kpi.publication.report">
<title>KPI scorecard as of {data.as_of.isoformat()}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<header>
<h1>KPI scorecard</h1>
<p>Data as of <strong><time datetime="{through.isoformat()}"
>{through:%d %B %Y}</time></strong>{_as_of_note(data)}. {period_text}</p>
<ul class="summary" aria-label="KPIs by status">{summary}</ul>
</header>
{_example_note(data)}
{_stale_note(data)}
<section aria-labelledby="movers">
<h2 id="movers">Top movers</h2>
<p>Largest relative changes of {_esc(movers_period)} against the month before, of
{MIN_MOVE:.0%} or more. Better and worse follow each KPI's direction: a falling cost is
better.</p>
<div class="movers">{_movers_table("Improved most", better, data, no_better)}
{_movers_table("Worsened most", worse, data, no_worse)}</div>
</section>
<section aria-labelledby="status">
<h2 id="status">Status by area</h2>
<p>Attainment is direction-aware: 100% is on target. Changes compare with the previous month
and the same month last year.</p>
{_status_tables(data)}
</section>
<section aria-labelledby="trends">
<h2 id="trends">Trends, last {TREND_MONTHS} months</h2>
{_legend()}
{_charts(data)}
</section>
<section aria-labelledby="definitions">
<h2 id="definitions">Definitions</h2>
{_definitions(data)}
</section>
<footer>Generated {generated_at:%Y-%m-%d %H:%M} UTC from the {_esc(data.dialect)} warehouse
tables kpi.kpi_comparisons and kpi.kpi_targets (total rows, monthly).</footer>
</main>
</body>
</html>
"""


def build_report(wh: Warehouse, tables: KpiTables, as_of: dt.date | None = None) -> str:
    """The HTML report of the warehouse's KPI tables as of ``as_of`` (default: the date the
    tables were computed through)."""
    return render_report(load_report_data(wh, tables, as_of))


def write_report(html_text: str, folder: Path | str, as_of: dt.date) -> Path:
    """Write the page to ``<folder>/scorecard-<as-of>.html``; return its path.

    Written to a temporary file and renamed, so a reader never opens half a report.
    """
    path = report_path(folder, as_of)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(html_text, encoding="utf-8")
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------------------------
# Summaries for other viewers (Dagster metadata)
# ---------------------------------------------------------------------------------------------


def summary_frame(data: ReportData) -> pd.DataFrame:
    """The status table as formatted text columns, for a markdown table."""
    rows = []
    for r in data.scorecard.itertuples(index=False):
        meta = data.meta(r.kpi_id, r.kpi_name, r.area)
        band = _band_of(data, r.kpi_id, r.period_start)
        target = _num(r.target)
        rows.append(
            {
                "area": r.area,
                "KPI": meta.name,
                "month": f"{r.period_start:%Y-%m}",
                "actual": _actual_text(data, meta, r),
                "target": _value(meta, target)
                if target is not None or band is None
                else _range(meta, band[0], band[1]),
                "attainment": _attainment(data, meta, r),
                "vs previous": NO_HISTORY
                if _no_history(data, r, r.previous, 1)
                else _pct(r.change_rel, signed=True),
                "status": STATUS_TEXT.get(r.status, r.status),
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
                "value": _num(r.actual) if loaded else None,
                "complete": bool(r.is_complete_period),
            }
        )
        target = _num(r.target)
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
