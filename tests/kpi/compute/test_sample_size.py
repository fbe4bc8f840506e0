"""``sample_size`` counts the rows that feed a KPI's denominator, not the source's rows.

A week of 143 survey answers (Monday 2026-11-02 .. Sunday 2026-11-08, as of the Sunday),
answer ``i`` on day ``i % 7`` and in channel ``email`` (even ``i``) or ``web`` (odd ``i``):

- answers 0..11 carry a CSAT score: 5 for 0..10, 2 for 11; answers 0..11 also carry a
  respondent id ``r{i // 2}`` (6 distinct ids);
- answers 12..31 carry an NPS score: 10 for 12..21 (10 promoters), 3 for 22..25
  (4 detractors), 7 for 26..31 (6 passives);
- answers 32..142 (111) carry neither.

By hand, for the week (and the open month, which holds only this week):

- CSAT = answers scoring 4 or 5 / answers with a score = 11 / 12, sample 12 (not 143);
  by channel: email = answers 0, 2, .., 10, all 5: 6 / 6, sample 6; web = 1, 3, .., 11:
  5 / 6, sample 6. On Monday 11-02 (answers 0, 7, 14, ...): CSAT answers 0 and 7, 2 / 2,
  sample 2.
- promoter share 10 / 20, detractor share 4 / 20, sample 20 each; NPS =
  100 * (0.5 - 0.2) = 30, sample min(20, 20) = 20.
- CSAT points (a sum of the scores) = 11 * 5 + 2 = 57, sample 12; respondents (distinct
  ids) = 6, sample 12 (the rows with an id).

CSAT and NPS ask for a sample of 30: with 12 and 20 answers their status is
``insufficient_data``, although 11/12 = 0.917 beats CSAT's 0.85 and 30 beats NPS's 20.
Promoter share has no minimum: 0.5 against 0.4 is on track.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from kpi.compute.tables import KpiTables
from kpi.language.loader import load_catalog
from kpi.language.status import Status
from kpi.refresh import (
    refresh_comparisons,
    refresh_cubes,
    refresh_kpi_values,
    refresh_periods,
    refresh_targets,
)
from kpi.warehouse.connection import Warehouse

D = dt.date
WEEK, AS_OF = D(2026, 11, 2), D(2026, 11, 8)

SOURCES_YAML = """\
reporting: {time_zone: UTC, week_start: monday}
dimensions:
  channel: {description: channel}
sources:
  answers:
    table: raw.answers
    time: {column: answered_on, type: date, time_zone: UTC}
    columns:
      answered_on: {type: date}
      channel: {type: string}
      respondent_id: {type: string}
      csat_score: {type: integer, additivity: additive}
      nps_score: {type: integer, additivity: additive}
    dimensions:
      channel: {column: channel}
"""

KPIS_YAML = """\
area: test
kpis:
  - id: csat
    name: CSAT
    description: share of scored answers scoring 4 or 5
    owner: t@example.com
    unit: percent
    direction: higher_is_better
    type: ratio
    numerator: {source: answers, agg: count, filter: csat_score >= 4}
    denominator: {source: answers, agg: count, expr: csat_score}
    dimensions: [channel]
    grains: [day, week, month]
    target: {value: 0.85, grain: month}
    min_sample_size: 30
  - id: promoter_share
    name: Promoters
    description: share of NPS answers of 9 or 10
    owner: t@example.com
    unit: percent
    direction: higher_is_better
    type: ratio
    numerator: {source: answers, agg: count, filter: nps_score >= 9}
    denominator: {source: answers, agg: count, expr: nps_score}
    grains: [week, month]
    target: {value: 0.4, grain: month}
  - id: detractor_share
    name: Detractors
    description: share of NPS answers of 0 to 6
    owner: t@example.com
    unit: percent
    direction: lower_is_better
    type: ratio
    numerator: {source: answers, agg: count, filter: nps_score <= 6}
    denominator: {source: answers, agg: count, expr: nps_score}
    grains: [week, month]
  - id: nps
    name: NPS
    description: promoters minus detractors
    owner: t@example.com
    unit: ratio
    direction: higher_is_better
    type: derived
    expr: 100 * (promoter_share - detractor_share)
    grains: [week, month]
    target: {value: 20, grain: month}
    min_sample_size: 30
  - id: csat_points
    name: CSAT points
    description: sum of the CSAT scores given
    owner: t@example.com
    unit: count
    direction: higher_is_better
    type: simple
    measure: {source: answers, agg: sum, expr: csat_score}
    grains: [week, month]
  - id: respondents
    name: Respondents
    description: distinct respondents
    owner: t@example.com
    unit: count
    direction: higher_is_better
    type: simple
    measure: {source: answers, agg: count_distinct, expr: respondent_id}
    grains: [week, month]
