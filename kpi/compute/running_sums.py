"""Running sums of the period rollups' columns, for the running totals fused into the
rollups' statement (kpi.compute.rollups, kpi.compute.fusion.running_total)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.elements import ColumnElement

from kpi.warehouse.window_frames import running_over

# Short names of the running windows, for the running columns' names
# (kpi.compute.rollups.PeriodRollups.label).
RUNNING_CODES = {
    "month_to_date": "mtd",
    "quarter_to_date": "qtd",
    "year_to_date": "ytd",
    "rolling_7": "r7",
    "rolling_28": "r28",
    "rolling_90": "r90",
    "all_time": "all",
}
PART_ROLLUP = {
    "total": sa.func.sum,
    "nonnull": sa.func.sum,
    "low": sa.func.min,
    "high": sa.func.max,
    "n": sa.func.sum,
}


def running_sum(
    part: str, column: ColumnElement, kind: str, p: FromClause, slice_keys: list[ColumnElement]
) -> ColumnElement:
    """``column`` (a rollup part of the row's period) summed (or its minimum, maximum taken, as
    ``PART_ROLLUP``) over the periods of the row's grain and slice value in the running
    window ``kind`` of the row's period. The grains are those whose periods tile the window
    (kpi.compute.fusion.RUNNING_GRAINS), and every period of the grain from the slice
    value's first is a row (a dense slice's, or kpi.compute.sparse_running's): to date, the
    earlier rows with the same start of the window (``<kind>_start``: the start of the
    month, fiscal quarter or year of the row's window end); rolling N days (by day only),
    the N - 1 rows before; all time, every row before. A period without rows is NULL in
    ``column``, which the aggregate skips as the compiler's window join skips a day without
    rows."""
    partition = [p.c.grain, *slice_keys]
    preceding = None  # every row before
    if kind.endswith("_to_date"):
        partition.append(p.c[f"{kind}_start"])
    elif kind.startswith("rolling_"):
        preceding = int(kind.removeprefix("rolling_")) - 1
    elif kind != "all_time":
        raise ValueError(f"unknown running window {kind}")
    return running_over(PART_ROLLUP[part](column), partition, p.c.period_start, preceding)


def first_start_needed(
    periods: FromClause, grains: list[str], since: dt.date | ColumnElement, kinds: list[str]
) -> ColumnElement:
    """The first period start a running group's join must hold for its rows ending on or
    after ``since`` (an incremental run): the earliest start of those periods, or of their
    to-date and rolling windows (``<kind>_start``). Every period of the join's grains that
    starts before it ends before ``since``, outside those windows; an all-time sum carries
    those periods' parts in (``carried_parts``)."""
    q = periods.alias()
    # The period's own start too: beside all time, or a KPI of the group in another grain,
    # a window that grain does not tile (a fiscal quarter's month to date) starts after it.
    starts = [q.c.period_start, *(q.c[f"{k}_start"] for k in kinds if k != "all_time")]
    earliest = starts[0] if len(starts) == 1 else sa.func.least(*starts)
    return (
        sa.select(sa.func.min(earliest))
        .where(q.c.grain.in_(grains), q.c.period_end >= since)
        .scalar_subquery()
    )


def carried_parts(
    rollup: FromClause, parts: dict[str, str], keys: list[str], start: ColumnElement
) -> sa.Select:
    """Per grain and slice value (``keys``: the rollup's slice columns), the rollup's
    ``parts`` (column -> part) of the periods starting before ``start``, rolled up as
    ``PART_ROLLUP``: what an all-time running sum has gathered before the first period of
    an incremental run's join."""
    group = [rollup.c.grain, *[rollup.c[k] for k in keys]]
    return (
        sa.select(*group, *[PART_ROLLUP[part](rollup.c[c]).label(c) for c, part in parts.items()])
        .where(rollup.c.period_start < start)
        .group_by(*group)
    )


def with_carried(part: str, running: ColumnElement, carried: ColumnElement) -> ColumnElement:
    """A running ``part`` over the join's periods, and the same part ``carried`` from the
    periods before them, as one: NULL where both are (no rows), else the one that is not,
    else their sum (a minimum or maximum of both for ``low`` / ``high``)."""
    if part == "low":
        both = sa.case((running < carried, running), else_=carried)
    elif part == "high":
        both = sa.case((running > carried, running), else_=carried)
    else:
        both = running + carried
    return sa.case((running.is_(None), carried), (carried.is_(None), running), else_=both)


def running_parts(
    kind: str,
    parts: dict[str, str],
    row: FromClause,
    frame: FromClause,
    keys: list[ColumnElement],
    rollup: FromClause,
    start: ColumnElement | None,
) -> tuple[dict[str, ColumnElement], tuple[FromClause, ColumnElement] | None]:
    """Per rollup column of ``parts`` (column -> part) in ``row`` (the join's rollup row),
    its running sum over window ``kind`` (``running_sum`` over ``frame``, partitioned by
    the slice ``keys``: ``slice`` and ``v_<dimension>``); and, for all time in an
    incremental run (``start``: the join's first period, ``first_start_needed``), the
    subquery of the parts carried in from ``rollup``'s earlier periods and the condition
    to left-join it on, which the sums then include."""
    sums = {m: running_sum(part, row.c[m], kind, frame, keys) for m, part in parts.items()}
    if kind != "all_time" or start is None:
        return sums, None
    carried = carried_parts(rollup, parts, [k.name for k in keys], start).subquery()
    on = sa.and_(carried.c.grain == frame.c.grain, *[carried.c[k.name] == k for k in keys])
    return {m: with_carried(parts[m], v, carried.c[m]) for m, v in sums.items()}, (carried, on)
