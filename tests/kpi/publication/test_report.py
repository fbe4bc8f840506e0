"""The HTML scorecard report: built from a real warehouse, opened in a real browser.

The warehouse is filled straight from the demo generators and refreshed with the
``kpi.refresh`` functions (the same SQL the Dagster assets run), which keeps the test fast
and independent of the ingestion code. The KPIs are the project's own, computed at month
grain without dimension slices: the report reads only monthly total rows, and those are the
same either way (day/week grains and slices would triple the build time for nothing here).
The page is rendered by headless Chromium: a screenshot proves it paints, the rendered DOM
proves every KPI has a row and a chart.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from demo import extra_sources, generator
from kpi.compute.periods import Period
from kpi.compute.tables import KpiTables
from kpi.language.catalog import DEFAULT_DEFINITIONS_DIR, Catalog
from kpi.language.loader import load_catalog
from kpi.language.models import Grain
from kpi.publication.report import (
    build_report,
    judge_change,
    load_report_data,
    render_report,
    report_path,
    top_movers,
    trend_svg,
    vega_lite_trend,
    write_report,
)
from kpi.refresh import (
    refresh_catalog,
    refresh_comparisons,
    refresh_kpi_values,
    refresh_periods,
    refresh_targets,
)
from kpi.warehouse.connection import Warehouse
from tests.browser import FLAGS

D = dt.date
# Three complete months and an open one: enough for trends, movers and a partial month.
START, AS_OF = D(2025, 12, 1), D(2026, 3, 18)
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


# ---------------------------------------------------------------------------------------------
# A small warehouse from the demo generators
# ---------------------------------------------------------------------------------------------


def _ga4_rows(start: dt.date, end: dt.date) -> pd.DataFrame:
    api = generator.ga4_traffic(start, end)
    return pd.DataFrame(
        {
            "property_id": generator.DEMO_PROPERTY_ID,
            "date": api["date"],
            "session_default_channel_group": api["sessionDefaultChannelGroup"],
            "session_source": api["sessionSource"],
            "session_medium": api["sessionMedium"],
            "session_campaign_name": api["sessionCampaignName"],
            "device_category": api["deviceCategory"],
            "sessions": api["sessions"],
            "engaged_sessions": api["engagedSessions"],
            "new_users": api["newUsers"],
            "key_events": api["keyEvents"],
            "transactions": api["transactions"],
            "purchase_revenue": api["purchaseRevenue"],
            "is_other_row": False,
        }
    )


def _users_monthly(traffic: pd.DataFrame) -> pd.DataFrame:
    # GA4 counts users per month; the test only needs plausible numbers, not GA4's.
    month = pd.to_datetime(traffic["date"]).dt.to_period("M").dt.start_time.dt.date
    sums = traffic.groupby(month)[["sessions", "new_users"]].sum()
    return pd.DataFrame(
        {
            "property_id": generator.DEMO_PROPERTY_ID,
            "month": sums.index,
            "total_users": (sums["sessions"] * 0.7).round().astype("int64").to_numpy(),
            "new_users": sums["new_users"].to_numpy(),
            "active_users": (sums["sessions"] * 0.6).round().astype("int64").to_numpy(),
        }
    )


def _ad_spend(start: dt.date, end: dt.date) -> pd.DataFrame:
    frame = generator.ad_spend(start, end)
    usd = frame["currency"] == "USD"
    rate = frame["date"].map(lambda d: 1 / generator.eur_usd_rate(d)).where(usd, 1.0)
    return frame.assign(
        original_cost=frame["cost"],
        original_currency=frame["currency"],
        fx_rate=rate,
        cost=(frame["cost"] * rate).round(2),
    ).drop(columns="currency")


def _raw_frames(start: dt.date, end: dt.date) -> dict[str, pd.DataFrame]:
    traffic = _ga4_rows(start, end)
    return {
        "ga4_traffic": traffic,
        "ga4_users_monthly": _users_monthly(traffic),
        "ad_spend": _ad_spend(start, end),
        "orders": generator.orders(start, end),
        "survey_answers": generator.survey_answers(start, end),
        "donations": extra_sources.donations(start, end),
        "volunteer_hours": extra_sources.volunteer_hours(start, end),
        "operations": extra_sources.operations_output(start, end),
        "market": extra_sources.market_revenue(start, end),
    }


def monthly_catalog() -> Catalog:
    """The project's KPIs at month grain only, without dimension slices."""
    full = load_catalog(DEFAULT_DEFINITIONS_DIR)
    kpis = {
        kpi_id: kpi.model_copy(update={"grains": [Grain.month], "dimensions": []})
        for kpi_id, kpi in full.kpis.items()
    }
    return dataclasses.replace(full, kpis=kpis)


