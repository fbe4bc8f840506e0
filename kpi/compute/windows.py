"""Which days a KPI value covers: the window columns of the ``periods`` table.

Every period row carries its own window (``period_start``..``window_end``), the previous
period's (``prev_``) and the same period last year's (``ly_``), and the start of every
running window ending where each of those does (``month_to_date_start``,
``rolling_7_start``...). A ``Window`` names the pair of columns a value is computed over.
"""

from __future__ import annotations

from dataclasses import dataclass


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


@dataclass(frozen=True)
class RunningWindow(Window):
    kind: str = "month_to_date"

    @property
    def start(self) -> str:
        return f"{self.offset}{self.kind}_start"


CURRENT = Window()
PREVIOUS = Window("prev_")
LAST_YEAR = Window("ly_")
