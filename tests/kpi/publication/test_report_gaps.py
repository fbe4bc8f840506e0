"""The report shows what is known: no crash to zero, no jump from before the data, no
four-digit attainment, and better/worse against the target that follows the KPI's direction.

A demo-shaped warehouse (the demo generators, 5 October 2025 to 30 November 2026, the
project's KPIs at month grain) refreshed as a UI run on 1 December does it: the KPI tables
run to 1 December, but nothing of December has loaded. December's sums are 0 in the tables
for want of rows; the report must draw December as missing. November 2026 holds Black
Friday, so revenue grows by some 30% on October against a growth target of 1%: as a ratio
that attainment is four digits. Every test runs on DuckDB and on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from html.parser import HTMLParser

import pandas as pd
import pytest
import sqlalchemy as sa

from kpi.compute.coverage import Coverage, source_coverage
from kpi.compute.periods import Period
from kpi.compute.tables import KpiTables
from kpi.publication.report import (
    load_report_data,
    render_report,
    top_movers,
    trend_svg,
    vega_lite_trend,
)
from kpi.refresh import (
    refresh_catalog,
    refresh_comparisons,
    refresh_kpi_values,
    refresh_periods,
    refresh_targets,
)
from kpi.warehouse.connection import Warehouse
from tests.conftest import _admin_url
from tests.kpi.publication.test_report import _raw_frames, monthly_catalog

D = dt.date
FIRST_DAY, LOADED_THROUGH, AS_OF = D(2025, 10, 5), D(2026, 11, 30), D(2026, 12, 1)
# Four-digit percentages, with or without a thousands separator: 1000%, 3337.7%, 2,308%.
FOUR_DIGIT_PERCENT = re.compile(r"\d{4,}(?:\.\d+)?%|\d{1,3}(?:,\d{3})+(?:\.\d+)?%")


def _build(url: str, first_day: dt.date, loaded_through: dt.date, as_of: dt.date) -> KpiTables:
    """Raw rows from ``first_day`` to ``loaded_through``; KPI tables refreshed to ``as_of``."""
    tables = KpiTables.for_catalog(monthly_catalog())
    wh = Warehouse(url)
    try:
        wh.ensure_tables(tables.all_tables())
        for name, frame in _raw_frames(first_day, loaded_through).items():
            if name in tables.raw_tables:
                table = tables.raw_tables[name]
                wh.replace_rows(table, None, frame[[c for c in frame.columns if c in table.c]])
        refresh_catalog(wh, tables)
        periods = refresh_periods(wh, tables, as_of)
        refresh_kpi_values(wh, tables)
        refresh_targets(wh, tables, [Period(**p.as_row()) for p in periods])
        refresh_comparisons(wh, tables)
    finally:
        wh.dispose()
    return tables


def _url(kind: str, tmp_path_factory, request) -> str:
    if kind == "duckdb":
        return f"duckdb:///{tmp_path_factory.mktemp('gaps') / 'warehouse.duckdb'}"
    admin = request.getfixturevalue("postgres_admin")
    name = f"kpi_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    request.addfinalizer(drop)
    return _admin_url().set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="module", params=["duckdb", "postgresql"])
def december_first(request, tmp_path_factory):
    """(warehouse, tables, report data, page) of the run on 1 December."""
    url = _url(request.param, tmp_path_factory, request)
    tables = _build(url, FIRST_DAY, LOADED_THROUGH, AS_OF)
    wh = Warehouse(url)
    data = load_report_data(wh, tables)
    at = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)
    yield wh, tables, data, render_report(data, generated_at=at)
    wh.dispose()


class _Cells(HTMLParser):
    """The status table's cells by KPI name: {name: [cell text, ...]}, and cell classes."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self.classes: dict[str, list[list[str]]] = {}
        self._table = False
        self._row: list[str] | None = None
        self._row_classes: list[list[str]] = []
        self._cell: str | None = None
        self._depth_classes: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and "status-table" in (attrs.get("class") or ""):
            self._table = True
        if not self._table:
            return
        if tag == "tr":
            self._row, self._row_classes = [], []
        elif tag in ("th", "td") and self._row is not None:
            self._cell, self._depth_classes = "", [attrs.get("class") or ""]
        elif self._cell is not None and attrs.get("class"):
            self._depth_classes.append(attrs["class"])

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = False
        if not self._table or self._row is None:
            return
        if tag in ("th", "td") and self._cell is not None:
            self._row.append(" ".join(self._cell.split()))
            self._row_classes.append(self._depth_classes)
            self._cell = None
        elif tag == "tr":
            if len(self._row) > 2 and self._row[0] != "KPI":  # not the header row
                self.rows[self._row[0]] = self._row
                self.classes[self._row[0]] = self._row_classes
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def _cells(page: str) -> _Cells:
    parser = _Cells()
    parser.feed(page)
    return parser