def build_warehouse(url: str, start: dt.date = START, as_of: dt.date = AS_OF) -> KpiTables:
    """Load demo rows into the raw tables and refresh every KPI table through ``as_of``."""
    tables = KpiTables.for_catalog(monthly_catalog())
    wh = Warehouse(url)
    try:
        wh.ensure_tables(tables.all_tables())
        for name, frame in _raw_frames(start, as_of).items():
            if name not in tables.raw_tables:
                continue
            table = tables.raw_tables[name]
            # Only declared columns: the source declarations may grow independently.
            wh.replace_rows(table, None, frame[[c for c in frame.columns if c in table.c]])
        refresh_catalog(wh, tables)
        periods = refresh_periods(wh, tables, as_of)
        refresh_kpi_values(wh, tables)
        refresh_targets(wh, tables, [Period(**p.as_row()) for p in periods])
        refresh_comparisons(wh, tables)
    finally:
        wh.dispose()
    return tables


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> tuple[Warehouse, KpiTables]:
    url = f"duckdb:///{tmp_path_factory.mktemp('report') / 'warehouse.duckdb'}"
    tables = build_warehouse(url)
    wh = Warehouse(url)
    yield wh, tables
    wh.dispose()


@pytest.fixture(scope="module")
def report_file(warehouse, tmp_path_factory) -> Path:
    wh, tables = warehouse
    return write_report(build_report(wh, tables, AS_OF), tmp_path_factory.mktemp("out"), AS_OF)


# ---------------------------------------------------------------------------------------------
# Headless Chromium
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> str:
    """The browser binary, or fail/skip: CI sets KPI_REQUIRE_BROWSER=1 and must not skip.

    A fixture listed first, so a missing browser is reported before the warehouse is built.
    """
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    message = (
        "headless Chromium is not installed (looked for "
        + ", ".join(CHROMIUM_CANDIDATES)
        + "); install it with `apt-get install -y chromium`"
    )
    if os.environ.get("KPI_REQUIRE_BROWSER") == "1":
        pytest.fail(message + " - KPI_REQUIRE_BROWSER=1 forbids skipping", pytrace=False)
    pytest.skip(message)


