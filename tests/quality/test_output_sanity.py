"""The output_sanity checks on rates of change (quality.kpi_outputs), on DuckDB and PostgreSQL.

A growth rate (a period-over-period KPI, unit percent) is a change, not a share: -20% is a
fall, +150% more than doubling, and neither is a problem. What cannot happen to a quantity
that is never negative is a fall of more than 100%: such a value means the base went
negative (a growth of a loss, which reads backwards) or the computation is broken.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from kpi.language.catalog import DEFAULT_DEFINITIONS_DIR
from kpi.language.loader import load_catalog
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.schema import kpi_values_table
from quality.kpi_outputs import kpi_output_problems

D = dt.date


def _row(kpi_id: str, month: int, value: float, numerator=None, denominator=None) -> dict:
    start = D(2026, month, 1)
    end = (pd.Timestamp(start) + pd.offsets.MonthEnd(0)).date()
    return {
        "kpi_id": kpi_id,
        "grain": "month",
        "period_start": start,
        "period_end": end,
        "is_complete_period": True,
        "value": value,
        "numerator": numerator,
        "denominator": denominator,
        "definition_version": "v",
        "computed_at": dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
    }


def test_negative_growth_is_valid_but_a_fall_beyond_minus_100_percent_is_not(warehouse_url):
    cat = load_catalog(DEFAULT_DEFINITIONS_DIR)
    assert str(cat.kpis["revenue_growth_mom"].type) == "period_over_period"
    assert str(cat.kpis["revenue_growth_mom"].unit) == "percent"
    table = kpi_values_table(sa.MetaData(), cat.dimensions)
    rows = [
        # revenue 100,000 -> 80,000: (80,000 - 100,000) / 100,000 = -0.20, a valid fall
        _row("revenue_growth_mom", 3, -0.2, 80_000.0, 100_000.0),
        # 100,000 -> 250,000: +150%, more than doubling, valid
        _row("revenue_growth_mom", 4, 1.5, 250_000.0, 100_000.0),
        # 100,000 -> 0: -100%, the lowest a non-negative quantity can fall
        _row("revenue_growth_mom", 5, -1.0, 0.0, 100_000.0),
        # a base of -40,000 (a loss) -> 20,000: (20,000 + 40,000) / -40,000 = -1.5, insane
        _row("revenue_growth_mom", 6, -1.5, 20_000.0, -40_000.0),
        # a share above 100% is still wrong for a percent KPI that is not a change
        _row("conversion_rate", 3, 1.2, 12.0, 10.0),
    ]
    wh = Warehouse(warehouse_url)
    try:
        wh.ensure_tables([table])
        wh.replace_rows(table, None, pd.DataFrame(rows))
        problems = kpi_output_problems(wh, table, cat)
    finally:
        wh.dispose()
    shares = problems["percent_within_0_1"]
    assert shares["kpi_id"].tolist() == ["conversion_rate"], shares
    assert shares["value"].tolist() == [1.2]
    falls = problems["growth_at_least_minus_100_percent"]
    assert falls["kpi_id"].tolist() == ["revenue_growth_mom"], falls
    assert falls["value"].tolist() == [-1.5]
    assert pd.to_datetime(falls["period_start"]).dt.date.tolist() == [D(2026, 6, 1)]
