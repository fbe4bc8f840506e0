"""Incremental refreshes (kpi.compute.changes) on a real warehouse: a step recomputes the
periods that end on or after the first changed day, keeps every other row, and gives the
rows a full recompute gives."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pandas as pd
import pytest
import sqlalchemy as sa

from kpi.compute.changes import (
    CALENDAR,
    FULL,
    VALUES,
    CalendarStamp,
    changed_since,
    cube_days_select,
    periods_changed_from,
    read_calendar_stamp,
    source_days_select,
    whole_history_as_full,
    write_calendar_stamp,
)
from kpi.compute.checksums import read_columns
from kpi.compute.coverage import covered_until
from kpi.compute.periods import Calendar
from kpi.compute.tables import KpiTables
from kpi.language.expressions import referenced_names
from kpi.language.loader import load_catalog
from kpi.language.models import Grain, Reporting
from kpi.refresh import (
    refresh_anomalies,
    refresh_calendar,
    refresh_comparisons,
    refresh_cubes,
    refresh_kpi_values,
    refresh_periods,
    refresh_targets,
)
from kpi.warehouse.connection import Warehouse

D = dt.date
FIRST, AS_OF = D(2026, 1, 1), D(2026, 2, 28)
T1 = dt.datetime(2026, 3, 1, 6, tzinfo=dt.UTC)
T2 = dt.datetime(2026, 3, 2, 6, tzinfo=dt.UTC)
CHANNELS = ("Organic Search", "Paid Search")


@pytest.fixture
def tables() -> KpiTables:
    return KpiTables.for_catalog(load_catalog(), use_cubes=True)


def _traffic(first: dt.date, last: dt.date, run: str = "r1") -> pd.DataFrame:
    rows = []
    for i in range((last - first).days + 1):
        day = first + dt.timedelta(days=i)
        for j, channel in enumerate(CHANNELS):
            rows.append(
                {
                    "property_id": "1",
                    "date": day,
                    "session_default_channel_group": channel,
                    "session_source": "google",
                    "session_medium": "cpc" if j else "organic",
                    "session_campaign_name": "(not set)",
                    "device_category": "desktop",
                    "sessions": 100 + i + 10 * j,
                    "engaged_sessions": 60 + j,
                    "transactions": 3 + j,
                    "purchase_revenue": 150.5 + i,
                    "is_other_row": False,
                    "_source_file": "ga4",
                    "_source_line": i,
                    "_run_id": run,
                }
            )
    return pd.DataFrame(rows)


def _orders(first: dt.date, last: dt.date) -> pd.DataFrame:
    rows = []
    for i in range((last - first).days + 1):
        day = first + dt.timedelta(days=i)
        rows.append(
            {
                "order_id": f"o{i}",
                "ordered_at": dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC),
                "customer_id": f"c{i % 7}",
                "channel": "Paid Search",
                "revenue": 40.0 + i,
                "currency": "EUR",
                "_source_file": "orders.csv",
                "_source_line": i + 2,
                "_run_id": "r1",
            }
        )
    return pd.DataFrame(rows)


def _run(wh: Warehouse, tables: KpiTables, as_of: dt.date, at: dt.datetime, full=False) -> None:
    periods = refresh_periods(wh, tables, as_of, full_refresh=full)
    refresh_kpi_values(wh, tables, computed_at=at)
    refresh_targets(wh, tables, periods)
    refresh_comparisons(wh, tables, computed_at=at)
    refresh_anomalies(wh, tables)


def _values(wh: Warehouse, tables: KpiTables) -> pd.DataFrame:
    return wh.read(sa.select(tables.values))


def _loaded(warehouse_url: str, tables: KpiTables) -> Warehouse:
    wh = Warehouse(warehouse_url)
    wh.ensure_tables(tables.all_tables())
    wh.replace_rows(tables.raw_tables["ga4_traffic"], None, _traffic(FIRST, AS_OF))
    wh.replace_rows(tables.raw_tables["orders"], None, _orders(FIRST, AS_OF))
    _run(wh, tables, AS_OF, T1)
    return wh


def _reads_traffic(tables: KpiTables, kpi_id: str) -> bool:
    kpi = tables.catalog.kpis[kpi_id]
    return "ga4_traffic" in tables.compiler.source_names(kpi)


def _same_rows(a: pd.DataFrame, b: pd.DataFrame, table: sa.Table) -> None:
    natural = ("kpi_id", "grain", "period_start", "channel", "device", "campaign")
    keys = [k for k in natural if k in table.c]
    a = a.drop(columns=[c for c in a if c.endswith("_at")]).sort_values(keys, ignore_index=True)
    b = b.drop(columns=[c for c in b if c.endswith("_at")]).sort_values(keys, ignore_index=True)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9)


def test_a_revised_day_recomputes_the_periods_ending_on_or_after_it(warehouse_url, tables):
    wh = _loaded(warehouse_url, tables)
    revised = D(2026, 2, 20)
    raw = tables.raw_tables["ga4_traffic"]
    with wh.transaction() as conn:
        conn.execute(raw.update().where(raw.c.date == revised).values(sessions=raw.c.sessions + 5))
    _run(wh, tables, AS_OF, T2)

    values = _values(wh, tables)
    traffic = values["kpi_id"].map(lambda k: _reads_traffic(tables, k))
    ends = pd.to_datetime(values["period_end"]).dt.date
    stamped = pd.to_datetime(values["computed_at"], utc=True)
    recomputed = stamped == pd.Timestamp(T2)
    # Exactly the traffic KPIs' periods that end on or after the revised day.
    assert recomputed.any()
    assert (recomputed == (traffic & (ends >= revised))).all()
    # The day itself moved by 5 sessions per channel.
    sessions = values[
        (values["kpi_id"] == "sessions")
        & (values["grain"] == "day")
        & values[tables.catalog.dimensions].isna().all(axis=1)
        & (ends == revised)
    ]
    # Day 50 of the data: 150 and 160 sessions, 5 more on each channel.
    assert sessions["value"].tolist() == [(150 + 5) + (160 + 5)]

    comparisons = wh.read(sa.select(tables.comparisons))
    c_ends = pd.to_datetime(comparisons["period_end"]).dt.date
    c_new = pd.to_datetime(comparisons["computed_at"], utc=True) == pd.Timestamp(T2)
    c_traffic = comparisons["kpi_id"].map(lambda k: _reads_traffic(tables, k))
    assert (c_new == (c_traffic & (c_ends >= revised))).all()

    # The same rows as a recompute of everything.
    tables_read = (tables.values, tables.comparisons, tables.targets, tables.anomalies)
    incremental = [wh.read(sa.select(t)) for t in tables_read]
    _run(wh, tables, AS_OF, T2, full=True)
    assert (pd.to_datetime(_values(wh, tables)["computed_at"], utc=True) == T2).all()
    for before, table in zip(incremental, tables_read, strict=True):
        _same_rows(before, wh.read(sa.select(table)), table)
    wh.dispose()


def test_a_to_date_kpi_without_a_day_grain_compares_as_a_full_recompute(warehouse_url):
    """Its previous period's span ends on a day it has no stored row for, so the comparison
    evaluates that day: before the first period an incremental run writes."""
    catalog = load_catalog()
    mtd = catalog.kpis["revenue_month_to_date"]
    catalog.kpis[mtd.id] = mtd.model_copy(update={"grains": [g for g in mtd.grains if g != "day"]})
    tables = KpiTables.for_catalog(catalog, use_cubes=True)
    wh = _loaded(warehouse_url, tables)
    raw = tables.raw_tables["ga4_traffic"]
    with wh.transaction() as conn:
        conn.execute(
            raw.update()
            .where(raw.c.date == D(2026, 2, 20))
            .values(purchase_revenue=raw.c.purchase_revenue + 7)
        )
    _run(wh, tables, AS_OF, T2)
    c = tables.comparisons
    week = sa.and_(c.c.kpi_id == mtd.id, c.c.grain == "week", c.c.channel.is_(None))
    week = sa.and_(week, c.c.device.is_(None), c.c.campaign.is_(None))
    rows = wh.read(sa.select(c.c.period_start, c.c.previous, c.c.computed_at).where(week))
    # The week of Feb 16-22, recomputed: month to date on the 22nd against Jan 1-22.
    row = rows[pd.to_datetime(rows["period_start"]).dt.date == D(2026, 2, 16)].iloc[0]
    assert pd.Timestamp(row["computed_at"]) == pd.Timestamp(T2)
    # Jan 1..22 are days 0..21, each with 150.5 + i on both channels.
    assert row["previous"] == pytest.approx(sum(2 * (150.5 + i) for i in range(22)))
    incremental = wh.read(sa.select(c))
    _run(wh, tables, AS_OF, T2, full=True)
    _same_rows(incremental, wh.read(sa.select(c)), c)
    wh.dispose()


def test_the_days_read_from_a_cube_are_those_of_a_scan_of_its_source(warehouse_url, tables):
    # The refresh reads a source's day counts and checksums from its cube; they must be the
    # integers a scan of the raw rows gives, or a change would go unseen (or, after an
    # upgrade from the scan, every day would look changed).
    wh = Warehouse(warehouse_url)
    wh.ensure_tables(tables.all_tables())
    traffic = _traffic(FIRST, AS_OF)
    traffic.loc[traffic["date"] == D(2026, 1, 10), "device_category"] = "mobile"
    wh.replace_rows(tables.raw_tables["ga4_traffic"], None, traffic)
    wh.replace_rows(tables.raw_tables["orders"], None, _orders(FIRST, AS_OF))
    refresh_cubes(wh, tables)
    cubed = [s for s in ("ga4_traffic", "orders") if s in tables.compiler.cubes.tables]
    assert "ga4_traffic" in cubed
    for source in cubed:
        from_cube = wh.rows(cube_days_select(source, tables.compiler.cubes.tables[source]))
        scanned = wh.rows(source_days_select(tables.catalog, source, tables.raw_tables[source]))
        assert len(scanned) == (AS_OF - FIRST).days + 1
        assert all(checksum is not None for *_, checksum in scanned)
        assert sorted(from_cube) == sorted(scanned)
    wh.dispose()


def test_a_reload_of_the_same_numbers_recomputes_nothing(warehouse_url, tables):
    wh = _loaded(warehouse_url, tables)
    before = _values(wh, tables)
    # The lookback re-pulls the last days: new run id and load stamps, the same numbers.
    again = _traffic(FIRST, AS_OF, run="r2")
    wh.replace_rows(tables.raw_tables["ga4_traffic"], None, again)
    _run(wh, tables, AS_OF, T2)
    after = _values(wh, tables)
    assert (pd.to_datetime(after["computed_at"], utc=True) == pd.Timestamp(T1)).all()
    assert len(after) == len(before)
    wh.dispose()


def test_a_change_to_a_column_no_kpi_reads_recomputes_nothing(warehouse_url, tables):
    # GA4's new_users and is_other_row are loaded, validated and kept, but no KPI reads
    # them from ga4_traffic: the day checksums leave them out (kpi.compute.checksums).
    assert {"new_users", "is_other_row"}.isdisjoint(read_columns(tables.catalog, "ga4_traffic"))
    wh = _loaded(warehouse_url, tables)
    edited = _traffic(FIRST, AS_OF, run="r2")
    edited["is_other_row"] = True
    edited["new_users"] = 7
    wh.replace_rows(tables.raw_tables["ga4_traffic"], None, edited)
    _run(wh, tables, AS_OF, T2)
    after = _values(wh, tables)
    assert (pd.to_datetime(after["computed_at"], utc=True) == pd.Timestamp(T1)).all()
    # A column KPIs read (engaged sessions) on one day: its periods are recomputed.
    edited.loc[edited["date"] == D(2026, 2, 20), "engaged_sessions"] = 1
    wh.replace_rows(tables.raw_tables["ga4_traffic"], None, edited)
    _run(wh, tables, AS_OF, T2)
    recomputed = _values(wh, tables)
    recomputed = recomputed[pd.to_datetime(recomputed["computed_at"], utc=True) == pd.Timestamp(T2)]
    assert set(recomputed["kpi_id"]) >= {"engagement_rate", "bounce_rate"}
    assert (pd.to_datetime(recomputed["period_end"]).dt.date >= D(2026, 2, 20)).all()
    wh.dispose()


def test_the_checksummed_columns_are_those_kpis_read():
    catalog = load_catalog()
    traffic = read_columns(catalog, "ga4_traffic")
    # The time column, every dimension's column and the channel rules' inputs, then the
    # measures' columns; declared order.
    assert traffic == [
        "date",
        "session_default_channel_group",
        "session_source",
        "session_medium",
        "session_campaign_name",
        "device_category",
        "sessions",
        "engaged_sessions",
        "transactions",
        "purchase_revenue",
    ]
    # A column named in a filter only is read too: paid orders filter on the channel.
    for source in catalog.sources:
        columns = read_columns(catalog, source)
        for kpi in catalog.kpis.values():
            for _, m in kpi.measures:
                if m.source == source:
                    for text in (m.expr, m.filter):
                        for name in referenced_names(text) if text else []:
                            column = catalog.sources[source].dimensions.get(name)
                            assert (column.column if column else name) in columns, (source, name)


def test_a_change_from_the_first_day_on_is_recomputed_as_a_full_refresh(warehouse_url, tables):
    # Every period ends on or after the first day of data: the incremental statements would
    # recompute them all, and PostgreSQL plans them badly over the whole history, so the
    # statements of a full recompute run instead (kpi.compute.changes.whole_history_as_full).
    wh = _loaded(warehouse_url, tables)
    todo = {"sessions": FIRST, "revenue": D(2026, 2, 20), "roas": FULL}
    with wh.engine.connect() as conn:
        assert whole_history_as_full(
            conn, tables.periods, tables.source_days, tables.catalog, todo
        ) == {
            "sessions": FULL,
            "revenue": D(2026, 2, 20),
            "roas": FULL,
        }
    # A source that starts later than the calendar: its readers' threshold is its own first
    # day (orders from 10 January here), not the calendar's first.
    later = D(2026, 1, 10)
    wh.replace_rows(tables.raw_tables["orders"], None, _orders(later, AS_OF))
    _run(wh, tables, AS_OF, T2)
    reads_orders = next(
        k
        for k in tables.catalog.kpis
        if tables.compiler.source_names(tables.catalog.kpis[k]) == ["orders"]
    )
    with wh.engine.connect() as conn:
        got = whole_history_as_full(
            conn,
            tables.periods,
            tables.source_days,
            tables.catalog,
            {reads_orders: later, "sessions": later},
        )
    assert got == {reads_orders: FULL, "sessions": later}
    # A revision of every day: the comparisons recomputed in full equal a full refresh.
    edited = _traffic(FIRST, AS_OF, run="r2")
    edited["sessions"] += 1
    wh.replace_rows(tables.raw_tables["ga4_traffic"], None, edited)
    _run(wh, tables, AS_OF, T2)
    incremental = wh.read(sa.select(tables.comparisons))
    _run(wh, tables, AS_OF, T2, full=True)
    refresh_kpi_values(wh, tables, computed_at=T2, full_refresh=True)
    refresh_comparisons(wh, tables, computed_at=T2, full_refresh=True)
    _same_rows(incremental, wh.read(sa.select(tables.comparisons)), tables.comparisons)
    wh.dispose()


def test_a_new_day_recomputes_only_the_open_periods(warehouse_url, tables):
    wh = _loaded(warehouse_url, tables)
    day = AS_OF + dt.timedelta(days=1)  # Sunday 1 March
    raw = tables.raw_tables
    wh.replace_rows(raw["ga4_traffic"], raw["ga4_traffic"].c.date == day, _traffic(day, day))
    _run(wh, tables, day, T2)
    values = _values(wh, tables)
    recomputed = values[pd.to_datetime(values["computed_at"], utc=True) == pd.Timestamp(T2)]
    # The new day, and the periods that hold it: week of 23 Feb, March, Q1. February
    # and every earlier period keep their rows.
    starts = {
        (g, str(s)) for g, s in zip(recomputed["grain"], recomputed["period_start"], strict=True)
    }
    assert starts == {
        ("day", "2026-03-01"),
        ("week", "2026-02-23"),
        ("month", "2026-03-01"),
        ("quarter", "2026-01-01"),  # (no shipped KPI is reported by year)
    }
    wh.dispose()


def _with_channel(frame: pd.DataFrame, channel: str, medium: str) -> pd.DataFrame:
    """``frame``'s GA4 rows, and a copy of its last row on another channel."""
    extra = frame.tail(1).assign(session_default_channel_group=channel, session_medium=medium)
    return pd.concat([frame, extra], ignore_index=True)


