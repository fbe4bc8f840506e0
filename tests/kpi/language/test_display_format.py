"""The `format:` mini-language every reader renders (kpi.language.display_format), with
cases worked by hand in display_format_cases.yaml, and the terminal scorecard using it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import yaml

from kpi.language.display_format import FormatError, parse_format, render
from kpi.language.loader import load_catalog
from kpi.publication.scorecard import render as render_scorecard

CASES = yaml.safe_load((Path(__file__).with_name("display_format_cases.yaml")).read_text())


@pytest.mark.parametrize(("value", "fmt", "expected"), CASES, ids=[f"{c[1]}:{c[0]}" for c in CASES])
def test_format_renders_as_worked_by_hand(value, fmt, expected):
    assert render(value, fmt) == expected


@pytest.mark.parametrize("fmt", ["", "abc", "0.##", "#,##", "0,", "0.0.0", "1.00", "10", "0.0 5"])
def test_formats_no_reader_can_render_are_refused(fmt):
    with pytest.raises(FormatError, match="format"):
        parse_format(fmt)


def test_every_shipped_format_parses():
    for kpi in load_catalog().kpis.values():
        if kpi.format:
            parse_format(kpi.format)


def test_the_terminal_scorecard_shows_each_kpi_in_its_format():
    catalog = load_catalog()
    row = {
        "area": "marketing",
        "period_start": dt.date(2026, 11, 1),
        "change_rel": 0.02,
        "previous": 1.0,
        "status": "at_risk",
    }
    frame = pd.DataFrame(
        [
            {**row, "kpi_id": "roas", "actual": 1.2857, "target": 1.4},
            {**row, "kpi_id": "net_promoter_score", "actual": 37.28, "target": 40.0},
        ]
    )
    lines = render_scorecard(frame, catalog).splitlines()
    roas = next(line for line in lines if catalog.kpis["roas"].name in line)
    nps = next(line for line in lines if catalog.kpis["net_promoter_score"].name in line)
    assert "1.29x" in roas and "1.40x" in roas
    assert " 37 " in nps and "37.28" not in nps
