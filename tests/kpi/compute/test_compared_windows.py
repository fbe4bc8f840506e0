"""``kpi_work.compared_values``: the windows an open period is compared with, evaluated once a
run for the KPIs that are functions of their period's sums (kpi.compute.compared_windows).

The values are worked by hand from the rows below; and ``kpi_comparisons`` is the same, row
for row, whether each comparison statement evaluates its windows itself or joins these, on a
full load and on the incremental run after it, on DuckDB and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from kpi.compute.tables import KpiTables
from kpi.language.loader import load_catalog
from kpi.refresh import (
    refresh_catalog,
    refresh_comparisons,
    refresh_kpi_values,
    refresh_periods,
    refresh_targets,
)
from kpi.warehouse.connection import Warehouse

D = dt.date

SOURCES_YAML = """\
reporting: {time_zone: UTC, week_start: monday}
dimensions:
  channel: {description: channel}
  campaign: {description: campaign}
sources:
  daily:
    table: raw.daily
    time: {column: date, type: date, time_zone: UTC}
    columns:
      date: {type: date}
      channel: {type: string}
      campaign: {type: string}
      sessions: {type: integer, additivity: additive}
      cost: {type: number, additivity: additive}
      conversions: {type: integer, additivity: additive}
    dimensions:
      channel: {column: channel}
      campaign: {column: campaign}
"""

KPI = """\
  - id: {id}
    name: {id}
    description: {id}
    owner: t@example.com
    unit: {unit}
    direction: {direction}