"""


def answers() -> pd.DataFrame:
    rows = []
    for i in range(143):
        csat = (5 if i <= 10 else 2) if i <= 11 else None
        nps = None
        if 12 <= i <= 21:
            nps = 10
        elif 22 <= i <= 25:
            nps = 3
        elif 26 <= i <= 31:
            nps = 7
        rows.append(
            {
                "answered_on": WEEK + dt.timedelta(days=i % 7),
                "channel": "email" if i % 2 == 0 else "web",
                "respondent_id": f"r{i // 2}" if i <= 11 else None,
                "csat_score": csat,
                "nps_score": nps,
            }
        )
    frame = pd.DataFrame(rows)
    for column in ("csat_score", "nps_score"):
        frame[column] = frame[column].astype("Int64")
    return frame


def _catalog(tmp_path: Path):
    defs = tmp_path / "defs"
    defs.mkdir(parents=True)
    (defs / "sources.yaml").write_text(SOURCES_YAML)
    (defs / "test.yaml").write_text(KPIS_YAML)
    return load_catalog(defs)


def _values(warehouse_url: str, tmp_path: Path, path: str) -> dict[tuple, tuple]:
    """{(kpi, grain, period_start, channel): (value, numerator, denominator, sample_size)}
    computed by ``path``: raw (``kpi compile``), cubes, or the refresh (fused rollups)."""
    catalog = _catalog(tmp_path)
    tables = KpiTables.for_catalog(catalog, use_cubes=path != "raw")
    wh = Warehouse(warehouse_url)
    try:
        wh.ensure_tables(tables.all_tables())
        wh.replace_rows(tables.raw_tables["answers"], None, answers())
        refresh_periods(wh, tables, AS_OF)
        if path == "refresh":
            refresh_kpi_values(wh, tables)
            frame = wh.read(tables.values.select())
        else:
            if path == "cubes":
                refresh_cubes(wh, tables)
            compiler = tables.compiler
            frame = pd.concat(
                [wh.read(q) for kpi_id in catalog.kpis for q in compiler.compile_all(kpi_id)]
            )
    finally:
        wh.dispose()
    out = {}
    for r in frame.itertuples():
        channel = None if pd.isna(r.channel) else r.channel
        key = (r.kpi_id, r.grain, pd.Timestamp(r.period_start).date(), channel)
        out[key] = tuple(None if pd.isna(x) else x for x in (r.value, r.numerator, r.denominator))
        out[key] += (int(r.sample_size) if not pd.isna(r.sample_size) else None,)
    return out


@pytest.mark.parametrize("path", ["raw", "cubes", "refresh"])
def test_sample_size_is_the_denominators_non_null_rows(path, warehouse_url, tmp_path):
    got = _values(warehouse_url, tmp_path, path)
    month = D(2026, 11, 1)
    for grain, start in (("week", WEEK), ("month", month)):
        assert got[("csat", grain, start, None)] == (pytest.approx(11 / 12), 11, 12, 12)
        assert got[("promoter_share", grain, start, None)] == (0.5, 10, 20, 20)
        assert got[("detractor_share", grain, start, None)] == (0.2, 4, 20, 20)
        nps = got[("nps", grain, start, None)]
        assert (nps[0], nps[3]) == (pytest.approx(30), 20)
        assert got[("csat_points", grain, start, None)][::3] == (57, 12)
        assert got[("respondents", grain, start, None)][::3] == (6, 12)
    # Every slice: email 6 of 6 scored answers, web 5 of 6.
    assert got[("csat", "week", WEEK, "email")] == (1.0, 6, 6, 6)
    assert got[("csat", "week", WEEK, "web")] == (pytest.approx(5 / 6), 5, 6, 6)
    # Every grain: Monday has answers 0, 7, 14, .., 140 (21 rows), two of them scored.
    assert got[("csat", "day", WEEK, None)] == (1.0, 2, 2, 2)
    # Sunday 11-08 has answers 6, 13, 20, ..: one scored (6, a 5), 21 rows.
    assert got[("csat", "day", D(2026, 11, 8), None)] == (1.0, 1, 1, 1)


def test_the_three_paths_agree_on_every_row(warehouse_url, tmp_path):
    raw = _values(warehouse_url, tmp_path / "raw", "raw")
    refresh = _values(warehouse_url, tmp_path / "refresh", "refresh")
    assert raw.keys() == refresh.keys()
    for key, row in raw.items():
        assert refresh[key] == pytest.approx(row, nan_ok=True), key


def test_a_thin_sample_is_insufficient_data(warehouse_url, tmp_path):
    catalog = _catalog(tmp_path)
    tables = KpiTables.for_catalog(catalog, use_cubes=True)
    wh = Warehouse(warehouse_url)
    try:
        wh.ensure_tables(tables.all_tables())
        wh.replace_rows(tables.raw_tables["answers"], None, answers())
        periods = refresh_periods(wh, tables, AS_OF)
        refresh_kpi_values(wh, tables)
        refresh_targets(wh, tables, periods)
        refresh_comparisons(wh, tables)
        c = tables.comparisons
        rows = wh.read(
            sa.select(c.c.kpi_id, c.c.sample_size, c.c.status, c.c.attainment).where(
                c.c.grain == "week", c.c.period_start == WEEK, c.c.channel.is_(None)
            )
        )
    finally:
        wh.dispose()
    by_kpi = {r.kpi_id: r for r in rows.itertuples()}
    # 11/12 = 0.917 against 0.85 would be on track, but only 12 answers (< 30) carry a score.
    assert int(by_kpi["csat"].sample_size) == 12
    assert by_kpi["csat"].attainment == pytest.approx((11 / 12) / 0.85)
    assert by_kpi["csat"].status == Status.insufficient_data
    # NPS 30 against 20, but 20 answers (< 30).
    assert int(by_kpi["nps"].sample_size) == 20
    assert by_kpi["nps"].status == Status.insufficient_data
    # No minimum: 0.5 against 0.4 is on track, on its 20 answers.
    assert int(by_kpi["promoter_share"].sample_size) == 20
    assert by_kpi["promoter_share"].status == Status.on_track
