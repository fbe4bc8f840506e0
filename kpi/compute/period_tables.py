"""Keeping the periods tables (``kpi.periods`` and the day map) in step with the calendar.

The calendar is computed in Python (kpi.compute.periods) and written to the warehouse,
where every KPI statement joins to it. A refresh writes only what changed, known from a
stamp of what the tables were last written from (kpi.compute.changes.CalendarStamp): nothing
when the calendar is the same, the open periods when only the as-of date moved, and all of
them otherwise. Nothing is computed that is not written: three years of periods (1,191)
took ~75 ms to build in Python, and ~17 ms since, most of a small refresh's calendar step.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pandas as pd
import sqlalchemy as sa

from kpi.compute.changes import (
    STEPS,
    CalendarStamp,
    forget,
    mark_dirty,
    periods_changed_from,
    read_calendar_stamp,
    write_calendar_stamp,
)
from kpi.compute.periods import Calendar, Period, day_periods, period_columns
from kpi.compute.tables import KpiTables
from kpi.warehouse.connection import ANALYZE_MIN_ROWS, Warehouse, analyze_in


def first_day_of_data(wh: Warehouse, tables: KpiTables) -> dt.date | None:
    """The earliest local day in any daily source, or None when every source is empty.

    Pre-aggregated sources are left out: their dates label a month, not a day with data.
    One query for all sources.
    """
    # One row per source, a DATE column and a TIMESTAMPTZ column (the other one NULL): in a
    # single column the union would turn dates into timestamps in the session's zone. A
    # UNION of plain min()s rather than one row of scalar subqueries: on the benchmark's
    # 10M-row file DuckDB answered it in 1 ms rather than 30.
    firsts = []
    for name, table in tables.raw_tables.items():
        src = tables.catalog.sources[name]
        if src.grain != "day":
            continue
        low = sa.func.min(table.c[src.time.column])
        no_day = sa.cast(sa.null(), sa.Date)
        no_moment = sa.cast(sa.null(), sa.DateTime(timezone=True))
        columns = (low, no_moment) if src.time.type == "date" else (no_day, low)
        firsts.append(sa.select(columns[0].label("day"), columns[1].label("moment")))
    if not firsts:
        return None
    rows = wh.rows(sa.union_all(*firsts) if len(firsts) > 1 else firsts[0])
    values = [v for row in rows for v in row if v is not None]
    zone = ZoneInfo(tables.catalog.reporting.time_zone)
    days = []
    for value in values:
        if isinstance(value, dt.datetime):
            aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
            value = aware.astimezone(zone).date()
        days.append(value)
    return min(days) if days else None


@dataclass(frozen=True)
class CalendarRefresh:
    """What ``refresh_calendar`` did: the calendar, its first day and as-of date, the rows
    of the periods table, and the first end of a period it changed (None: none changed)."""

    calendar: Calendar
    first: dt.date
    as_of: dt.date
    periods: int
    changed_from: dt.date | None

    def all_periods(self) -> list[Period]:
        """Every period of the calendar (built in Python: ~15 µs each)."""
        return self.calendar.periods(self.first, self.as_of)


def refresh_calendar(
    wh: Warehouse, tables: KpiTables, as_of: dt.date, full_refresh: bool = False
) -> CalendarRefresh:
    """Rewrite the periods tables for the data's range, through ``as_of``.

    Only the periods that can have changed are built and rewritten: none when the calendar
    is the one stamped by the last refresh, the open ones when only the as-of date moved
    (kpi.compute.changes.CalendarStamp), all of them otherwise. The periods that changed
    make every KPI step recompute from the first of them (kpi.compute.changes);
    ``full_refresh`` rewrites every period and makes the next steps recompute everything.
    """
    first = min(first_day_of_data(wh, tables) or as_of, as_of)
    reporting = tables.catalog.reporting
    calendar = Calendar(reporting)
    rows = calendar.table_rows(first, as_of)
    stamp = CalendarStamp.of(reporting.model_dump(mode="json"), first, as_of, rows)
    state, days = tables.refresh_state, tables.source_days
    wh.ensure_tables([state, days])
    written = [tables.periods, tables.compiler.day_periods]
    # Together: a reader never joins this run's periods to the last run's day map.
    with wh.transaction(lock=[*written, state, days]) as conn:
        before, stored = read_calendar_stamp(conn, state, written)
        # A full refresh rewrites everything, the repair for tables edited by hand; so does
        # a table whose row count is not the one stamped.
        if full_refresh or (before is not None and before.rows != stored):
            before = None
        kept = before.kept_before(stamp) if before is not None else None
        if before == stamp:
            since = None
        elif kept is None:
            since = _rewrite_periods(conn, tables, calendar.periods(first, as_of))
        else:
            recent = calendar.periods(first, as_of, ending_from=kept)
            since = _rewrite_periods_from(conn, tables, calendar, recent, kept)
        if full_refresh:
            forget(conn, state, days)
        elif since is not None:
            mark_dirty(conn, state, STEPS, dict.fromkeys(tables.catalog.kpis, since))
        if before != stamp:  # the same calendar: a run with no news writes nothing here
            write_calendar_stamp(conn, state, stamp, dt.datetime.now(dt.UTC))
    return CalendarRefresh(calendar, first, as_of, rows[0], since)


def refresh_periods(
    wh: Warehouse, tables: KpiTables, as_of: dt.date, full_refresh: bool = False
) -> list[Period]:
    """``refresh_calendar``, then every period of the calendar, for the callers that pass
    them on (``refresh_targets``); the pipeline reads them from the table instead."""
    return refresh_calendar(wh, tables, as_of, full_refresh).all_periods()


def _rewrite_periods(conn, tables: KpiTables, periods: list[Period]) -> dt.date | None:
    """Replace every row of the periods tables; the first end of a period that changed."""
    old = conn.execute(sa.select(tables.periods)).mappings().all()
    since = periods_changed_from(old, [p.__dict__ for p in periods])
    for table, rows in (
        (tables.periods, period_columns(periods)),
        (tables.compiler.day_periods, day_periods(periods)),
    ):
        conn.execute(table.delete())
        frame = pd.DataFrame(rows)
        Warehouse.insert_rows_in(conn, table, frame)
        if len(frame) < ANALYZE_MIN_ROWS:  # a larger write analyzed it already
            # Every KPI statement filters these tables by grain and joins its slices and
            # data to them: rewritten whole, they are analyzed whatever their size. Without
            # statistics (a new warehouse: ~490 periods for 408 days, below the bulk
            # threshold) PostgreSQL took `grain = 'week'` for 2 rows of 60, planned a
            # derived KPI's two sparse-slice parts as nested loops over each other, and one
            # kpi_values statement took 98 s instead of 0.2 s.
            analyze_in(conn, table, ANALYZE_MIN_ROWS)
    return since


def _rewrite_periods_from(
    conn, tables: KpiTables, calendar: Calendar, recent: list[Period], kept: dt.date
) -> dt.date | None:
    """Replace the periods ending on or after ``kept`` (``recent``; the others are the
    stored rows); the first end of a period that changed. A grain's periods are contiguous,
    so those are its periods starting on or after the start of the one that holds ``kept``."""
    table, dp = tables.periods, tables.compiler.day_periods
    old = conn.execute(sa.select(table).where(table.c.period_end >= kept)).mappings().all()
    since = periods_changed_from(old, [p.__dict__ for p in recent])
    conn.execute(table.delete().where(table.c.period_end >= kept))
    starts = {g: calendar.start_of(kept, g) for g in {p.grain for p in recent}}
    conn.execute(
        dp.delete().where(
            sa.or_(*[(dp.c.grain == g) & (dp.c.period_start >= d) for g, d in starts.items()])
        )
    )
    Warehouse.insert_rows_in(conn, table, pd.DataFrame(period_columns(recent)))
    Warehouse.insert_rows_in(conn, dp, pd.DataFrame(day_periods(recent)))
    return since