@pytest.mark.parametrize("change", ["appears", "goes_away", "appears_unstamped"])
def test_a_slice_value_that_appears_or_goes_away_recomputes_its_sources_kpis_whole(
    warehouse_url, tables, change
):
    """A channel is a dense slice: every period has a row for every channel seen anywhere
    (zero-filled). Email first seen on a new day has rows on every earlier day too; a
    channel whose only rows are revised away has none left. The day checksums alone would
    recompute from the changed day on (kpi.compute.slice_stamps). Without a stored stamp
    (code before them), a changed source is recomputed whole: nothing says what it had."""
    wh = _loaded(warehouse_url, tables)
    day = AS_OF + dt.timedelta(days=1)
    raw = tables.raw_tables["ga4_traffic"]
    v = tables.values
    email = sa.select(sa.func.count()).where(v.c.kpi_id == "sessions", v.c.channel == "Email")
    if change == "goes_away":  # Email on 10 February only, revised away with the new day
        once = D(2026, 2, 10)
        wh.replace_rows(raw, raw.c.date == once, _with_channel(_traffic(once, once), "Email", "x"))
        _run(wh, tables, AS_OF, T1)
        assert wh.rows(email)[0][0] > 59  # every day, week and month of the history
        wh.replace_rows(raw, raw.c.date == once, _traffic(once, once))
    if change == "appears_unstamped":  # a warehouse of code before the stamps
        state = tables.refresh_state
        with wh.transaction() as conn:
            conn.execute(state.delete().where(state.c.step == "slices"))
    new_day = _traffic(day, day)
    if change.startswith("appears"):
        assert wh.rows(email)[0][0] == 0
        new_day = _with_channel(new_day, "Email", "email")
    wh.replace_rows(raw, raw.c.date == day, new_day)
    _run(wh, tables, day, T2)

    values = _values(wh, tables)
    stamped = pd.to_datetime(values["computed_at"], utc=True) == pd.Timestamp(T2)
    traffic = values["kpi_id"].map(lambda k: _reads_traffic(tables, k))
    # Every row of the KPIs reading GA4 traffic was recomputed, the others only from the
    # new day's periods on.
    assert stamped[traffic].all()
    assert not stamped[~traffic].all()
    days = wh.rows(email.where(v.c.grain == "day"))[0][0]
    assert days == (0 if change == "goes_away" else 60)  # 1 Jan .. 1 Mar, or none
    # The same rows as a recompute of everything.
    tables_read = (tables.values, tables.comparisons, tables.targets, tables.anomalies)
    incremental = [wh.read(sa.select(t)) for t in tables_read]
    _run(wh, tables, day, T2, full=True)
    for before, table in zip(incremental, tables_read, strict=True):
        _same_rows(before, wh.read(sa.select(table)), table)
    # A run with no news moves no stamp.
    _run(wh, tables, day, T2 + dt.timedelta(days=1))
    later = pd.to_datetime(_values(wh, tables)["computed_at"], utc=True)
    assert (later <= pd.Timestamp(T2)).all()
    wh.dispose()