"""

KPIS = {
    # Covered: a sum by channel, reported by week and month (and day, which is not).
    "sessions": "type: simple\n    measure: {source: daily, agg: sum, expr: sessions}\n"
    "    dimensions: [channel]\n    grains: [day, week, month]\n"
    "    target: {value: 100, grain: month}",
    # Covered: a ratio of sums.
    "cpa": "type: ratio\n    numerator: {source: daily, agg: sum, expr: cost}\n"
    "    denominator: {source: daily, agg: sum, expr: conversions}\n    grains: [month]",
    # Not covered: its campaign slice is kept by month only (a window is days).
    "sessions_by_campaign": "type: simple\n    measure: {source: daily, agg: sum, expr: sessions}"
    "\n    dimensions: [campaign]\n    grains: [month]",
    # Not covered: a running total needs its days, a growth compares stored growths, and a
    # day's earlier day is a stored row.
    "sessions_mtd": "type: cumulative\n    cumulative: {of: sessions, to_date: month}\n"
    "    grains: [day, month]",
    "sessions_growth": "type: period_over_period\n"
    "    period_over_period: {of: sessions, offset: previous_period}\n    grains: [month]",
    "daily_conversions": "type: simple\n    measure: {source: daily, agg: sum, expr: conversions}"
    "\n    grains: [day]",
    # Covered, by month and quarter: periods of two grains that can start on one day.
    "sessions_by_quarter": "type: simple\n    measure: {source: daily, agg: sum, expr: sessions}"
    "\n    grains: [month, quarter]",
}

# (date, channel, campaign, sessions, cost, conversions)
DAILY = [
    (D(2025, 11, 1), "a", "x", 4, 10.0, 1),
    (D(2025, 11, 2), "b", "y", 6, 30.0, 1),
    (D(2025, 12, 2), "a", "x", 7, 20.0, 2),
    (D(2025, 12, 3), "b", "x", 1, 0.0, 0),
    (D(2025, 12, 4), "a", "y", 100, 90.0, 9),  # outside December 1-3, inside a week's window
    (D(2026, 11, 1), "b", "y", 20, 10.0, 1),  # the first day of a window
    (D(2026, 11, 3), "a", "x", 5, 12.0, 3),
    (D(2026, 11, 4), "b", "y", 50, 0.0, 0),  # after the 3rd: outside November's 1-3
    (D(2026, 11, 23), "a", "y", 30, 0.0, 0),  # a Monday: the first day of a week's window
    (D(2026, 11, 24), "b", "x", 2, 8.0, 1),
    (D(2026, 11, 26), "a", "x", 9, 0.0, 0),  # a Thursday: the last day of a week's window
    (D(2026, 11, 27), "a", "x", 40, 0.0, 0),  # a Friday: outside it
    (D(2026, 11, 10), "c", "x", 4, 0.0, 0),  # channel c: no rows in any window of December
    (D(2026, 12, 1), "a", "x", 3, 6.0, 1),
]
AS_OF = D(2026, 12, 3)  # a Thursday: this week, month, quarter and year are open
NOW = dt.datetime(2026, 12, 4, 6, tzinfo=dt.UTC)


def _catalog(folder):
    folder.mkdir()
    (folder / "sources.yaml").write_text(SOURCES_YAML)
    blocks = []
    for kpi_id, body in KPIS.items():
        direction = "lower_is_better" if kpi_id == "cpa" else "higher_is_better"
        unit = "currency" if kpi_id == "cpa" else "count"
        blocks.append(KPI.format(id=kpi_id, unit=unit, direction=direction) + "    " + body)
    (folder / "test.yaml").write_text("area: test\nkpis:\n" + "\n".join(blocks) + "\n")
    return load_catalog(folder)


def _refresh(
    wh: Warehouse, tables: KpiTables, rows: list[tuple], now: dt.datetime, as_of: dt.date = AS_OF
) -> None:
    frame = pd.DataFrame(
        rows, columns=["date", "channel", "campaign", "sessions", "cost", "conversions"]
    )
    wh.replace_rows(tables.raw_tables["daily"], None, frame)
    refresh_catalog(wh, tables, now)
    periods = refresh_periods(wh, tables, as_of)
    refresh_kpi_values(wh, tables, computed_at=now)
    refresh_targets(wh, tables, periods)
    refresh_comparisons(wh, tables, computed_at=now)


@pytest.fixture
def loaded(tmp_path, warehouse_url):
    tables = KpiTables.for_catalog(_catalog(tmp_path / "defs"), use_cubes=True)
    wh = Warehouse(warehouse_url)
    wh.ensure_tables(tables.all_tables())
    _refresh(wh, tables, DAILY, NOW)
    yield wh, tables
    wh.dispose()


def _compared(wh: Warehouse, tables: KpiTables) -> dict:
    out = wh.read(sa.select(tables.compared_values))
    return {
        (
            r.kpi_id,
            r.grain,
            pd.Timestamp(r.period_start).date(),
            r.window_offset,
            None if pd.isna(r.channel) else r.channel,
        ): None if pd.isna(r.value) else r.value
        for r in out.itertuples()
    }


def _forget(wh, tables):
    # The per-statement run must not be served the joined run's cached statements (same
    # fingerprint), nor find its compared values.
    with wh.transaction() as conn:
        conn.execute(tables.compiled_statements.delete())
        conn.execute(tables.compared_values.delete())


def test_only_kpis_of_their_periods_sums_with_daily_slices_are_covered(tmp_path):
    tables = KpiTables.for_catalog(_catalog(tmp_path / "defs"), use_cubes=True)
    windows = tables.compared_windows
    covered = {k for k, kpi in tables.catalog.kpis.items() if windows.covers(kpi)}
    assert covered == {"sessions", "cpa", "sessions_by_quarter"}
    # Without cubes each comparison statement evaluates its windows itself.
    assert KpiTables.for_catalog(tables.catalog).compared_windows is None


def test_compared_windows_by_hand(loaded):
    wh, tables = loaded
    c = _compared(wh, tables)
    # December 2026 is open (1-3): its previous window is 1-3 November 2026 and last year's
    # 1-3 December 2025, for the total and each channel seen.
    dec = D(2026, 12, 1)
    assert c[("sessions", "month", dec, "prev_", None)] == 25
    assert c[("sessions", "month", dec, "prev_", "a")] == 5
    assert c[("sessions", "month", dec, "prev_", "b")] == 20
    assert c[("sessions", "month", dec, "ly_", None)] == 8
    assert c[("sessions", "month", dec, "ly_", "a")] == 7
    assert c[("sessions", "month", dec, "ly_", "b")] == 1
    # A ratio is a sum over a sum: (10 + 12) / (1 + 3) in November's 1-3, not the mean of
    # the days' 10 and 4; (20 + 0) / (2 + 0) last year.
    assert c[("cpa", "month", dec, "prev_", None)] == 5.5
    assert c[("cpa", "month", dec, "ly_", None)] == 10
    # The open week (Monday 30 November to Thursday 3 December) against Monday to Thursday
    # of the week before (23-26 November: 30 + 2 + 9, not the Friday's 40).
    week = D(2026, 11, 30)
    assert c[("sessions", "week", week, "prev_", None)] == 41
    assert c[("sessions", "week", week, "prev_", "b")] == 2
    assert c[("sessions", "week", week, "prev_", "a")] == 39
    # A channel without rows in a window is zero-filled, not missing.
    assert c[("sessions", "month", dec, "prev_", "c")] == 0
    assert c[("sessions", "week", week, "ly_", "c")] == 0
    # Last year's is 52 weeks back: Monday 1 to Thursday 4 December 2025 (7 + 1 + 100).
    assert c[("sessions", "week", week, "ly_", None)] == 108
    # Nothing else: no KPI the statements evaluate themselves, no day grain, and only the
    # open periods (a closed one is compared with whole periods, read from kpi_values).
    assert {k[0] for k in c} == {"sessions", "cpa", "sessions_by_quarter"}
    assert {(k[1], k[2]) for k in c} == {
        ("week", week),
        ("month", dec),
        ("quarter", D(2026, 10, 1)),
    }


def test_periods_of_two_grains_starting_on_one_day_keep_their_own_windows(loaded):
    # On 3 October October and the fourth quarter are open, both from 1 October: the month is
    # compared with 1-3 September, the quarter with 1-3 July.
    wh, tables = loaded
    rows = [
        (D(2026, 1, 5), "a", "x", 100, 0.0, 0),  # the first day of data
        (D(2026, 7, 2), "a", "x", 10, 0.0, 0),
        (D(2026, 9, 2), "a", "x", 1, 0.0, 0),
        (D(2026, 10, 2), "a", "x", 5, 0.0, 0),
    ]
    _refresh(wh, tables, rows, NOW, D(2026, 10, 3))
    c = _compared(wh, tables)
    oct1 = D(2026, 10, 1)
    assert c[("sessions_by_quarter", "month", oct1, "prev_", None)] == 1
    assert c[("sessions_by_quarter", "quarter", oct1, "prev_", None)] == 10
    out = wh.read(
        sa.select(tables.comparisons).where(tables.comparisons.c.kpi_id == "sessions_by_quarter")
    )
    previous = {
        (r.grain, pd.Timestamp(r.period_start).date()): r.previous for r in out.itertuples()
    }
    assert previous[("month", oct1)] == 1
    assert previous[("quarter", oct1)] == 10


def test_postgresql_finds_a_kpis_windows_by_index(loaded):
    # Each comparison statement joins one KPI, grain and window of the table; PostgreSQL
    # runs that join in nested loops, and scanned the whole table for each row without it.
    wh, tables = loaded
    indexes = {
        i["name"]: i["column_names"]
        for i in sa.inspect(wh.engine).get_indexes(
            "compared_values", schema=tables.compared_values.schema
        )
    }
    if wh.dialect == "postgresql":
        assert indexes == {
            "compared_values__lookup": ["kpi_id", "grain", "window_offset", "period_start"]
        }
    else:  # DuckDB hashes the join: an index would only cost its inserts
        assert indexes == {}


def test_comparisons_equal_those_evaluated_per_statement(loaded):
    wh, tables = loaded
    keys = ["kpi_id", "grain", "period_start", "channel", "campaign"]

    def rows() -> pd.DataFrame:
        out = wh.read(sa.select(tables.comparisons)).drop(columns=["computed_at"])
        return out.sort_values(keys, ignore_index=True)

    joined = rows()
    # The same refresh with every window evaluated in its comparison statement.
    per_statement = KpiTables.for_catalog(tables.catalog, use_cubes=True)
    per_statement.__dict__["compared_windows"] = None
    _forget(wh, tables)
    refresh_comparisons(wh, per_statement, computed_at=NOW, full_refresh=True)
    pd.testing.assert_frame_equal(joined, rows())
    # The windows carry history: the check above compares something.
    dec = joined[(joined.kpi_id == "sessions") & (joined.grain == "month")]
    dec = dec[pd.to_datetime(dec.period_start).dt.date == D(2026, 12, 1)]
    assert sorted(dec["last_year"].tolist()) == [0.0, 1.0, 7.0, 8.0]

    with wh.transaction() as conn:  # the joined run compiles its own statements again
        conn.execute(tables.compiled_statements.delete())
    # An incremental run after a revision of a day in last year's window: both ways again.
    revised = [r if r[0] != D(2025, 12, 3) else (*r[:3], 4, 0.0, 0) for r in DAILY]
    later = NOW + dt.timedelta(hours=1)
    _refresh(wh, tables, revised, later)
    incremental = rows()
    dec = incremental[(incremental.kpi_id == "sessions") & (incremental.grain == "month")]
    dec = dec[pd.to_datetime(dec.period_start).dt.date == D(2026, 12, 1)]
    assert sorted(dec["last_year"].tolist()) == [0.0, 4.0, 7.0, 11.0]
    _forget(wh, tables)
    refresh_comparisons(wh, per_statement, computed_at=later, full_refresh=True)
    pd.testing.assert_frame_equal(incremental, rows())

    # The daily run: a new day, whose first changed day is inside the open periods.
    with wh.transaction() as conn:
        conn.execute(tables.compiled_statements.delete())
    newer = later + dt.timedelta(days=1)
    _refresh(wh, tables, [*revised, (D(2026, 12, 4), "b", "x", 6, 3.0, 1)], newer, D(2026, 12, 4))
    daily = rows()
    _forget(wh, tables)
    refresh_comparisons(wh, per_statement, computed_at=newer, full_refresh=True)
    pd.testing.assert_frame_equal(daily, rows())
