"""Definitions that must be refused or kept exactly: SQL-escaped quotes in filters (item 15),
YAML alias bombs (16), negative thresholds and constant-zero denominators (17), and the
GA4 ``new_users`` user count that must not be summed across days (19)."""

from __future__ import annotations

import ast
import datetime as dt
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from kpi.cli import main
from kpi.compute.tables import KpiTables
from kpi.language.catalog import DEFAULT_DEFINITIONS_DIR
from kpi.language.expressions import ExpressionError, parse
from kpi.language.loader import collect_catalog, load_catalog
from kpi.warehouse.connection import Warehouse

SOURCES = """\
reporting: {time_zone: UTC, currency: EUR}
dimensions:
  channel: {description: marketing channel}
sources:
  orders:
    table: raw.orders
    time: {column: date, type: date, time_zone: UTC}
    columns:
      date: {type: date}
      campaign: {type: string}
      revenue: {type: number, additivity: additive}
      visits: {type: integer, additivity: additive}
"""


def kpi(kpi_id: str, **fields) -> dict:
    return {
        "id": kpi_id,
        "name": kpi_id,
        "description": "test KPI",
        "owner": "t@example.com",
        "unit": "count",
        "direction": "higher_is_better",
        "type": "simple",
        "grains": ["day"],
        **fields,
    }


def folder_with(tmp_path: Path, kpis: list[dict] | str) -> Path:
    folder = tmp_path / "defs"
    folder.mkdir(exist_ok=True)
    (folder / "sources.yaml").write_text(SOURCES)
    text = kpis if isinstance(kpis, str) else yaml.safe_dump({"area": "t", "kpis": kpis})
    (folder / "test.yaml").write_text(text)
    return folder


# --- 15: `''` inside a string literal is one quote, on every warehouse -----------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("campaign = 'women''s_day'", "women's_day"),
        ("campaign = 'it''s'", "it's"),
        ("campaign = 'a'''", "a'"),
        ('campaign = "say ""hi"""', 'say "hi"'),
        ("campaign in ('women''s_day', 'x')", None),
    ],
)
def test_sql_quote_escape_keeps_the_literal(text, value):
    tree = parse(text)
    consts = [
        c.value for c in ast.walk(tree) if isinstance(c, ast.Constant) and isinstance(c.value, str)
    ]
    if value is not None:
        assert consts == [value]
    else:
        assert consts == ["women's_day", "x"]


@pytest.mark.parametrize(
    "text",
    [
        "campaign = 'women' 's_day'",  # Python would glue these into 'womens_day'
        "campaign = 'women\\'s_day'",  # a backslash is no escape in SQL
    ],
)
def test_literal_that_would_change_is_refused(text):
    with pytest.raises(ExpressionError, match="string"):
        parse(text)


def test_escaped_quote_filter_counts_the_right_rows(tmp_path, warehouse_url):
    folder = folder_with(
        tmp_path,
        [
            kpi(
                "womens_day_revenue",
                measure={
                    "source": "orders",
                    "agg": "sum",
                    "expr": "revenue",
                    "filter": "campaign = 'women''s_day'",
                },
            )
        ],
    )
    catalog = load_catalog(folder)
    tables = KpiTables.for_catalog(catalog)
    wh = Warehouse(warehouse_url)
    try:
        wh.ensure_tables(tables.all_tables())
        day = dt.date(2026, 3, 8)
        rows = pd.DataFrame(
            {
                "date": [day, day, day],
                "campaign": ["women's_day", "womens_day", "other"],
                "revenue": [10.0, 100.0, 1000.0],
                "visits": [1, 1, 1],
            }
        )
        wh.replace_rows(tables.raw_tables["orders"], None, rows)
        from kpi.refresh import refresh_periods

        refresh_periods(wh, tables, day)
        frame = wh.read(tables.compiler.compile("womens_day_revenue", "day", ()))
        values = {
            pd.Timestamp(r["period_start"]).date(): r["value"] for r in frame.to_dict("records")
        }
        # Only the row whose campaign is exactly women's_day: 10, not womens_day's 100.
        assert values[day] == 10.0
    finally:
        wh.dispose()


# --- 16: a YAML alias bomb is refused with file:line, quickly --------------------------------

BOMB = """\
area: t
a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]
kpis: []
"""