# Status table columns: KPI, Month, Actual, Target, Attainment, vs previous, vs last year, ...
ACTUAL, ATTAINMENT, VS_PREVIOUS, VS_LAST_YEAR = 2, 4, 5, 6


# ---------------------------------------------------------------------------------------------
# 8: the open month with nothing loaded is missing, not 0
# ---------------------------------------------------------------------------------------------


def test_coverage_is_read_per_source_in_the_reporting_time_zone(december_first):
    wh, tables, data, _ = december_first
    sources = source_coverage(wh, tables.compiler)
    # Day sources end on the last day loaded. Orders carry UTC timestamps: the last order of
    # 30 November (local, Europe/Copenhagen) is before 23:00 UTC, so it is still 30 November.
    for name in ("ga4_traffic", "ad_spend", "orders"):
        assert sources[name] == Coverage(FIRST_DAY, LOADED_THROUGH), name
    # A month-grain source covers its last month to the month's last day.
    assert sources["ga4_users_monthly"] == Coverage(D(2025, 10, 1), D(2026, 11, 30))
    assert data.data_through() == LOADED_THROUGH
    # A KPI covers what all its sources cover: ROAS reads orders (or GA4) and ad spend.
    assert data.coverage["roas"] == Coverage(FIRST_DAY, LOADED_THROUGH)


@pytest.mark.parametrize("kpi_id", ["sessions", "total_users_month", "ad_cost"])
def test_unloaded_open_month_is_a_gap_not_a_crash_to_zero(december_first, kpi_id):
    _, _, data, _ = december_first
    series = data.series(kpi_id)
    december = series[series["period_start"] == D(2026, 12, 1)]
    assert len(december) == 1 and not bool(december.iloc[0].is_complete_period)
    # What the tables hold for December: 0 for want of rows (or NULL, for a missing month of
    # a non-additive source). Either way it is no measurement.
    stored = december.iloc[0].actual
    assert pd.isna(stored) or stored == 0

    svg = trend_svg(data.meta(kpi_id), series, data.months, data.as_of, data.coverage.get(kpi_id))
    # December 2025 to November 2026: twelve complete months with a point each; December
    # 2026 has none (neither a filled nor a hollow "to date" point) and is marked no data.
    assert svg.count('class="point"') == 12
    assert 'class="point-open"' not in svg and 'class="projected"' not in svg
    assert svg.count('class="partial no-data"') == 1
    assert "Dec 2026: no data loaded yet (last day with data: 30 November)" in svg
    assert ">no data</text>" in svg and "to 1 Dec" not in svg
    # The axis is not stretched down to a 0 nobody measured.
    ticks = re.findall(r'class="tick">([^<]*)</text>', svg)
    zero = re.compile(r"^0(\.0+)?(k|M)?%?$")
    assert not [t for t in ticks if zero.match(t)], ticks
    # Nor by December's target to date (one day of the monthly target): with no actual to
    # hold against it, it is left out too.
    assert "target Dec 2026" not in svg and "benchmark Dec 2026" not in svg
    # The Vega-Lite view of the same data has a gap too.
    spec = vega_lite_trend(data, kpi_id)
    actual = {v["month"]: v["value"] for v in spec["data"]["values"] if v["series"] == "actual"}
    assert actual["2026-12-01"] is None and actual["2026-11-01"] > 0