def test_a_changed_definition_recomputes_that_kpi_whole(warehouse_url, tables):
    wh = _loaded(warehouse_url, tables)
    state = tables.refresh_state
    # As if the state had been written by an older definition of `sessions` only.
    with wh.transaction() as conn:
        conn.execute(
            state.update()
            .where(state.c.step == VALUES, state.c.kpi_id == "sessions")
            .values(fingerprint="an older definition")
        )
    _run(wh, tables, AS_OF, T2)
    values = _values(wh, tables)
    recomputed = set(values.loc[pd.to_datetime(values["computed_at"], utc=True) == T2, "kpi_id"])
    assert recomputed == {"sessions"}
    assert (values.loc[values["kpi_id"] == "sessions", "computed_at"].notna()).all()
    wh.dispose()


def test_periods_changed_from_is_the_first_end_of_a_period_that_differs():
    calendar = Calendar(Reporting())
    old = [p.__dict__ for p in calendar.periods(FIRST, AS_OF)]
    assert periods_changed_from(old, old) is None
    # One day later: the new day is the first new period; February was complete already.
    new = [p.__dict__ for p in calendar.periods(FIRST, AS_OF + dt.timedelta(days=1))]
    assert periods_changed_from(old, new) == AS_OF + dt.timedelta(days=1)
    # One day earlier: 28 February goes, February becomes open again, its end is 28 Feb.
    shorter = [p.__dict__ for p in calendar.periods(FIRST, AS_OF - dt.timedelta(days=1))]
    assert periods_changed_from(old, shorter) == AS_OF
    # An earlier first day adds periods at the start: everything after them may change.
    earlier = [p.__dict__ for p in calendar.periods(D(2025, 12, 30), AS_OF)]
    assert periods_changed_from(old, earlier) == D(2025, 12, 30)
    assert D(2000, 1, 1) > FULL