def test_alias_bomb_is_refused_with_file_and_line(tmp_path, capsys):
    folder = folder_with(tmp_path, BOMB)
    started = time.monotonic()
    _, problems = collect_catalog(folder)
    assert time.monotonic() - started < 10
    hits = [p for p in problems if "alias" in p.message]
    assert hits, problems
    assert hits[0].file.endswith("test.yaml")
    # Values built through aliases: b 10 x 11 = 110, c 10 x 111 = 1,110 (1,220 in all), then
    # each `*c` of line 5 (`d:`) adds 1,111: the 8th passes the limit of 10,000 (1,220 + 8,888).
    assert hits[0].line == 5
    assert main(["validate", "--definitions", str(folder)]) == 1
    assert "test.yaml:5" in capsys.readouterr().out


def test_a_few_ordinary_aliases_still_load(tmp_path):
    text = yaml.safe_dump(
        {
            "area": "t",
            "kpis": [kpi("a", measure={"source": "orders", "agg": "sum", "expr": "revenue"})],
        }
    )
    text = "description: &d Written with an alias.\n" + text.replace(
        "description: test KPI", "description: *d"
    )
    folder = folder_with(tmp_path, text)
    _, problems = collect_catalog(folder)
    assert not [p for p in problems if "alias" in p.message]


# --- 17: negative thresholds, constant-zero denominators ----------------------------------


@pytest.mark.parametrize("field", ["at_risk_below", "off_track_below"])
def test_negative_threshold_is_refused(tmp_path, field):
    thresholds = {"at_risk_below": 1.0, "off_track_below": 0.9, field: -0.5}
    if field == "at_risk_below":
        thresholds["off_track_below"] = -0.6
    folder = folder_with(
        tmp_path,
        [
            kpi(
                "k",
                measure={"source": "orders", "agg": "sum", "expr": "revenue"},
                thresholds=thresholds,
            )
        ],
    )
    _, problems = collect_catalog(folder)
    hits = [p for p in problems if f"thresholds.{field}" in p.message]
    assert len(hits) == 1, problems
    assert hits[0].kpi_id == "k" and hits[0].line is not None
    assert "-0.5" in hits[0].message and "greater than or equal to 0" in hits[0].message


@pytest.mark.parametrize(
    "denominator",
    [
        {"source": "orders", "agg": "sum", "expr": "0"},
        {"source": "orders", "agg": "sum", "expr": "1 - 1"},
        {"source": "orders", "agg": "sum", "expr": "visits * 0"},
        {"source": "orders", "agg": "count", "filter": "1 = 2"},
    ],
)
def test_ratio_with_a_constant_zero_denominator_is_refused(tmp_path, denominator):
    folder = folder_with(
        tmp_path,
        [
            kpi(
                "per_nothing",
                type="ratio",
                numerator={"source": "orders", "agg": "sum", "expr": "revenue"},
                denominator=denominator,
            )
        ],
    )
    _, problems = collect_catalog(folder)
    hits = [p for p in problems if "always zero" in p.message]
    assert len(hits) == 1, problems
    assert hits[0].kpi_id == "per_nothing" and hits[0].line is not None
    assert "denominator" in hits[0].message


def test_derived_division_by_constant_zero_is_refused(tmp_path):
    base = kpi("rev", measure={"source": "orders", "agg": "sum", "expr": "revenue"})
    folder = folder_with(tmp_path, [base, kpi("bad", type="derived", expr="rev / (2 - 2)")])
    _, problems = collect_catalog(folder)
    hits = [p for p in problems if "always zero" in p.message]
    assert [p.kpi_id for p in hits] == ["bad"], problems


def test_ratio_with_a_real_denominator_is_fine(tmp_path):
    folder = folder_with(
        tmp_path,
        [
            kpi(
                "rev_per_visit",
                type="ratio",
                numerator={"source": "orders", "agg": "sum", "expr": "revenue"},
                denominator={"source": "orders", "agg": "sum", "expr": "visits * 1"},
            )
        ],
    )
    assert collect_catalog(folder)[1] == []


# --- 19: GA4 new_users is a user count ---------------------------------------------------


def test_ga4_new_users_cannot_be_summed_across_days(tmp_path):
    folder = tmp_path / "defs"
    shutil.copytree(DEFAULT_DEFINITIONS_DIR, folder)
    (folder / "extra.yaml").write_text(
        yaml.safe_dump(
            {
                "area": "extra",
                "kpis": [
                    kpi(
                        "daily_new_users",
                        measure={"source": "ga4_traffic", "agg": "sum", "expr": "new_users"},
                        grains=["day", "week", "month"],
                    )
                ],
            }
        )
    )
    _, problems = collect_catalog(folder)
    hits = [p for p in problems if "`new_users` is non-additive" in p.message]
    assert [p.kpi_id for p in hits] == ["daily_new_users"], problems


def test_shipped_definitions_validate(capsys):
    assert main(["validate", "--definitions", str(DEFAULT_DEFINITIONS_DIR)]) == 0, (
        capsys.readouterr()
    )