def test_the_page_says_where_the_data_ends(december_first):
    _, _, _, page = december_first
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert (
        "Data as of 30 November 2026 (the last day with loaded data; the KPI tables run to "
        "01 December)" in text
    )
    assert "none of its days has loaded yet: its charts show no data, not 0" in text
    assert "its charts show values to 01 December" not in text


# ---------------------------------------------------------------------------------------------
# 6: a rate of change's attainment is in points; never four-digit percentages
# ---------------------------------------------------------------------------------------------


def test_growth_attainment_is_in_points_and_no_percentage_has_four_digits(december_first):
    _, _, data, page = december_first
    growth = data.scorecard.set_index("kpi_id").loc["revenue_growth_mom"]
    actual, target = float(growth.actual), float(growth.target)
    assert growth.period_start == D(2026, 11, 1)
    # Black Friday month: revenue grew far more than the 1% target, a ratio of 10 or more.
    assert target == pytest.approx(0.01) and actual / target >= 10
    row = _cells(page).rows[data.kpis["revenue_growth_mom"].name]
    # Higher is better: the gap is actual - target, in percentage points.
    points = f"{(actual - target) * 100:+.1f} pp"
    assert row[ATTAINMENT].startswith(points), row
    # The attainment, then the gap in words: "+32.4 pp" and "32.4 pp better".
    assert row[ATTAINMENT] == f"{points}{abs(actual - target) * 100:.1f} pp better", row
    # Nowhere on the page, not only in that cell.
    assert not FOUR_DIGIT_PERCENT.findall(page), FOUR_DIGIT_PERCENT.findall(page)


def test_growth_change_against_previous_is_in_points(december_first):
    """33.4% after 4.9% moved by +28.4 pp; its relative change (+576%) means nothing."""
    _, _, data, page = december_first
    growth = data.scorecard.set_index("kpi_id").loc["revenue_growth_mom"]
    actual, previous = float(growth.actual), float(growth.previous)
    row = _cells(page).rows[data.kpis["revenue_growth_mom"].name]
    assert (
        row[VS_PREVIOUS].lstrip("\u25b2\u25bc ").startswith(f"{(actual - previous) * 100:+.1f} pp")
    ), row
    assert "%" not in row[VS_PREVIOUS], row


# ---------------------------------------------------------------------------------------------
# 5: better/worse against the target follows the KPI's direction (variance_favourable)
# ---------------------------------------------------------------------------------------------


def test_gap_to_target_is_direction_aware(december_first):
    _, _, data, page = december_first
    cells = _cells(page)
    card = data.scorecard.set_index("kpi_id")
    checked = 0
    # The amounts in each KPI's declared `format:` (€0.00, €#,##0, #,##0).
    shown = {
        "cost_per_acquisition": lambda g: f"€{g:,.2f}",
        "revenue": lambda g: f"€{g:,.0f}",
        "sessions": lambda g: f"{g:,.0f}",
    }
    for kpi_id, sign in (("cost_per_acquisition", -1), ("revenue", 1), ("sessions", 1)):
        r = card.loc[kpi_id]
        gap = sign * (float(r.actual) - float(r.target))  # positive = better
        if "variance_favourable" in card.columns and pd.notna(r.variance_favourable):
            assert float(r.variance_favourable) == pytest.approx(gap)
        meta = data.kpis[kpi_id]
        name = meta.name
        words = "better" if gap > 0 else "worse"
        amount = shown[kpi_id](abs(gap))
        assert cells.rows[name][ATTAINMENT].endswith(f"{amount} {words}"), cells.rows[name]
        assert words in " ".join(cells.classes[name][ATTAINMENT])
        checked += 1
    assert checked == 3