def _calendar(wh: Warehouse, tables: KpiTables) -> list[pd.DataFrame]:
    out = []
    for table in (tables.periods, tables.compiler.day_periods):
        frame = wh.read(sa.select(table))
        keys = ["grain", "period_start"] + (["day"] if "day" in frame else [])
        out.append(frame.sort_values(keys, ignore_index=True))
    return out


def _dirty(wh: Warehouse, tables: KpiTables) -> set:
    state = tables.refresh_state
    rows = wh.rows(sa.select(state.c.dirty_from).where(state.c.step == VALUES).distinct())
    return {pd.Timestamp(d).date() if d is not None else None for (d,) in rows}


@pytest.mark.parametrize(
    "moves",
    [
        [AS_OF + dt.timedelta(days=1), AS_OF + dt.timedelta(days=2)],  # the daily case
        [AS_OF, AS_OF - dt.timedelta(days=3)],  # the same day again, then backwards
        [D(2026, 3, 31), D(2026, 4, 1)],  # across a month, a quarter and a week
    ],
    ids=["next_days", "same_then_back", "quarter_turn"],
)
def test_periods_rewritten_in_part_are_those_written_whole(warehouse_url, tables, moves):
    # A refresh rewrites only the periods ending on or after the earlier as-of date (or
    # none): the tables must be row for row those a whole rewrite gives, and the KPI steps
    # must recompute from the first period that changed.
    wh = _loaded(warehouse_url, tables)
    state = tables.refresh_state
    calendar = Calendar(tables.catalog.reporting)
    previous = AS_OF
    for as_of in moves:
        with wh.transaction() as conn:  # as if every step had caught up since
            conn.execute(state.update().values(dirty_from=None))
        refresh_periods(wh, tables, as_of)
        old = [p.__dict__ for p in calendar.periods(FIRST, previous)]
        since = periods_changed_from(old, [p.__dict__ for p in calendar.periods(FIRST, as_of)])
        assert _dirty(wh, tables) == {since}
        in_part = _calendar(wh, tables)
        # Without the stamp the next refresh cannot trust any stored period: all rewritten.
        with wh.transaction() as conn:
            conn.execute(state.delete().where(state.c.step == CALENDAR))
        refresh_periods(wh, tables, as_of)
        for a, b in zip(in_part, _calendar(wh, tables), strict=True):
            pd.testing.assert_frame_equal(a, b)
        assert len(in_part[0]) == len(calendar.periods(FIRST, as_of))
        previous = as_of
    wh.dispose()


