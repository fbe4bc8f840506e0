"""The rows of a running total in a sparse slice, for the fused rollups (kpi.compute.rollups).

A sparse slice has a row for a period and value only where the value has data in the row's
window (README, "Slices"); for a running total, in its running window. All time, those are
the periods from the value's first period with data on; to date, the periods of one month,
quarter or (fiscal) year from the value's first period with data in it. Each such run of
periods has no gap, so running sums over its rows in order (kpi.compute.running_sums) see
every period of the window, as over a dense slice's rows.

The compiler's per-KPI query found these rows, and their sums, by joining every day of the
window to every period: an all-time total by day x a sparse campaign grew with the square
of the history (1.3-1.6 s on the peer bench's 1,000 days x 100 campaigns, 112 s on
PostgreSQL). A rolling window stays there: its join is N days per row, linear in the
history, and a value silent for more than N days leaves a gap in its rows that a frame of N
rows would reach across.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.sql import FromClause

# The running windows whose rows in a sparse slice are gapless runs of periods.
GAPLESS_KINDS = frozenset({"month_to_date", "quarter_to_date", "year_to_date", "all_time"})


def running_rows(present: FromClause, periods: sa.Table, kind: str) -> sa.Select:
    """The rows of a running total over window ``kind`` in a sparse slice: ``present``'s
    columns (``grain``, ``period_start``, then the slice-value columns), for every period
    of the grain whose window holds a period of ``present`` with the same slice value.

    ``present``: the periods and slice values with data. ``periods``: the periods table,
    with a ``<kind>_start`` column per to-date window (kpi.compute.periods).
    """
    if kind not in GAPLESS_KINDS:
        raise ValueError(f"{kind}: rows with gaps, not a run of periods")
    values = [c for c in present.c if c.name not in ("grain", "period_start")]
    start = f"{kind}_start"
    window = []
    joined: FromClause = present
    if kind != "all_time":
        # The window's start of each period with data: a run per month, quarter or year.
        q = periods.alias()
        window = [q.c[start]]
        joined = present.join(
            q, sa.and_(q.c.grain == present.c.grain, q.c.period_start == present.c.period_start)
        )
    first = (
        sa.select(
            present.c.grain,
            *values,
            *[c.label("window_start") for c in window],
            sa.func.min(present.c.period_start).label("first_start"),
        )
        .select_from(joined)
        .group_by(present.c.grain, *values, *window)
        .subquery()
    )
    p = periods.alias()
    on = [p.c.grain == first.c.grain, p.c.period_start >= first.c.first_start]
    if window:
        on.append(p.c[start] == first.c.window_start)
    return sa.select(p.c.grain, p.c.period_start, *[first.c[c.name] for c in values]).select_from(
        p.join(first, sa.and_(*on))
    )
