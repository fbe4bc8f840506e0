"""Alert messages say better or worse against the target by the KPI's direction, and give a
growth KPI's gap in percentage points, never a four-digit ratio. On DuckDB and PostgreSQL.

The comparison rows are written straight into ``kpi_comparisons`` (the alert reads them; how
they are computed is tested elsewhere), once as the comparisons now write them (with
``variance_favourable``, and a growth KPI's attainment in points) and once as a table from
before that column (NULL; a growth attainment that is a ratio).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from kpi.compute.tables import KpiTables
from kpi.language.loader import load_catalog
from kpi.monitoring.alerts import evaluate, render_message
from kpi.warehouse.connection import Warehouse

SOURCES_YAML = """\
reporting: {time_zone: UTC, currency: EUR}
dimensions: {}
sources:
  shop:
    table: raw.shop
    time: {column: date, type: date, time_zone: UTC}
    columns:
      date: {type: date}
      cost: {type: number, additivity: additive}
      orders: {type: integer, additivity: additive}
      revenue: {type: number, additivity: additive}
"""

KPIS_YAML = """\
area: test
kpis:
  - id: cpa
    name: Cost per acquisition
    description: Cost per order.
    owner: ads@example.com
    unit: currency
    direction: lower_is_better
    type: ratio
    numerator: {source: shop, agg: sum, expr: cost}
    denominator: {source: shop, agg: sum, expr: orders}
    grains: [month]
    target: {value: 55, grain: month}
    alerts:
      - {rule: status_change, to: at_risk, grain: month}
  - id: revenue
    name: Revenue
    description: Revenue.
    owner: shop@example.com
    unit: currency
    direction: higher_is_better
    type: simple
    measure: {source: shop, agg: sum, expr: revenue}
    grains: [month]
  - id: growth
    name: Sales growth
    description: Revenue against the previous month.
    owner: shop@example.com
    unit: percent
    direction: higher_is_better
    type: period_over_period
    period_over_period: {of: revenue, offset: previous_period}
    grains: [month]
    target: {value: 0.01, grain: month}
    alerts:
      - {rule: status_change, to: on_track, grain: month}
"""


DIRECTION = {"cpa": "lower_is_better", "growth": "higher_is_better"}


def _row(kpi_id, month, status, actual, target, attainment, favourable) -> dict:
    start = dt.date(2026, month, 1)
    end = (pd.Timestamp(start) + pd.offsets.MonthEnd(0)).date()
    return {
        "kpi_id": kpi_id,
        "kpi_name": kpi_id,
        "area": "test",
        "direction": DIRECTION[kpi_id],
        "grain": "month",
        "period_start": start,
        "period_end": end,
        "is_complete_period": True,
        "actual": actual,
        "target": target,
        "attainment": attainment,
        "variance": None if actual is None else actual - target,
        "variance_favourable": favourable,
        "status": status,
        "definition_version": "v1",
        "computed_at": dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
    }


@pytest.mark.parametrize("table_from", ["now", "before_variance_favourable"])
def test_alert_gap_follows_direction_and_growth_is_in_points(
    warehouse_url, tmp_path: Path, table_from: str
):
    (tmp_path / "sources.yaml").write_text(SOURCES_YAML)
    (tmp_path / "test.yaml").write_text(KPIS_YAML)
    catalog = load_catalog(tmp_path)
    tables = KpiTables.for_catalog(catalog)
    new = table_from == "now"
    # CPA, lower is better: November 57.91 EUR against 55.00. variance = actual - target =
    # +2.91, which reads "above"; variance_favourable = target - actual = -2.91: worse.
    # Attainment (direction-aware) = 55.00 / 57.91 = 0.9497.
    cpa = 55.0 / 57.91
    # Growth: November +33.38% against a +1% target. In points: 0.3338 - 0.01 = +0.3238,
    # i.e. +32.4 pp better. As a ratio (a table from before): 0.3338 / 0.01 = 33.38.
    rows = [
        _row("cpa", 10, "on_track", 54.0, 55.0, 55.0 / 54.0, 1.0 if new else None),
        _row("cpa", 11, "at_risk", 57.91, 55.0, cpa, -2.91 if new else None),
        _row("growth", 10, "at_risk", -0.02, 0.01, -0.03 if new else -2.0, -0.03 if new else None),
        _row("growth", 11, "on_track", 0.3338, 0.01, 0.3238 if new else 33.38,
             0.3238 if new else None),
    ]  # fmt: skip
    wh = Warehouse(warehouse_url)
    try:
        wh.ensure_tables(tables.all_tables())
        wh.replace_rows(tables.comparisons, None, pd.DataFrame(rows))
        firings = {f.kpi_id: f for f in evaluate(wh, catalog)}
    finally:
        wh.dispose()
    assert sorted(firings) == ["cpa", "growth"]

    cpa_text = render_message(firings["cpa"], catalog).text.splitlines()
    assert "Actual: 57.91 EUR vs target 55.00 EUR (95% of target)" in cpa_text
    assert "Against the target: 2.91 EUR worse" in cpa_text

    growth = render_message(firings["growth"], catalog)
    lines = growth.text.splitlines()
    assert "Actual: 33.38% vs target 1.00% (+32.4 pp)" in lines
    assert "Against the target: 32.4 pp better" in lines
    assert "3338%" not in growth.text and "3,338%" not in growth.text
    assert "Against the target: 32.4 pp better" in growth.slack_text
