"""The history a KPI value is compared with: the previous period and last year.

Three rules, each its own case of ``HistoryLookup.compared``:

- **No history before the data.** A compared window that starts before the first day of
  data of the KPI's sources (the latest of their first days, so every input is known) is
  NULL, not the 0 an empty window sums to. That holds for a window only partly covered
  too: its sum would be part of a period's, and a rate over a few days stands for a whole
  period it did not see; either way the change would be a jump that never happened.
- **To-date KPIs compare the same span.** A month-, quarter- or year-to-date KPI reported at
  a finer grain (a day, a week) ends each row on some day of its to-date period. Its last
  year is the same span of that period last year (on 2026-11-30: 1-30 November 2025), not
  the to-date value 52 weeks back (2025-12-01: one day of December); its previous is the
  same span of the previous to-date period (1-30 October; the whole of October when the row
  ends on the last day of November, as the month row compares). The span's value is the
  KPI's day row at the span's last day: to date from the span's period start.
- **Growth KPIs compare stored growths.** A period-over-period KPI's previous and last year
  are its own ``kpi_values`` rows of those periods. An open period has none: the growth of
  the same elapsed days two periods back is not stored, and is left NULL.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from kpi.compute.compared_windows import ComparedWindows
from kpi.compute.compiler import KpiCompiler
from kpi.compute.windows import (
    CURRENT,
    PREVIOUS,
    RunningWindow,
    Window,
    offset_window,
)
from kpi.language.models import GRAIN_ORDER, Grain, Kpi, KpiType


class add_days(FunctionElement):
    """A date plus a whole number of days."""

    type = sa.Date()
    inherit_cache = True
    name = "add_days"


@compiles(add_days)
def _add_days_default(element, compiler, **kw):  # PostgreSQL, DuckDB, Snowflake
    day, days = list(element.clauses)
    return f"({compiler.process(day, **kw)} + {compiler.process(days, **kw)})"


@compiles(add_days, "bigquery")
def _add_days_bigquery(element, compiler, **kw):
    day, days = list(element.clauses)
    return f"DATE_ADD({compiler.process(day, **kw)}, INTERVAL {compiler.process(days, **kw)} DAY)"


class days_between(FunctionElement):
    """The whole days from the second date to the first."""

    type = sa.Integer()
    inherit_cache = True
    name = "days_between"


@compiles(days_between)
def _days_between_default(element, compiler, **kw):
    later, earlier = list(element.clauses)
    return f"CAST(({compiler.process(later, **kw)} - {compiler.process(earlier, **kw)}) AS INTEGER)"


@compiles(days_between, "bigquery")
def _days_between_bigquery(element, compiler, **kw):
    later, earlier = list(element.clauses)
    return f"DATE_DIFF({compiler.process(later, **kw)}, {compiler.process(earlier, **kw)}, DAY)"


@dataclass(frozen=True)
class Compared:
    """A compared value, the definition version it carries, and its window's last day."""

    value: ColumnElement
    version: ColumnElement
    end: ColumnElement


def first_day_of_sources(compiler: KpiCompiler, kpi: Kpi) -> sa.CTE:
    """One row, ``first_day``: the day from which every source of ``kpi`` has data (the
    latest of their first local days; empty sources are left out). NULL when all are empty.

    Read per source, not from ``periods`` (whose first day is that of the earliest source
    of all): a KPI whose sources start later has no history before them. With cubes, from
    the source's cube (a row per day with rows, already in local days, and what the values
    compared were computed from): a scan of a few thousand rows, not of the raw table, once
    per comparison statement.

    A CTE, materialized on PostgreSQL: joined to every row on ``true``, it was a subquery
    that PostgreSQL's nested loops aggregated again for each row (a full recompute's
    statement of a KPI by device, 62 weeks x 3 devices: 186 scans of the cube, 0.2 s of its
    0.78 s).
    """
    firsts = []
    for name in compiler.source_names(kpi):
        if compiler.use_cubes and name in compiler.cubes.tables:
            firsts.append(sa.select(sa.func.min(compiler.cubes.tables[name].c.day).label("day")))
            continue
        src, table = compiler.catalog.sources[name], compiler.tables[name]
        day = compiler.local_day(src, sa.func.min(table.c[src.time.column]))
        firsts.append(sa.select(day.label("day")))
    if not firsts:  # a KPI of constants reads no source: it has no data, nor history
        firsts.append(sa.select(sa.cast(sa.null(), sa.Date).label("day")))
    days = (sa.union_all(*firsts) if len(firsts) > 1 else firsts[0]).subquery("source_firsts")
    first = sa.select(sa.func.max(days.c.day).label("first_day"))
    return first.cte("first_day").prefix_with("MATERIALIZED", dialect="postgresql")