def run_browser(binary: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Chromium with no network, no profile and no background work: only the page."""
    command = [binary, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)


def png_pixels(path: Path, max_rows: int = 150) -> tuple[int, int, set[bytes]]:
    """(width, height, distinct RGB colours of the top ``max_rows`` rows) of an 8-bit
    RGB/RGBA, non-interlaced PNG.

    A tiny reader, so the test needs no imaging library. Rows are unfiltered in pure Python,
    which is slow, so only the top of the page is read (the title, the status summary and
    the example note: hundreds of colours, where a blank page has one).
    """
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    width = height = 0
    channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    colours: set[bytes] = set()
    for y in range(min(height, max_rows)):
        start = y * (stride + 1)
        filter_type, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            up_left = previous[i - channels] if i >= channels else 0
            if filter_type == 1:
                line[i] = (line[i] + left) & 0xFF
            elif filter_type == 2:
                line[i] = (line[i] + up) & 0xFF
            elif filter_type == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif filter_type == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                predictor = left if pa <= pb and pa <= pc else (up if pb <= pc else up_left)
                line[i] = (line[i] + predictor) & 0xFF
        colours.update(bytes(line[x : x + 3]) for x in range(0, stride, channels))
        previous = line
    return width, height, colours


class _DomFacts(HTMLParser):
    """What the rendered DOM holds: charts, status-table row headers, all text."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: list[str] = []
        self.row_headers: list[str] = []
        self.text: list[str] = []
        self._in_status_table = False
        self._in_row_header = False
        self._buffer = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "svg" and "trend" in (attrs.get("class") or "").split():
            self.charts.append(attrs.get("id") or "")
        if tag == "table" and "status-table" in (attrs.get("class") or "").split():
            self._in_status_table = True
        if self._in_status_table and tag == "th" and attrs.get("scope") == "row":
            self._in_row_header, self._buffer = True, ""

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_status_table = False
        if tag == "th" and self._in_row_header:
            self.row_headers.append(self._buffer.strip())
            self._in_row_header = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_row_header:
            self._buffer += data


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_report_renders_in_headless_chromium(browser, warehouse, report_file, tmp_path):
    _, tables = warehouse
    names = {k.name for k in tables.catalog.kpis.values()}

    shot = tmp_path / "report.png"
    # One launch does both: the screenshot is written and the rendered DOM printed.
    result = run_browser(
        browser,
        tmp_path,
        f"--screenshot={shot}",
        "--dump-dom",
        "--window-size=1400,2400",
        report_file.as_uri(),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.exists(), f"no screenshot; chromium said:\n{result.stderr[-2000:]}"
    assert shot.stat().st_size > 50_000, shot.stat().st_size
    width, height, colours = png_pixels(shot)
    assert (width, height) == (1400, 2400)
    # A blank page has one colour; text, status badges and tables give many more.
    assert len(colours) > 50, f"the screenshot looks blank: {len(colours)} colours"

    facts = _DomFacts()
    facts.feed(result.stdout)
    text = " ".join(facts.text)
    # The status table has a row for every KPI, and every KPI has its own chart.
    assert set(facts.row_headers) == names, set(facts.row_headers) ^ names
    assert sorted(facts.charts) == sorted(f"chart-{k}" for k in tables.catalog.kpis)
    assert result.stdout.count("<svg") == len(tables.catalog.kpis)
    assert "18 March 2026" in text
    assert "February 2026" in text  # the latest complete month
    assert "Example values." in text
    # Nothing may reach out: no scripts, stylesheets, fonts or images from elsewhere.
    html = report_file.read_text()
    assert not re.search(r"<script|<link|@import|url\(|src=", html, re.IGNORECASE)


def test_report_content(warehouse):
    wh, tables = warehouse
    data = load_report_data(wh, tables)
    assert data.as_of == AS_OF
    assert data.months[0] == D(2025, 3, 1) and data.months[-1] == D(2026, 3, 1)
    # The status table is the scorecard: the latest complete month of each KPI.
    assert set(data.scorecard["kpi_id"]) == set(tables.catalog.kpis)
    assert set(data.scorecard["period_start"]) == {D(2026, 2, 1)}
    # Four months per KPI in the window: December to February complete, March open.
    sessions = data.series("sessions")
    months = [D(2025, 12, 1), D(2026, 1, 1), D(2026, 2, 1), D(2026, 3, 1)]
    assert list(sessions["period_start"]) == months
    assert list(sessions["is_complete_period"].astype(bool)) == [True, True, True, False]

    svg = trend_svg(data.meta("sessions"), sessions, data.months, data.as_of)
    assert svg.count('class="point"') == 3 and svg.count('class="point-open"') == 1
    assert 'class="target-line"' in svg and 'class="benchmark-line"' in svg
    assert "to 18 Mar" in svg
    # Ad spend has a target band, engagement rate a benchmark band.
    ad = trend_svg(data.meta("ad_cost"), data.series("ad_cost"), data.months, data.as_of)
    assert 'class="target-band"' in ad
    er = data.series("engagement_rate")
    assert 'class="benchmark-band"' in trend_svg(
        data.meta("engagement_rate"), er, data.months, data.as_of
    )

    better, worse = top_movers(data)
    for frame, verdict in ((better, "better"), (worse, "worse")):
        assert (frame["verdict"] == verdict).all()
        assert list(frame["change_rel"].abs()) == sorted(frame["change_rel"].abs(), reverse=True)

    spec = vega_lite_trend(data, "sessions")
    assert spec["$schema"].endswith("vega-lite/v5.json")
    assert len([v for v in spec["data"]["values"] if v["series"] == "actual"]) == 4


def test_report_refuses_a_date_the_warehouse_is_not_computed_for(warehouse):
    wh, tables = warehouse
    with pytest.raises(ValueError, match="computed through 2026-03-18"):
        build_report(wh, tables, D(2026, 3, 10))


def test_report_file_name_and_escaping(warehouse, tmp_path):
    wh, tables = warehouse
    data = load_report_data(wh, tables)
    # A KPI name is text, never markup.
    sessions = data.kpis["sessions"]
    data.kpis["sessions"] = dataclasses.replace(
        sessions, name="<b>Sessions</b>", owner="Ads & <Web>", description='"Visits" & more'
    )
    html = render_report(data)
    assert "<b>Sessions</b>" not in html and "&lt;b&gt;Sessions&lt;/b&gt;" in html
    # Escaped exactly once, wherever the text lands (tables, charts, definitions).
    assert "Ads &amp; &lt;Web&gt;" in html and "&quot;Visits&quot; &amp; more" in html
    assert "&amp;amp;" not in html and "&amp;lt;" not in html and "&amp;quot;" not in html
    assert "<Web>" not in html
    path = write_report(html, tmp_path / "reports", AS_OF)
    assert path == report_path(tmp_path / "reports", AS_OF)
    assert path.name == "scorecard-2026-03-18.html"


def test_kpi_report_asset_writes_the_file_and_metadata(warehouse, tmp_path):
    from dagster import materialize

    from assets.kpis.report import kpi_report
    from resources.reports import ReportResource
    from resources.warehouse import WarehouseResource

    wh, _ = warehouse
    result = materialize(
        [kpi_report],
        resources={
            "warehouse": WarehouseResource(url=wh.url),
            "reports": ReportResource(folder=str(tmp_path / "elsewhere")),
        },
        # The run's config overrides the resource's folder.
        run_config={"ops": {"kpi_report": {"config": {"folder": str(tmp_path / "reports")}}}},
        raise_on_error=True,
    )
    metadata = result.asset_materializations_for_node("kpi_report")[0].metadata
    path = Path(metadata["path"].value)
    assert path == (tmp_path / "reports" / "scorecard-2026-03-18.html").resolve()
    assert path.read_text().startswith("<!DOCTYPE html>")
    summary = [r.data for r in metadata["summary"].records]
    assert any(r.get("KPI") == "Sessions" and r.get("month") == "2026-02" for r in summary), summary
    assert metadata["report"].value == path.as_uri()  # a link in the UI
    spec = metadata["headline_trend"].value
    assert spec["$schema"].endswith("vega-lite/v5.json") and spec["data"]["values"]


def test_report_templates_ship_with_the_package():
    # The page is rendered from files next to the code: an installed package needs them.
    import tomllib
    from fnmatch import fnmatch

    import kpi.publication.report as report

    config = tomllib.loads((Path(__file__).resolve().parents[3] / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["kpi.publication.report"]
    folder = Path(report.__file__).parent
    files = [p.relative_to(folder).as_posix() for p in (folder / "templates").iterdir()]
    assert files and all(any(fnmatch(f, pattern) for pattern in patterns) for f in files)


def test_kpi_report_folder_comes_from_the_reports_resource(warehouse, tmp_path, monkeypatch):
    # The kernel reads no environment: the folder is the resource's (the code location sets
    # it from KPI_REPORT_DIR), whatever the environment of the run says.
    from dagster import materialize

    from assets.kpis.report import kpi_report
    from resources.reports import ReportResource
    from resources.warehouse import WarehouseResource

    monkeypatch.setenv("KPI_REPORT_DIR", str(tmp_path / "from-the-environment"))
    wh, _ = warehouse
    result = materialize(
        [kpi_report],
        resources={
            "warehouse": WarehouseResource(url=wh.url),
            "reports": ReportResource(folder=str(tmp_path / "from-the-resource")),
        },
        raise_on_error=True,
    )
    path = Path(result.asset_materializations_for_node("kpi_report")[0].metadata["path"].value)
    assert path == (tmp_path / "from-the-resource" / "scorecard-2026-03-18.html").resolve()
    assert not (tmp_path / "from-the-environment").exists()


@pytest.mark.parametrize(
    ("direction", "actual", "before", "band", "expected"),
    [
        ("higher_is_better", 110, 100, None, "better"),
        ("higher_is_better", 90, 100, None, "worse"),
        ("lower_is_better", 0.7, 0.8, None, "better"),  # a cheaper click
        ("lower_is_better", 0.9, 0.8, None, "worse"),
        ("higher_is_better", 100.01, 100, None, "steady"),  # rounds to +0.0%
        ("within_band", 35, 33, (30, 40), "steady"),  # inside the band either way
        ("within_band", 42, 45, (30, 40), "better"),  # closer to the band
        ("within_band", 28, 31, (30, 40), "worse"),
        ("within_band", 28, 31, None, None),  # no band: no judgement
        ("higher_is_better", None, 100, None, None),
    ],
)
def test_judge_change_is_direction_aware(direction, actual, before, band, expected):
    assert judge_change(direction, actual, before, band) == expected


@pytest.mark.postgres
def test_the_same_report_on_postgresql(warehouse, postgres_url):
    # The report reads plain SQLAlchemy selects: PostgreSQL must give the same page. The KPI
    # tables are copied over rather than recomputed (the refresh on PostgreSQL is tested
    # elsewhere); they are small.
    wh, tables = warehouse
    pg = Warehouse(postgres_url)
    try:
        pg.ensure_tables(tables.all_tables())
        for table in (tables.periods, tables.targets, tables.comparisons):
            pg.replace_rows(table, None, wh.read(sa.select(table)))
        at = dt.datetime(2026, 3, 19, 6, 0, tzinfo=dt.UTC)
        on_duckdb = render_report(load_report_data(wh, tables), generated_at=at)
        on_postgres = render_report(load_report_data(pg, tables), generated_at=at)
    finally:
        pg.dispose()
    assert on_postgres.replace("postgresql warehouse", "duckdb warehouse") == on_duckdb
