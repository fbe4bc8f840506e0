"""Running sums of the period rollups' columns, for the running totals fused into the
rollups' statement (kpi.compute.rollups, kpi.compute.fusion.running_total)."""

from __future__ import annotations

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