def to_date_kind(kpi: Kpi, grain: str) -> str | None:
    """The to-date grain (month, quarter, year) of a to-date KPI reported at a finer grain,
    where its rows end on any day of their to-date period; None otherwise."""
    c = kpi.cumulative if kpi.type == KpiType.cumulative else None
    if c is None or c.to_date is None:
        return None
    finer = GRAIN_ORDER.index(Grain(grain)) < GRAIN_ORDER.index(Grain(c.to_date))
    return c.to_date if finer else None


class HistoryLookup:
    """Builds the compared values of one KPI and grain of ``comparison_select``, for the
    rows of each of its ``slices`` (the total ``()`` and dimension tuples) at once.

    ``v`` is the row's ``kpi_values`` alias, ``p`` its ``periods`` row; every table joined
    is appended to ``joins`` (outer joins of the comparison query).
    """

    def __init__(
        self,
        compiler: KpiCompiler,
        kpi: Kpi,
        grain: str,
        slices: list[tuple[str, ...]],
        values: sa.Table,
        v: sa.FromClause,
        p: sa.FromClause,
        joins: list[tuple[sa.FromClause, ColumnElement]],
        compared: ComparedWindows | None = None,
    ) -> None:
        self.compiler, self.kpi, self.grain, self.slices = compiler, kpi, grain, slices
        # The open periods' compared windows, evaluated once a run for the KPIs it covers.
        self.windows = compared if compared is not None and compared.covers(kpi) else None
        self.values, self.v, self.p, self.joins = values, v, p, joins
        self.slice_values = {dims: compiler.slice_values(kpi, dims) for dims in slices}
        self.version = sa.literal(compiler.catalog.versions[kpi.id], sa.String)
        first = first_day_of_sources(compiler, kpi)
        # One row, outer-joined once: every compared window of the row reads it.
        joins.append((first, sa.true()))
        self.first_day = first.c.first_day

    def known(self, start: ColumnElement) -> ColumnElement:
        """True when a window starting on ``start`` is within the data of every source."""
        return sa.and_(start.is_not(None), self.first_day.is_not(None), start >= self.first_day)

    def judged(self, actual: ColumnElement) -> ColumnElement:
        """The actual a status may judge: a growth KPI's own value compares its period with
        an earlier one, and says nothing when that one starts before the data (a partly
        covered month makes the next month's growth a jump that never happened)."""
        if self.kpi.type != KpiType.period_over_period:
            return actual
        pop = self.kpi.period_over_period
        offset = offset_window(pop.offset, pop.shift) if pop else PREVIOUS
        return sa.case(
            (self.known(offset.bounds(self.p)[0]), actual), else_=sa.cast(sa.null(), sa.Double)
        )

    def compared(self, window: Window, name: str) -> Compared:
        """The previous period (``PREVIOUS``) or last year (``LAST_YEAR``) of the row."""
        kind = to_date_kind(self.kpi, self.grain)
        if kind is not None:
            found, start, end = self._to_date(window, name, kind)
        elif self.kpi.type == KpiType.period_over_period:
            found, start, end = self._growth(window, name)
        else:
            found, start, end = self._period(window, name)
        value, stored_version = found
        value = sa.case((self.known(start), value), else_=sa.cast(sa.null(), sa.Double))
        version = sa.case((value.is_(None), sa.cast(sa.null(), sa.String)), else_=stored_version)
        return Compared(value, version, end)

    # -- the three cases ----------------------------------------------------------------

    def _period(self, window: Window, name: str):
        """The earlier period itself: its stored row when the window covers it whole, else
        (a partial, to-date window) evaluated under the current definition: once for the
        run when ``compared`` covers the KPI (kpi.compute.compared_windows), else here."""
        p = self.p
        stored = self._stored(name, self.grain)
        self.joins.append(
            (
                stored,
                sa.and_(
                    stored.c.period_start == p.c[window.start],
                    stored.c.period_end == p.c[window.end],
                    *self._slice_of(stored),
                ),
            )
        )
        found = stored.c.kpi_id.is_not(None)
        if self.grain == str(Grain.day):
            # A day is never open: its earlier day is always a whole stored period. Not
            # evaluating it keeps the statement small (planning is most of its cost).
            return (
                sa.cast(stored.c.value, sa.Double),
                stored.c.definition_version,
            ), *self._start_end(window)
        if self.windows is not None:
            evaluated = self.windows.lookup(self.kpi, self.grain, window, f"{name}_window")
            on = [evaluated.c.period_start == self.v.c.period_start, *self._slice_of(evaluated)]
        else:
            evaluated = self._evaluated(Grain(self.grain), window, name)
            on = self._same_slice(evaluated, self.v.c.period_start)
        self.joins.append((evaluated, sa.and_(*on)))
        value = sa.cast(sa.case((found, stored.c.value), else_=evaluated.c.value), sa.Double)
        version = sa.case((found, stored.c.definition_version), else_=self.version)
        return (value, version), *self._start_end(window)

    def _start_end(self, window: Window) -> tuple[ColumnElement, ColumnElement]:
        """The first and last day a compared window reads: a running total reads from its
        running window's start, not the period's."""
        p, kpi = self.p, self.kpi
        start = p.c[window.start]
        c = kpi.cumulative if kpi.type == KpiType.cumulative else None
        if c is not None and c.window == "all_time":
            # The start of an all-time total is the first day of data: what says whether
            # it is history before the data is whether its window ends in the data.
            start = p.c[window.end]
        elif c is not None:
            start = p.c[RunningWindow(window.offset, c.running_kind).start]
        return start, p.c[window.end]

    def _to_date(self, window: Window, name: str, kind: str):
        """The same span of the previous (or last year's) to-date period, read at its last
        day from the KPI's day rows (evaluated when the KPI has no day grain)."""
        p = self.p
        span_start = p.c[CURRENT.running(f"{kind}_to_date").start]
        # The periods row of the to-date period holding the row's last day: its comparison
        # windows are the whole earlier period, or as many days as have elapsed of it.
        td = self.compiler.periods.alias(f"{name}_td")
        self.joins.append((td, sa.and_(td.c.grain == kind, td.c.period_start == span_start)))
        start = td.c[window.start]
        elapsed = days_between(p.c.window_end, span_start)
        end = sa.case(
            (p.c.window_end == td.c.window_end, td.c[window.end]),
            else_=sa.func.least(td.c[window.end], add_days(start, elapsed)),
        )
        if Grain.day in self.kpi.grains:
            stored = self._stored(name, str(Grain.day))
            on = [stored.c.period_start == end, *self._slice_of(stored)]
            self.joins.append((stored, sa.and_(*on)))
            return (sa.cast(stored.c.value, sa.Double), stored.c.definition_version), start, end
        # The day read is in the earlier span, before the first period an incremental run
        # writes: evaluated over every day, not only those from ``since`` on (which left
        # an incremental run's previous and last-year values NULL where a full one has them).
        with self.compiler.periods_since(None):
            daily = self._evaluated(Grain.day, CURRENT, name)
        self.joins.append((daily, sa.and_(*self._same_slice(daily, end))))
        return (sa.cast(daily.c.value, sa.Double), self.version), start, end

    def _growth(self, window: Window, name: str):
        """A growth KPI's stored row of the earlier period (whole periods only). Its value
        also reads the period before that one (or a year before it): the window starts
        there, so both must be within the data."""
        p = self.p
        stored = self._stored(name, self.grain)
        self.joins.append(
            (
                stored,
                sa.and_(
                    stored.c.period_start == p.c[window.start],
                    stored.c.period_end == p.c[window.end],
                    *self._slice_of(stored),
                ),
            )
        )
        pop = self.kpi.period_over_period
        offset = offset_window(pop.offset, pop.shift) if pop else PREVIOUS
        earlier = self.compiler.periods.alias(f"{name}_base")
        self.joins.append(
            (
                earlier,
                sa.and_(earlier.c.grain == self.grain, earlier.c.period_start == p.c[window.start]),
            )
        )
        value = sa.cast(stored.c.value, sa.Double)
        return (value, stored.c.definition_version), offset.bounds(earlier)[0], p.c[window.end]

    # -- helpers ------------------------------------------------------------------------

    def _stored(self, name: str, grain: str) -> sa.Subquery:
        # Filtered up front: the planner need not infer that it only wants this KPI's rows.
        values = self.values
        return (
            sa.select(values)
            .where(values.c.kpi_id == self.kpi.id, values.c.grain == grain)
            .subquery(f"{name}_stored")
        )

    def _evaluated(self, grain: Grain, window: Window, name: str) -> sa.FromClause:
        """The KPI evaluated over ``window`` for each slice: one subquery keyed by period
        and every dimension (NULL where the slice has none), the slices' rows together."""
        dimensions = self.compiler.catalog.dimensions
        parts = []
        for dims in self.slices:
            q = self.compiler.evaluate(self.kpi, grain, dims, window, self.slice_values[dims])
            if len(self.slices) == 1:
                return q.query.alias(name)
            parts.append(
                sa.select(
                    q.col("period_start"),
                    *[
                        (q.col(d) if d in dims else sa.cast(sa.null(), sa.String)).label(d)
                        for d in dimensions
                    ],
                    q.col("value"),
                )
            )
        return sa.union_all(*parts).subquery(name)

    def _slice_of(self, other: sa.FromClause) -> list[ColumnElement]:
        """``other``'s row is the same slice as the row's (NULL dimensions are the total)."""
        if len(self.slices) == 1:
            (dims,) = self.slices
            return [
                other.c[d] == self.v.c[d] if d in dims else other.c[d].is_(None)
                for d in self.compiler.catalog.dimensions
            ]
        return [same_value(other.c[d], self.v.c[d]) for d in self.compiler.catalog.dimensions]

    def _same_slice(self, other: sa.FromClause, period_start: ColumnElement) -> list:
        """An evaluated subquery's row (keyed by period and the sliced dimensions)."""
        if len(self.slices) == 1:
            (dims,) = self.slices
            return [
                other.c.period_start == period_start,
                *[other.c[d] == self.v.c[d] for d in dims],
            ]
        return [other.c.period_start == period_start, *self._slice_of(other)]


def same_value(a: ColumnElement, b: ColumnElement) -> ColumnElement:
    """``a`` and ``b`` are the same dimension value, or both NULL (the slice has none).

    Written as two equalities, not ``IS NOT DISTINCT FROM``: PostgreSQL can hash-join on
    equalities only, and the slices of a KPI are joined with their history on it. The
    empty string stands for NULL in the first and the second tells it from a real ''.
    """
    return sa.and_(sa.func.coalesce(a, "") == sa.func.coalesce(b, ""), a.is_(None) == b.is_(None))