# ---------------------------------------------------------------------------------------------
# 3: a period before the data starts is "no history", never a change from 0 or a part
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["duckdb", "postgresql"])
def short_history(request, tmp_path_factory):
    """Data from 5 October 2026: October is partial, last year is before the data."""
    url = _url(request.param, tmp_path_factory, request)
    tables = _build(url, D(2026, 10, 5), D(2026, 11, 30), D(2026, 11, 30))
    wh = Warehouse(url)
    yield load_report_data(wh, tables)
    wh.dispose()


def test_no_history_instead_of_a_change(short_history):
    data = short_history
    page = render_report(data, generated_at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    rows = _cells(page).rows
    assert set(data.scorecard["period_start"]) == {D(2026, 11, 1)}
    assert len(rows) == len(data.kpis)
    # A month-grain source (GA4 users by month) has a row for all of October: its KPIs have
    # a previous month. Every other KPI reads a daily source that starts on 5 October.
    compiler = KpiTables.for_catalog(monthly_catalog()).compiler
    monthly = {
        k.name
        for k in compiler.catalog.kpis.values()
        if all(compiler.catalog.sources[n].grain == "month" for n in compiler.source_names(k))
    }
    assert monthly == {"New users (month)", "Users (month)"}
    for name, row in rows.items():
        # November 2025 is before the data; October 2026 starts before it (5 October).
        assert row[VS_LAST_YEAR] == "no history", (name, row)
        if name in monthly:
            assert row[VS_PREVIOUS] != "no history", (name, row)
        else:
            assert row[VS_PREVIOUS] == "no history", (name, row)
    # No mover from a partial month: such a "change" is a jump that never happened.
    better, worse = top_movers(data)
    movers = {*better["name"], *worse["name"]}
    assert movers <= monthly, movers


def test_terminal_scorecard_says_no_history():
    from kpi.publication.scorecard import render

    catalog = monthly_catalog()
    row = {
        "area": "marketing",
        "kpi_id": "sessions",
        "period_start": D(2026, 11, 1),
        "actual": 137_605.0,
        "target": 120_000.0,
        "status": "on_track",
    }
    frame = pd.DataFrame(
        [
            {**row, "previous": None, "change_rel": None},
            {**row, "kpi_id": "revenue", "previous": 165_000.0, "change_rel": 0.335},
        ]
    )
    lines = render(frame, catalog).splitlines()
    assert "no history" in lines[2] and "+33.5%" in lines[3], lines


def test_terminal_scorecard_shows_a_growth_change_in_points():
    from kpi.language.loader import load_catalog
    from kpi.publication.scorecard import render

    catalog = load_catalog()
    row = {
        "area": "sales",
        "kpi_id": "revenue_growth_mom",
        "period_start": D(2026, 11, 1),
        "actual": 0.3338,
        "previous": 0.0494,
        "change_rel": 0.3338 / 0.0494 - 1,  # +576%: what the scorecard printed before
        "target": 0.01,
        "status": "on_track",
    }
    line = render(pd.DataFrame([row]), catalog).splitlines()[2]
    assert "+28.4 pp" in line and "576" not in line, line


def test_attainment_text_never_prints_four_digits():
    from kpi.status.target_gap import attainment_text

    assert attainment_text(False, 55.0 / 57.91, None) == "95.0%"  # 0.9497
    assert attainment_text(False, 9.99, None) == "999.0%"
    # A ratio of 10 or more says "far off"; its digits would only crowd the table.
    assert attainment_text(False, 33.38, None) == ">999%"
    assert attainment_text(False, -12.0, None) == "<-999%"
    # A rate of change: the gap in points, whatever the stored attainment says.
    assert attainment_text(True, 33.38, 0.3338 - 0.01) == "+32.4 pp"
    assert attainment_text(True, None, -0.0512) == "-5.1 pp"
    assert attainment_text(True, 1.0, None) == "\u2013"
