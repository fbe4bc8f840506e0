"""Quarantine and table-level expectations: one violating input per built-in expectation,
the rows it quarantines or the check it fails, volume anomalies against the warehouse
history, and replay after a suite fix (DuckDB and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import shutil
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import sqlalchemy as sa

from assets.settings import catalog
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.schema import source_table
from quality.checks import volume_outcome
from quality.quarantine import Conservation, quarantine_table, split_rows
from quality.replay import main as replay_main
from quality.replay import replay
from quality.suites import Volume, parse_suite
from quality.validate import validate_frame
from tests.ingest.test_files_loading import AD_HEADER, AD_ROWS, load, query, write_landing

D = dt.date
SUITE = parse_suite(
    {
        "suite": "t",
        "expectations": [
            {"type": "columns_present", "columns": ["id", "channel", "sessions"]},
            {"type": "not_null", "column": "id"},
            {"type": "between", "column": "sessions", "min": 0},
            {"type": "between", "column": "rate", "min": 0, "max": 1, "severity": "warn"},
            {"type": "in_set", "column": "channel", "values": ["search", "social"]},
            {"type": "unique", "columns": ["id"]},
            {"type": "column_type", "column": "sessions", "dtype": "integer"},
            {"type": "row_count", "min": 1},
        ],
    },
    "test",
)


def test_each_row_level_expectation_quarantines_its_violating_rows():
    frame = pd.DataFrame(
        {
            "id": [1, None, 3, 4, 5, 5, 7],
            "channel": ["search", "search", "search", "tv", "social", "social", "search"],
            "sessions": [10, 1, -1, 2, 3, 4, 5],
            "rate": [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1.5],  # warn only: flagged, kept
        }
    )
    good, bad, report = split_rows(frame, SUITE)
    assert good["id"].tolist() == [1, 7]
    assert bad["_failed_expectations"].tolist() == [
        "not_null(id)",
        "between(sessions, min=0)",
        "in_set(channel)",
        "unique(id)",
        "unique(id)",  # every row of a duplicated key: which one is right is unknown
    ]
    assert not report.success
    warned = next(o for o in report.outcomes if o.name.startswith("between(rate"))
    assert not warned.success and warned.failing_rows == [6]
    assert Conservation(len(frame), len(good), len(bad)).holds


def test_table_level_expectations_fail_without_quarantining():
    # A missing column and a wrong column type are about the table, not a row.
    frame = pd.DataFrame({"id": [1, 2], "sessions": ["ten", "eleven"]})
    _good, bad, report = split_rows(frame, SUITE)
    assert bad.empty
    failed = {o.name for o in report.failed}
    # Expectations on the missing column fail too, but without rows to quarantine.
    assert {"columns_present(id, channel, sessions)", "column_type(sessions: integer)"} <= failed
    # An empty partition where data is expected.
    empty = validate_frame(frame.assign(channel="search", rate=0.5, sessions=1).iloc[:0], SUITE)
    assert [o.name for o in empty.failed] == ["row_count(min=1)"]
    assert empty.failed[0].sample_values == [0]


def test_volume_flags_a_day_far_below_its_trailing_median(warehouse_url):
    wh = Warehouse(warehouse_url)
    table = sa.Table(
        "volume_t", sa.MetaData(), sa.Column("day", sa.Date), sa.Column("sessions", sa.Integer)
    )
    days = [D(2026, 1, 1) + dt.timedelta(days=i) for i in range(12)]
    sessions = [100] * 12
    sessions[10] = 20  # -80 %
    try:
        wh.ensure_tables([table])
        wh.replace_rows(table, None, pd.DataFrame({"day": days, "sessions": sessions}))
        exp = Volume(type="volume", column="sessions", severity="warn")
        outcome = volume_outcome(wh, table, table.c.day, exp, "v", days[0], days[-1])
        assert not outcome.success and outcome.severity == "warn"
        assert outcome.sample_values == ["2026-01-11: 20 vs median 100"]
        rows = Volume(type="volume", max_drop=0.9)  # row counts: one per day, no drop
        assert volume_outcome(wh, table, table.c.day, rows, "r", days[0], days[-1]).success
    finally:
        wh.dispose()


def test_replay_moves_rows_that_pass_a_fixed_suite_without_duplicating(
    warehouse_url, tmp_path, monkeypatch, capsys
):
    root = tmp_path / "landing"
    rows = [*AD_ROWS, "2026-01-07,meta,social,refund,10,1,-2.00,EUR"]
    write_landing(root, {"a.csv": "\n".join([AD_HEADER, *rows]) + "\n"})
    assert load(warehouse_url, root).success
    assert query(warehouse_url, "select campaign from raw.ad_spend__quarantine") == [("refund",)]

    # The fix: refunds are allowed now.
    definitions = tmp_path / "definitions"
    shutil.copytree("kpi_definitions", definitions)
    suite = definitions / "quality" / "ad_spend.yaml"
    suite.write_text(
        suite.read_text().replace(
            "{type: between, column: cost, min: 0}", "{type: not_null, column: cost}"
        )
    )
    monkeypatch.setenv("KPI_DEFINITIONS_DIR", str(definitions))

    assert replay_main(["ad_spend", "--warehouse", warehouse_url]) == 0
    assert "1 row(s) replayed" in capsys.readouterr().out
    assert replay_main(["ad_spend", "--warehouse", warehouse_url]) == 0
    assert "0 row(s) replayed" in capsys.readouterr().out
    assert query(warehouse_url, "select count(*) from raw.ad_spend__quarantine") == [(0,)]
    assert query(
        warehouse_url, "select campaign, cost from raw.ad_spend where date = '2026-01-07'"
    ) == [("refund", -2.0)]
    assert query(warehouse_url, "select count(*) from raw.ad_spend") == [(4,)]


def test_replay_leaves_rows_no_partition_holds_to_the_runs(
    warehouse_url, tmp_path, monkeypatch, capsys
):
    # A row quarantined because its day is before the first partition passes every other
    # expectation: moved to raw, it would sit in a slice no run replaces, and the next run of
    # the first partition would quarantine it again - in both tables at once.
    root = tmp_path / "landing"
    rows = [*AD_ROWS, "2026-01-07,meta,social,refund,10,1,2.00,EUR"]
    write_landing(root, {"a.csv": "\n".join([AD_HEADER, *rows]) + "\n"})
    assert load(warehouse_url, root).success
    before = query(warehouse_url, "select count(*) from raw.ad_spend")
    wh = Warehouse(warehouse_url)
    try:
        q = quarantine_table(
            source_table("ad_spend", catalog().sources["ad_spend"], sa.MetaData()), sa.MetaData()
        )
        stray = {
            "date": D(2023, 12, 31),
            "platform": "meta",
            "channel": "social",
            "campaign": "old",
            "impressions": 10,
            "clicks": 1,
            "cost": 2.0,
            "original_cost": 2.0,
            "original_currency": "EUR",
            "fx_rate": 1.0,
            "_failed_expectations": "date_in_partition(date): 2023-12-31 is before the first "
            "partition (2024-01-01); no partition holds it",
            "_quarantine_id": "stray-1",
            "_partition": D(2023, 12, 31),
            "_run_id": "r",
            "_quarantined_at": dt.datetime(2026, 1, 8, tzinfo=dt.UTC),
        }
        wh.replace_rows(q, None, pd.DataFrame([{k: v for k, v in stray.items() if k in q.c}]))
    finally:
        wh.dispose()

    assert replay_main(["ad_spend", "--warehouse", warehouse_url]) == 0
    assert "0 row(s) replayed into the raw table, 1 still failing" in capsys.readouterr().out
    assert query(warehouse_url, "select count(*) from raw.ad_spend") == before
    assert query(warehouse_url, "select campaign from raw.ad_spend__quarantine") == [("old",)]


def test_a_row_without_any_date_is_quarantined_once_on_the_day_its_file_arrived(
    duckdb_url, tmp_path
):
    # A file whose only line has no readable date: no day of its own, none of its file. It
    # is held by the day the file arrived (today, so the last partition, yesterday): the run
    # of an older window leaves it, the run of yesterday quarantines it, and a re-run of a
    # window that includes yesterday replaces it rather than adding a copy.

    zone = catalog().reporting.time_zone
    yesterday = dt.datetime.now(ZoneInfo(zone)).date() - dt.timedelta(days=1)
    root = tmp_path / "landing"
    write_landing(root, {"bad.csv": f"{AD_HEADER}\nsoon,meta,social,c,10,1,2.00,EUR\n"})
    assert load(duckdb_url, root, names=("fx_rates",)).success  # ad spend reads its table
    older = (yesterday - dt.timedelta(days=5), yesterday - dt.timedelta(days=3))
    sql = "select _partition, _failed_expectations from raw.ad_spend__quarantine"
    for window, expected in [
        (older, 0),
        ((yesterday, yesterday), 1),
        ((yesterday - dt.timedelta(days=5), yesterday), 1),
    ]:
        load(duckdb_url, root, raise_on_error=False, window=window, names=("ad_spend",))
        held = query(duckdb_url, sql)
        assert len(held) == expected, (window, held)
    assert held[0][0] == yesterday and held[0][1].startswith("parse: ")


def test_kpi_output_checks_find_bad_rates_nulls_and_totals(warehouse_url):
    from assets.settings import catalog
    from kpi.warehouse.schema import kpi_values_table
    from quality.kpi_outputs import kpi_output_problems

    cat = catalog()
    table = kpi_values_table(sa.MetaData(), cat.dimensions)
    month = D(2026, 1, 1)
    base = {
        "grain": "month",
        "period_start": month,
        "period_end": D(2026, 1, 31),
        "is_complete_period": True,
        "definition_version": "v",
        "computed_at": dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
    }
    rows = [
        {**base, "kpi_id": "conversion_rate", "value": 1.5, "denominator": 10.0},  # > 100 %
        {
            **base,
            "kpi_id": "conversion_rate",
            "device": "mobile",
            "value": None,
            "denominator": 4.0,
        },
        {**base, "kpi_id": "sessions", "value": 100.0},  # total row
        {**base, "kpi_id": "sessions", "channel": "Direct", "value": 60.0},
        {**base, "kpi_id": "sessions", "channel": "Paid Search", "value": 30.0},  # 90 != 100
        {**base, "kpi_id": "sessions", "device": "mobile", "value": 100.0},  # adds up
    ]
    wh = Warehouse(warehouse_url)
    try:
        wh.ensure_tables([table])
        wh.replace_rows(table, None, pd.DataFrame(rows))
        problems = kpi_output_problems(wh, table, cat)
    finally:
        wh.dispose()
    assert problems["percent_within_0_1"]["value"].tolist() == [1.5]
    assert problems["no_null_with_positive_denominator"]["denominator"].tolist() == [4.0]
    totals = problems["dimension_totals_match"]
    assert totals[["kpi_id", "dimension", "slices", "total"]].values.tolist() == [
        ["sessions", "channel", 90.0, 100.0]
    ]


def test_dates_outside_the_partition_or_in_the_future_are_quarantined():
    suite = parse_suite(
        {"suite": "d", "expectations": [{"type": "date_in_partition", "column": "date"}]}, "d"
    )
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    frame = pd.DataFrame({"date": [D(2026, 1, 4), D(2026, 1, 5), D(2026, 1, 9), tomorrow]})
    good, bad, _ = split_rows(frame, suite, (D(2026, 1, 5), D(2026, 1, 8)))
    assert good["date"].tolist() == [D(2026, 1, 5)]
    assert bad["date"].tolist() == [D(2026, 1, 4), D(2026, 1, 9), tomorrow]
    assert set(bad["_failed_expectations"]) == {"date_in_partition(date)"}
    # Without a window (replay) only the future is refused.
    good, bad, _ = split_rows(frame, suite)
    assert bad["date"].tolist() == [tomorrow]


def test_freshness_fails_when_the_latest_date_lags_the_partition_end():
    from quality.checks import freshness_outcome
    from quality.suites import Freshness

    exp = Freshness(type="freshness", column="date", max_lag_days=1)
    frame = pd.DataFrame({"date": [D(2026, 1, 5), D(2026, 1, 6)]})
    assert freshness_outcome(frame, exp, "f", D(2026, 1, 7)).success
    stale = freshness_outcome(frame, exp, "f", D(2026, 1, 8))
    assert not stale.success
    assert stale.sample_values == ["latest 2026-01-06 for a window ending 2026-01-08"]
    assert not freshness_outcome(frame.iloc[:0], exp, "f", D(2026, 1, 8)).success


# -- time-based expectations: the building blocks every source's suite uses ------------------


def _day_table(wh: Warehouse, days: list[dt.date]) -> sa.Table:
    """A table with one row per entry of ``days`` (so a day's row count is its frequency)."""
    table = sa.Table("days_t", sa.MetaData(), sa.Column("day", sa.Date))
    wh.ensure_tables([table])
    wh.replace_rows(table, None, pd.DataFrame({"day": days}))
    return table


def test_volume_does_not_judge_days_without_enough_history_and_says_so(warehouse_url):
    # Six days of history before the drop: too few to tell a drop from a new source.
    days = [D(2026, 1, 1) + dt.timedelta(days=i) for i in range(7)]
    rows = [d for d in days for _ in range(10 if d < days[-1] else 2)]  # -80 % on day 7
    wh = Warehouse(warehouse_url)
    try:
        table = _day_table(wh, rows)
        outcome = volume_outcome(wh, table, table.c.day, Volume(type="volume"), "v", *days[::6])
        assert outcome.success
        assert outcome.note == (
            "7 day(s) not judged (2026-01-01..2026-01-07): the warehouse holds fewer than 7 "
            "days before them to compare with"
        )
        # One more day of history and the same drop is judged, and flagged.
        table = _day_table(wh, [D(2025, 12, 31)] * 10 + rows)
        outcome = volume_outcome(
            wh, table, table.c.day, Volume(type="volume"), "v", days[-1], days[-1]
        )
        assert not outcome.success
        assert outcome.sample_values == ["2026-01-07: 2 vs median 10"]
    finally:
        wh.dispose()


def test_volume_over_7_day_totals_ignores_a_quiet_day_but_flags_a_quiet_week(warehouse_url):
    start = D(2026, 1, 1)
    counts = [4] * 40
    counts[20] = 0  # one day without rows: normal for a small source
    counts[30:37] = [1] * 7  # a week at 25 %: the export broke
    rows = [start + dt.timedelta(days=i) for i, n in enumerate(counts) for _ in range(n)]
    exp = Volume(type="volume", max_drop=0.7, period_days=7)
    wh = Warehouse(warehouse_url)
    try:
        table = _day_table(wh, rows)
        daily = volume_outcome(
            wh, table, table.c.day, Volume(type="volume"), "d", start, D(2026, 2, 9)
        )
        weekly = volume_outcome(wh, table, table.c.day, exp, "w", start, D(2026, 2, 9))
    finally:
        wh.dispose()
    # Day by day, the quiet day and every day of the quiet week are anomalies.
    assert daily.unexpected_count == 8 and daily.sample_values[0].startswith("2026-01-21: 0")
    # Over 7-day totals only the week is: its total (7 rows, ending 2026-02-06) is below
    # 30 % of the median of 28; the quiet day only took a 28 down to 24.
    assert weekly.sample_values == ["2026-02-06: 7 vs median 28"]
    assert weekly.name == "w" and weekly.note.startswith("13 day(s) not judged")


def test_volume_on_the_same_weekday_leaves_weekends_alone(warehouse_url):
    start = D(2026, 1, 5)  # a Monday; two rows per working day, none at weekends
    days = [start + dt.timedelta(days=i) for i in range(35)]
    rows = [d for d in days if d.weekday() < 5 and d != D(2026, 2, 4) for _ in range(2)]
    plain = Volume(type="volume")
    weekday = Volume(type="volume", same_weekday=True)
    wh = Warehouse(warehouse_url)
    try:
        table = _day_table(wh, rows)
        assert not volume_outcome(wh, table, table.c.day, plain, "p", days[0], days[-1]).success
        outcome = volume_outcome(wh, table, table.c.day, weekday, "w", days[0], days[-1])
    finally:
        wh.dispose()
    # Only the missing Wednesday, not the Saturdays and Sundays.
    assert outcome.sample_values == ["2026-02-04: 0 vs median 2"]


def test_volume_judges_an_empty_last_day_of_the_window(warehouse_url):
    # Working days with two rows each; the last Wednesday's export never came. The days with
    # rows end on Tuesday, but the window ends on Wednesday: that day is judged (as 0), both
    # in a backfill window and in the daily run of that day alone.
    start = D(2026, 1, 5)  # a Monday
    wednesday = D(2026, 2, 4)
    days = [start + dt.timedelta(days=i) for i in range((wednesday - start).days + 1)]
    rows = [d for d in days if d.weekday() < 5 and d != wednesday for _ in range(2)]
    weekday = Volume(type="volume", same_weekday=True)
    wh = Warehouse(warehouse_url)
    try:
        table = _day_table(wh, rows)
        window = volume_outcome(wh, table, table.c.day, weekday, "w", days[0], wednesday)
        daily = volume_outcome(wh, table, table.c.day, weekday, "w", wednesday, wednesday)
    finally:
        wh.dispose()
    assert window.sample_values == ["2026-02-04: 0 vs median 2"]
    assert daily.sample_values == ["2026-02-04: 0 vs median 2"] and not daily.success


def test_volume_options_are_validated():
    from quality.suites import DateInPartition, Freshness

    # Volume and freshness are about the table; a date outside the partition is a row's.
    assert not Volume(type="volume").row_level
    assert not Freshness(type="freshness", column="d").row_level
    assert DateInPartition(type="date_in_partition", column="d").row_level
    assert Volume(type="volume", period_days=7).display_name == (
        "volume(rows, max_drop=0.5, lookback_days=28, period_days=7)"
    )
    try:
        Volume(type="volume", period_days=7, same_weekday=True)
    except ValueError as exc:
        assert "same_weekday compares single days" in str(exc)
    else:
        raise AssertionError("same_weekday with period_days > 1 was accepted")


def test_timestamps_are_in_the_partition_by_their_local_day():
    suite = parse_suite(
        {"suite": "t", "expectations": [{"type": "date_in_partition", "column": "at"}]}, "t"
    )
    at = pd.to_datetime(
        [
            "2026-01-04T22:59:00Z",  # 23:59 on Jan 4 in Copenhagen: the day before
            "2026-01-04T23:30:00Z",  # 00:30 on Jan 5 in Copenhagen: the first day
            "2026-01-08T22:30:00Z",  # 23:30 on Jan 8: the last day
            "2026-01-08T23:00:00Z",  # midnight starting Jan 9: the day after
        ],
        utc=True,
    )
    frame = pd.DataFrame({"at": at})
    window = (D(2026, 1, 5), D(2026, 1, 8))
    good, bad, _ = split_rows(frame, suite, window, "Europe/Copenhagen")
    assert good["at"].tolist() == list(at[1:3])
    assert bad["at"].tolist() == [at[0], at[3]]
    # A timestamp later today is not in the future; one tomorrow is.
    now = pd.Timestamp.now(tz="UTC")
    frame = pd.DataFrame({"at": [now - pd.Timedelta(minutes=1), now + pd.Timedelta(days=1)]})
    good, bad, _ = split_rows(frame, suite, None, "Europe/Copenhagen")
    assert (len(good), len(bad)) == (1, 1)


def test_freshness_reads_the_latest_day_loaded_up_to_the_window_end(warehouse_url):
    from quality.checks import warehouse_freshness_outcome
    from quality.suites import Freshness

    exp = Freshness(type="freshness", column="day", max_lag_days=2)
    wh = Warehouse(warehouse_url)
    try:
        # Friday loaded, nothing at the weekend, and a later Monday loaded by another run.
        table = _day_table(wh, [D(2026, 1, 9), D(2026, 1, 12)])
        sunday = warehouse_freshness_outcome(wh, table.c.day, exp, "f", D(2026, 1, 11))
        stale = warehouse_freshness_outcome(wh, table.c.day, exp, "f", D(2026, 1, 15))
        empty = _day_table(wh, [])
        never = warehouse_freshness_outcome(wh, empty.c.day, exp, "f", D(2026, 1, 11))
    finally:
        wh.dispose()
    assert sunday.success  # an empty weekend window is fresh: Friday is two days back
    assert not stale.success  # the Monday is three days before Thursday's end
    assert stale.sample_values == ["latest 2026-01-12 for a window ending 2026-01-15"]
    assert not never.success and never.sample_values == [
        "latest None for a window ending 2026-01-11"
    ]


def test_a_replay_of_more_keys_than_one_statement_takes_replaces_every_row_once(warehouse_url):
    """10,000 GA4 rows with a 7-column key are 70,000 key values, more than the 65,535 bound
    parameters PostgreSQL takes in one statement: the keys are matched through a temporary
    table, in the replay's transaction."""
    wh = Warehouse(warehouse_url)
    spec = catalog().sources["ga4_traffic"]
    metadata = sa.MetaData()
    raw = source_table("ga4_traffic", spec, metadata)
    qtable = quarantine_table(raw, metadata)
    wh.ensure_tables([raw, qtable])
    n = 10_000
    days = [D(2026, 1, 1) + dt.timedelta(days=i % 300) for i in range(n)]
    keys = {
        "property_id": ["123"] * n,
        "date": days,
        "session_default_channel_group": ["Organic Search"] * n,
        "session_source": ["google"] * n,
        "session_medium": ["organic"] * n,
        "session_campaign_name": [f"c{i // 300}" for i in range(n)],
        "device_category": ["desktop"] * n,
    }
    measures = {
        "engaged_sessions": [1] * n,
        "new_users": [1] * n,
        "key_events": [0] * n,
        "transactions": [0] * n,
        "purchase_revenue": [0.0] * n,
        "is_other_row": [False] * n,
    }
    # Every key is in raw already, with 1 session: the replay replaces each row.
    loaded = {"_source_file": "old.csv", "_source_line": 2, "_run_id": "old"}
    wh.replace_rows(raw, None, pd.DataFrame({**keys, **measures, "sessions": [1] * n, **loaded}))
    quarantined = pd.DataFrame(
        {
            "_quarantine_id": [f"q{i}" for i in range(n)],
            **keys,
            **measures,
            "sessions": [2] * n,
            "_failed_expectations": ["between(sessions): a rule since relaxed"] * n,
            "_partition": days,
            "_source_file": "new.csv",
            "_source_line": range(2, n + 2),
        }
    )
    wh.replace_rows(qtable, None, quarantined)
    try:
        result = replay("ga4_traffic", wh)
        sessions = wh.rows(sa.select(raw.c.sessions, sa.func.count()).group_by(raw.c.sessions))
        quarantine_left = wh.count(qtable)
    finally:
        wh.dispose()
    assert (result.replayed, result.still_failing) == (n, 0)
    assert sessions == [(2, n)]
    assert quarantine_left == 0


def test_replay_of_a_source_without_a_key_says_what_to_declare(duckdb_url, tmp_path):
    definitions = tmp_path / "definitions"
    shutil.copytree("kpi_definitions", definitions)
    sources = definitions / "sources.yaml"
    text = sources.read_text()
    key = "    key: [property_id, date, session_default_channel_group, session_source,"
    assert text.count(key) == 1  # ga4_traffic's
    sources.write_text("\n".join(line for line in text.splitlines() if not line.startswith(key)))
    wh = Warehouse(duckdb_url)
    try:
        with pytest.raises(ValueError, match=r"ga4_traffic: .* add `key:`"):
            replay("ga4_traffic", wh, definitions)
    finally:
        wh.dispose()