@pytest.mark.parametrize("full_refresh", [False, True], ids=["count_changed", "full_refresh"])
def test_periods_tables_edited_by_hand_are_rewritten_whole(warehouse_url, tables, full_refresh):
    # The same calendar again writes nothing, unless a table's row count is not the one
    # stamped; a full refresh rewrites everything whatever the stamp, so it repairs an edit
    # that kept the counts.
    wh = _loaded(warehouse_url, tables)
    expected = _calendar(wh, tables)
    periods, dp = tables.periods, tables.compiler.day_periods
    with wh.transaction() as conn:
        conn.execute(periods.update().values(is_complete_period=sa.true()))
        if not full_refresh:
            conn.execute(dp.delete().where(dp.c.grain == "month"))
    refresh_periods(wh, tables, AS_OF, full_refresh=full_refresh)
    for a, b in zip(expected, _calendar(wh, tables), strict=True):
        pd.testing.assert_frame_equal(a, b)
    wh.dispose()


def test_refresh_calendar_says_what_it_changed(warehouse_url, tables):
    # What the kpi_periods asset logs: how many periods, and from which period end they
    # changed (None: the stamped calendar again, written by no one).
    wh = _loaded(warehouse_url, tables)
    same = refresh_calendar(wh, tables, AS_OF)
    assert (same.first, same.as_of, same.changed_from) == (FIRST, AS_OF, None)
    assert same.periods == wh.count(tables.periods) == len(same.all_periods())
    # The next day is new: the first period that changed is that day's.
    nxt = refresh_calendar(wh, tables, AS_OF + dt.timedelta(days=1))
    assert nxt.changed_from == AS_OF + dt.timedelta(days=1)
    assert nxt.periods == wh.count(tables.periods) == same.periods + 1 + 1  # a day, March
    wh.dispose()


