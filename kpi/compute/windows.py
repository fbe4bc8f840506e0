"""Which days a KPI value covers: the window columns of the ``periods`` table.

Every period row carries its own window (``period_start``..``window_end``), the previous
period's (``prev_``) and the same period last year's (``ly_``), and the start of every
running window ending where each of those does (``month_to_date_start``,
``rolling_7_start``...). A ``Window`` names the pair of columns a value is computed over.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement


@dataclass(frozen=True)
class Window:
    """Which columns of the periods table bound the days a value covers.

    ``offset`` is "" for the period itself, "prev_" for the previous period and "ly_" for
    the same period last year; the columns of each offset are named with that prefix.
    """

    offset: str = ""

    @property
    def start(self) -> str:
        return f"{self.offset}period_start"

    @property
    def end(self) -> str:
        return f"{self.offset}window_end"

    def running(self, kind: str) -> RunningWindow:
        """A running window (``month_to_date``, ``rolling_7``...) ending where this one does."""
        return RunningWindow(self.offset, kind)

    def bounds(self, p: FromClause) -> tuple[ColumnElement, ColumnElement]:
        """The first and last day of the window of ``p``'s row."""
        return p.c[self.start], p.c[self.end]


@dataclass(frozen=True)
class RunningWindow(Window):
    kind: str = "month_to_date"

    @property
    def start(self) -> str:
        return f"{self.offset}{self.kind}_start"


@dataclass(frozen=True)
class ShiftedWindow(Window):
    """The period's own window moved back a fixed number of days or months (a growth
    KPI's ``offset: 7 days``), at any grain; an open period's window moves with its
    elapsed days, so like is compared with like."""

    days: int = 0
    months: int = 0

    def bounds(self, p: FromClause) -> tuple[ColumnElement, ColumnElement]:
        start = shift_date(p.c.period_start, -self.days, -self.months)
        end = shift_date(p.c.window_end, -self.days, -self.months)
        if not self.months:
            return start, end
        # Whole months stay whole: April (1-30) a month back is all of March (1-31), not
        # 1-30 March, so when the window runs from a month's first day to a month's last
        # day, its end is the day before the shifted day after it. Otherwise the end moves
        # like any day, clamped to a shorter month's last day: an open 1-10 April compares
        # with 1-10 March, 1-30 March with 1-28 February, a day with the same day a month
        # back (31 March -> 28 February).
        after = shift_date(p.c.window_end, 1, 0)
        whole_months = sa.and_(
            sa.extract("day", p.c.period_start) == 1, sa.extract("day", after) == 1
        )
        month_end = shift_date(shift_date(after, 0, -self.months), -1, 0)
        return start, sa.case((whole_months, month_end), else_=end)

    def running(self, kind: str) -> RunningWindow:
        # Refused by the definition rules (a shifted running total is not defined yet).
        raise NotImplementedError("a fixed offset of a running total")


class shift_date(FunctionElement):
    """A date moved by whole days or months (a month from the 31st lands on the last day
    of a shorter month)."""

    type = sa.Date()
    # days and months are not SQL elements: the statement cache must not reuse one shift's
    # SQL for another.
    inherit_cache = False
    name = "shift_date"

    def __init__(self, day: ColumnElement, days: int, months: int):
        self.days, self.months = days, months
        super().__init__(day)


@compiles(shift_date)
def _shift_date_default(element, compiler, **kw):  # DuckDB, PostgreSQL, Snowflake
    day = compiler.process(next(iter(element.clauses)), **kw)
    if element.months:
        return f"CAST({day} + INTERVAL '{element.months} months' AS DATE)"
    return f"({day} + {element.days})"


@compiles(shift_date, "bigquery")
def _shift_date_bigquery(element, compiler, **kw):
    day = compiler.process(next(iter(element.clauses)), **kw)
    if element.months:
        return f"DATE_ADD({day}, INTERVAL {element.months} MONTH)"
    return f"DATE_ADD({day}, INTERVAL {element.days} DAY)"


def offset_window(offset: str, shift: tuple[int, int] | None) -> Window:
    """The window a growth KPI compares with: the previous period, last year, or shifted."""
    if shift is not None:
        return ShiftedWindow("", *shift)
    return PREVIOUS if offset == "previous_period" else LAST_YEAR


CURRENT = Window()
PREVIOUS = Window("prev_")
LAST_YEAR = Window("ly_")