def _writes(wh: Warehouse, run) -> list[str]:
    """The statements ``run()`` sends that write (or make a temporary table), first words."""
    sent: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(" ".join(statement.split())[:120])

    sa.event.listen(wh.engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        sa.event.remove(wh.engine, "before_cursor_execute", record)
    verbs = ("INSERT", "DELETE", "UPDATE", "CREATE", "DROP", "ALTER")
    return [s for s in sent if s.upper().startswith(verbs)]


def test_a_refresh_with_no_news_writes_no_bookkeeping(warehouse_url, tables):
    # The same calendar and the same rows again: the calendar stamp, the day checksums and
    # the compiled statements stay as they are. A date-typed source's daily cube is kept
    # (kpi.compute.cube_upkeep): nothing changed, nothing rewritten; a timestamp source's
    # is rebuilt, and its days read from it need no temporary table.
    wh = _loaded(warehouse_url, tables)
    state = _values(wh, tables), wh.read(sa.select(tables.source_days))
    writes = _writes(
        wh,
        lambda: (
            refresh_calendar(wh, tables, AS_OF),
            refresh_kpi_values(wh, tables, computed_at=T2),
        ),
    )
    # Nothing but the cubes (and their schema, IF NOT EXISTS): no periods, no stamp, no
    # days, no compiled statements, no values, no temporary table of a rebuilt cube's days.
    cubes = [*tables.compiler.cubes.tables.values(), *tables.compiler.cubes.month_tables.values()]
    names = [c.fullname for c in cubes] + [f"kpi.{c.name}" for c in cubes]  # stale reader copy
    others = [
        w
        for w in writes
        if not any(n in w for n in names) and not w.startswith("CREATE SCHEMA IF NOT EXISTS")
    ]
    # The sources without a rebuilt cube keep their days in a temporary table of this
    # connection.
    assert [w for w in others if "tmp_source_days_" not in w] == []
    assert [w for w in others if "tmp_source_days_orders" in w] == []
    assert any("tmp_source_days_ga4_traffic" in w for w in writes)
    assert not [w for w in writes if "kpi_work.cube_ga4_traffic" in w]  # kept, unchanged
    assert any("kpi_work.cube_orders" in w for w in writes)  # rebuilt
    _same_rows(_values(wh, tables), state[0], tables.values)
    days = wh.read(sa.select(tables.source_days)).sort_values(["source", "day"], ignore_index=True)
    pd.testing.assert_frame_equal(days, state[1].sort_values(["source", "day"], ignore_index=True))
    wh.dispose()


@pytest.mark.parametrize("rescannable", [False, True], ids=["kept", "rescanned"])
def test_the_days_of_a_cube_read_twice_are_those_kept_in_a_temporary_table(
    warehouse_url, tables, rescannable
):
    # changed_since reads a cube's days twice (compare, then store) instead of keeping them
    # in a temporary table: the day found and the days stored must be the same either way.
    wh = _loaded(warehouse_url, tables)
    raw, days = tables.raw_tables["ga4_traffic"], tables.source_days
    with wh.transaction() as conn:
        conn.execute(raw.update().where(raw.c.date == D(2026, 2, 3)).values(sessions=1))
        conn.execute(raw.delete().where(raw.c.date == D(2026, 2, 25)))
    refresh_cubes(wh, tables)
    select = cube_days_select("ga4_traffic", tables.compiler.cubes.tables["ga4_traffic"])
    with wh.transaction() as conn:
        again = ["ga4_traffic"] if rescannable else []
        found = changed_since(conn, days, {"ga4_traffic": select}, again)
        # Nothing differs any more: the same call finds nothing.
        assert changed_since(conn, days, {"ga4_traffic": select}, again) == {"ga4_traffic": None}
    assert found == {"ga4_traffic": D(2026, 2, 3)}
    stored = wh.rows(
        sa.select(days.c.day, days.c.n, days.c.checksum).where(days.c.source == "ga4_traffic")
    )
    assert sorted(stored) == sorted((d, n, c) for _, d, n, c in wh.rows(select))
    assert D(2026, 2, 25) not in {d for d, _, _ in stored}
    wh.dispose()


def test_a_calendar_stamped_otherwise_is_stamped_anew_even_when_no_period_changed(
    warehouse_url, tables
):
    # New kernel code (other rules) leaves the periods as they were: nothing is dirty, but
    # the stamp must become this calendar's, or every later run rewrites every period.
    wh = _loaded(warehouse_url, tables)
    written = [tables.periods, tables.compiler.day_periods]
    with wh.engine.connect() as conn:
        stamp, counts = read_calendar_stamp(conn, tables.refresh_state, written)
    assert stamp is not None
    assert counts == stamp.rows  # the tables hold what the stamp says they were written with
    with wh.transaction() as conn:
        write_calendar_stamp(conn, tables.refresh_state, replace(stamp, rules="older"), T1)
    assert refresh_calendar(wh, tables, AS_OF).changed_from is None
    with wh.engine.connect() as conn:
        assert read_calendar_stamp(conn, tables.refresh_state) == (stamp, ())
    periods = (tables.periods.fullname, tables.compiler.day_periods.fullname)
    again = _writes(wh, lambda: refresh_calendar(wh, tables, AS_OF))
    assert [w for w in again if any(p in w for p in periods)] == []
    wh.dispose()


def test_a_calendar_stamp_written_twice_by_hand_is_read_and_replaced_by_one(warehouse_url, tables):
    # refresh_state has no key: a second stamp row (an edit, a restore) must not stop every
    # calendar refresh; the next write leaves one row.
    wh = _loaded(warehouse_url, tables)
    state = tables.refresh_state
    stamp_rows = sa.select(state).where(state.c.step == CALENDAR)
    with wh.transaction() as conn:
        row = dict(conn.execute(stamp_rows).mappings().one())
        conn.execute(state.insert().values(**{**row, "fingerprint": "older|x"}))
    with wh.engine.connect() as conn:
        stamp, _ = read_calendar_stamp(conn, state)
    # Either row, decoded (the other's text is no stamp): not an error.
    assert stamp in (None, CalendarStamp.decode(row["fingerprint"]))
    assert len(wh.rows(stamp_rows)) == 2
    refresh_calendar(wh, tables, AS_OF + dt.timedelta(days=1))
    assert len(wh.rows(stamp_rows)) == 1
    with wh.engine.connect() as conn:
        assert read_calendar_stamp(conn, state)[0].as_of == AS_OF + dt.timedelta(days=1)
    wh.dispose()


def _days_select(days: list[dt.date]) -> sa.Select:
    """A source's days as changed_since reads them: one row of 1 and checksum 7 a day."""
    rows = sa.values(sa.column("day", sa.Date), name="days").data([(d,) for d in days])
    return sa.select(
        sa.literal("s", sa.String).label("source"),
        rows.c.day,
        sa.cast(sa.literal(1), sa.BigInteger).label("n"),
        sa.cast(sa.literal(7), sa.BigInteger).label("checksum"),
    )


@pytest.mark.parametrize(
    "grain, before, after, first_changed",
    [
        # Rows up to 2 March, then on 5 March: 3 and 4 March are known days of nothing now.
        (Grain.day, [D(2026, 3, 2)], [D(2026, 3, 2), D(2026, 3, 5)], D(2026, 3, 3)),
        # The reverse: 5 March's rows go away, 3 and 4 March are unknown again.
        (Grain.day, [D(2026, 3, 2), D(2026, 3, 5)], [D(2026, 3, 2)], D(2026, 3, 3)),
        # Weekly rows: the week of 2 March covers it up to 8 March; the new week is the change.
        (Grain.week, [D(2026, 3, 2)], [D(2026, 3, 2), D(2026, 3, 9)], D(2026, 3, 9)),
        # A week skipped: the week of 9 March is known now, with no row.
        (Grain.week, [D(2026, 3, 2)], [D(2026, 3, 2), D(2026, 3, 16)], D(2026, 3, 9)),
        # No move of the last day: the changed day itself.
        (Grain.day, [D(2026, 3, 2), D(2026, 3, 5)], [D(2026, 3, 1), D(2026, 3, 5)], D(2026, 3, 1)),
    ],
)
def test_the_first_changed_day_reaches_back_over_the_days_the_coverage_moved_over(
    duckdb_url, tables, grain, before, after, first_changed
):
    # The anomaly step judges only the days a source covers (kpi.compute.coverage), so the
    # days between the last rows before and after a change are changed days too.
    wh = Warehouse(duckdb_url)
    days = tables.source_days
    wh.ensure_tables([days])
    until = {"s": lambda day: covered_until(day, grain)}
    try:
        with wh.transaction() as conn:
            assert changed_since(conn, days, {"s": _days_select(before)}, (), until) == {
                "s": min(before)
            }
            found = changed_since(conn, days, {"s": _days_select(after)}, (), until)
        assert found == {"s": first_changed}
    finally:
        wh.dispose()


def _sent(wh: Warehouse, run) -> list[str]:
    sent: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(" ".join(statement.split()))

    sa.event.listen(wh.engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        sa.event.remove(wh.engine, "before_cursor_execute", record)
    return sent


def _compares_days(statement: str) -> bool:
    return "FULL OUTER JOIN" in statement and "source_days" in statement


def test_a_full_refresh_of_every_reader_stores_the_days_without_comparing_them(
    warehouse_url, tables
):
    """A full refresh recomputes every KPI that reads a source: which day changed there
    tells it nothing, so it stores the source's days without comparing them (the compare
    is a full join of the stored days and the new, kpi.compute.changes._compared). A
    full refresh of only some of a source's readers still finds the first changed day, and
    the others recompute from it on their next refresh."""
    wh = _loaded(warehouse_url, tables)
    revised = D(2026, 2, 20)
    raw = tables.raw_tables["ga4_traffic"]
    with wh.transaction() as conn:
        conn.execute(raw.update().where(raw.c.date == revised).values(sessions=raw.c.sessions + 5))
    readers = [k for k in tables.catalog.kpis if _reads_traffic(tables, k)]
    some, others = readers[:1], [k for k in readers[1:] if k in tables.catalog.kpis]
    assert others  # the test needs a reader left out
    sent = _sent(wh, lambda: refresh_kpi_values(wh, tables, some, T2, full_refresh=True))
    assert [s for s in sent if _compares_days(s)]
    state = tables.refresh_state
    dirty = dict(
        wh.rows(
            sa.select(state.c.kpi_id, state.c.dirty_from).where(
                state.c.step == VALUES, state.c.kpi_id.in_(others)
            )
        )
    )
    assert {str(day)[:10] for day in dirty.values()} == {str(revised)}, dirty
    # Every KPI: no day compared, the days stored are those of a scan of the sources.
    with wh.transaction() as conn:
        conn.execute(raw.update().where(raw.c.date == revised).values(sessions=raw.c.sessions + 1))
    sent = _sent(wh, lambda: refresh_kpi_values(wh, tables, computed_at=T2, full_refresh=True))
    assert not [s for s in sent if _compares_days(s)]
    stored = wh.read(sa.select(tables.source_days))
    stored = stored.sort_values(["source", "day"], ignore_index=True)
    for source in stored["source"].unique():
        scanned = wh.read(
            source_days_select(tables.catalog, source, tables.compiler.tables[source])
        ).sort_values("day", ignore_index=True)
        mine = stored[stored["source"] == source].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, scanned, check_dtype=False)
    # And an incremental run after it finds nothing changed, and recomputes nothing.
    before = _values(wh, tables)
    refresh_kpi_values(wh, tables, computed_at=T1)
    _same_rows(_values(wh, tables), before, tables.values)
    assert (pd.to_datetime(_values(wh, tables)["computed_at"], utc=True) == T2).all()
    wh.dispose()
