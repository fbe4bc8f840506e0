"""The windows an open period is compared with, evaluated once a run for every fusable KPI
with dense slices.

An open period (this week, month, quarter, year) is compared with the same elapsed days of
the previous period and of the same period last year (kpi.compute.history). Such a window
is not a period: no ``kpi_values`` row holds it, so each comparison statement evaluated it
itself, per KPI and grain, from the cubes. That was 40% of the instructions DuckDB spent on
a day's 84 comparison statements (parsing, planning and running a subquery per KPI, grain
and window), for a few rows each.

Here every KPI that is a function of its period's sums (kpi.compute.fusion), whose slices
are dense and kept by the daily cubes, is evaluated over the compared windows of every open
period in one statement, as ``kpi_values`` is over periods (kpi.compute.rollups): each
source's daily cube summed per window (a range join of its days with the windows' bounds: a
few windows per grain), the open periods times their windows times the KPIs' slice values
left-joined to those sums, and each KPI a projection of that join. The rows go into
``kpi_work.compared_values``; the comparison statements of the same run join them instead
of evaluating the windows (kpi.compute.history.HistoryLookup).

Only open periods (``window_end < period_end``): a closed period's previous and last-year
windows are whole periods (kpi.compute.periods aligns them), which a comparison reads from
their stored ``kpi_values`` rows, so what it would evaluate for them is never read. The
statement's cost therefore does not grow with history, and it is the same statement every
run, whatever the run recomputes.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.elements import ColumnElement

from kpi.compute.compiler import KpiCompiler
from kpi.compute.fused_groups import Slice, slice_key
from kpi.compute.fusion import dense, period_sums
from kpi.compute.rollups import PeriodRollups, slice_name
from kpi.compute.windows import LAST_YEAR, PREVIOUS, Window
from kpi.language.models import Grain, Kpi
from kpi.warehouse.schema import WORK_SCHEMA
from kpi.warehouse.statements import Compiled, StatementCache, compile_select

COMPARED_WINDOWS: tuple[Window, ...] = (PREVIOUS, LAST_YEAR)


def compared_values_table(metadata: sa.MetaData, dimensions: list[str]) -> sa.Table:
    if f"{WORK_SCHEMA}.compared_values" in metadata.tables:
        return metadata.tables[f"{WORK_SCHEMA}.compared_values"]
    table = sa.Table(
        "compared_values",
        metadata,
        sa.Column("kpi_id", sa.String, nullable=False),
        sa.Column("grain", sa.String, nullable=False),
        sa.Column("period_start", sa.Date, nullable=False),
        sa.Column(
            "window_offset",
            sa.String,
            nullable=False,
            comment="prev_: the previous period's window; ly_: last year's",
        ),
        *[sa.Column(d, sa.String, comment="NULL: all values") for d in dimensions],
        sa.Column("value", sa.Double),
        schema=WORK_SCHEMA,
        comment="Scratch of the last comparisons refresh: each KPI's value over the windows "
        "its periods are compared with (kpi.compute.compared_windows)",
    )
    # Each comparison statement reads one KPI, grain and window of it. PostgreSQL joins it
    # in nested loops (it expects one row of a slice's values): without the index, a full
    # recompute scanned the whole table once per row (29 s of comparisons instead of 16,
    # when the table still held every period's windows, not only the open ones'). DuckDB
    # hashes the join and would only pay for the index on every insert.
    sa.Index(
        "compared_values__lookup",
        table.c.kpi_id,
        table.c.grain,
        table.c.window_offset,
        table.c.period_start,
    ).ddl_if(dialect="postgresql")
    return table


class ComparedWindows(PeriodRollups):
    """The compared windows' values of the KPIs it ``covers``, from the daily cubes, and
    how a comparison reads them back from ``table`` (``compared_values``)."""

    def __init__(self, compiler: KpiCompiler, table: sa.Table):
        super().__init__(compiler)
        self.table = table

    def lookup(self, kpi: Kpi, grain: str, window: Window, name: str) -> sa.Subquery:
        """The stored compared values of ``kpi`` at ``grain`` over ``window``: one row per
        period and slice (a dimension NULL outside the slice, as in ``kpi_values``)."""
        t = self.table
        return (
            sa.select(t.c.period_start, *[t.c[d] for d in self.catalog.dimensions], t.c.value)
            .where(t.c.kpi_id == kpi.id, t.c.grain == grain, t.c.window_offset == window.offset)
            .subquery(name)
        )

    def covers(self, kpi: Kpi) -> bool:
        """True when ``kpi``'s compared windows are evaluated here: it is a function of its
        period's sums with dense slices (kpi.compute.fusion), every slice is in the daily
        cubes (a window is days, which a monthly cube does not keep), and it is reported at
        a grain above a day (a day's earlier day is a stored row)."""
        # A sparse slice's rows are the combinations with data in the period: crossing
        # every open period with every value would evaluate windows no row compares with.
        # A running total's compared window is a running window ending where the compared
        # window does, not the compared window's sums.
        if not period_sums(self.catalog, kpi) or not dense(self.catalog, kpi):
            return False
        cubes = self.compiler.cubes
        kept = all(
            cubes.covers(source, dims)
            for source in self._sources(kpi)
            for dims in kpi.slice_dimensions
        )
        return kept and bool(self._grains(kpi))

    @staticmethod
    def _grains(kpi: Kpi) -> list[str]:
        return [str(g) for g in kpi.grains if g != Grain.day]

    def _collect_grains(self) -> dict[str, dict[Slice, set[str]]]:
        """Per source, the slices covered KPIs read (the total first) and their grains."""
        found: dict[str, dict[Slice, set[str]]] = {s: {} for s in self.compiler.cubes.tables}
        for kpi in self.catalog.kpis.values():
            if not self.covers(kpi):
                continue
            for source in self._sources(kpi):
                for dims in [(), *(slice_key(d) for d in kpi.slice_dimensions)]:
                    found[source].setdefault(dims, set()).update(self._grains(kpi))
        return found

    def compared_rollup_select(self, source: str) -> sa.CompoundSelect | sa.Select:
        """The daily cube of ``source`` summed over each compared window of the open
        periods, per slice and grain covered KPIs read. The columns of ``rollup_select``
        (kpi.compute.rollups) and ``window_offset``."""
        cube = self.compiler.cubes.tables[source]
        columns = self._columns(source)
        selects = []
        for window in COMPARED_WINDOWS:
            for dims, grains in self.grains[source].items():
                p = self.compiler.periods.alias(f"w_{window.offset}")
                start, end = window.bounds(p)
                values, aggregates = self._sums(source, cube, dims, columns)
                selects.append(
                    sa.select(
                        p.c.grain,
                        p.c.period_start,
                        sa.literal(window.offset, sa.String).label("window_offset"),
                        sa.literal(slice_name(dims), sa.String).label("slice"),
                        *values,
                        *aggregates,
                    )
                    .select_from(cube.join(p, sa.and_(cube.c.day >= start, cube.c.day <= end)))
                    .where(p.c.grain.in_(sorted(grains)), *open_periods(p))
                    .group_by(p.c.grain, p.c.period_start, *[cube.c[d] for d in dims])
                )
        return sa.union_all(*selects) if len(selects) > 1 else selects[0]

    def compared_select(self, kpi_ids: list[str]) -> sa.CompoundSelect | sa.Select | None:
        """The ``compared_values`` rows of the covered KPIs of ``kpi_ids``, for the open
        periods; None when none is covered."""
        groups: dict[tuple[tuple[str, ...], tuple[Slice, ...]], list[Kpi]] = {}
        for kpi_id in kpi_ids:
            kpi = self.catalog.kpis[kpi_id]
            if not self.covers(kpi):
                continue
            slices = tuple(sorted({slice_key(d) for d in kpi.slice_dimensions}))
            groups.setdefault((tuple(sorted(self._sources(kpi))), slices), []).append(kpi)
        if not groups:
            return None
        read = sorted({source for sources, _ in groups for source in sources})
        rollups = {s: self.compared_rollup_select(s).cte(f"compared_{s}") for s in read}
        selects = []
        for number, ((sources, _), kpis) in enumerate(groups.items()):
            base = self._joined_windows(kpis, sources, f"windows_{number}", rollups)
            selects += [self._compared_kpi_select(kpi, base) for kpi in kpis]
        return sa.union_all(*selects) if len(selects) > 1 else selects[0]

    def _joined_windows(
        self,
        kpis: list[Kpi],
        sources: tuple[str, ...],
        name: str,
        rollups: dict[str, sa.CTE],
    ) -> sa.CTE:
        """The open periods of ``kpis``' grains times their compared windows times their slice
        values (so an empty window is zero-filled as the compiler's spine is), left-joined to
        the window sums of ``sources``; column ``m{i}_{part}`` of source S is
        ``label(S, m{i}_{part})``."""
        p = self.compiler.periods.alias("p")
        offsets = [
            sa.select(sa.literal(w.offset, sa.String).label("window_offset"))
            for w in COMPARED_WINDOWS
        ]
        w = sa.union_all(*offsets).subquery("w")
        s = self._slices(kpis[0]).alias("s")
        used = kpis[0].dimension_names
        joined: FromClause = p.join(w, sa.true()).join(s, sa.true())
        columns = []
        for source in sources:
            r = rollups[source].alias(f"{name}_{source}")
            joined = joined.outerjoin(
                r,
                sa.and_(
                    r.c.grain == p.c.grain,
                    r.c.period_start == p.c.period_start,
                    r.c.window_offset == w.c.window_offset,
                    r.c.slice == s.c.slice,
                    *[r.c[f"v_{d}"] == s.c[f"v_{d}"] for d in used],
                ),
            )
            columns += [r.c[m].label(self.label(source, m)) for m in self._columns(source)]
        grains = sorted({g for kpi in kpis for g in self._grains(kpi)})
        dims = [
            (s.c[f"o_{d}"] if d in used else sa.cast(sa.null(), sa.String)).label(d)
            for d in self.catalog.dimensions
        ]
        return (
            sa.select(p.c.grain, p.c.period_start, w.c.window_offset, *dims, *columns)
            .select_from(joined)
            .where(p.c.grain.in_(grains), *open_periods(p))
            .cte(name)
        )

    def _compared_kpi_select(self, kpi: Kpi, base: sa.CTE) -> sa.Select:
        def rollup(source: str):
            return lambda column: base.c[self.label(source, column)]

        value, *_ = self._evaluate(kpi, {source: rollup(source) for source in self._sources(kpi)})
        return sa.select(
            sa.literal(kpi.id, sa.String).label("kpi_id"),
            base.c.grain,
            base.c.period_start,
            base.c.window_offset,
            *[base.c[d] for d in self.catalog.dimensions],
            sa.cast(value, sa.Double).label("value"),
        ).where(base.c.grain.in_(self._grains(kpi)))


def open_periods(p: FromClause) -> list[ColumnElement]:
    """The filter keeping the periods of ``p`` (a periods alias) whose window stops before
    their end: the only ones whose compared windows are not whole periods."""
    return [p.c.window_end < p.c.period_end]


def compared_values_statement(
    windows: ComparedWindows, dialect: Dialect, cache: StatementCache | None
) -> Compiled | None:
    """The INSERT of ``compared_values`` for every covered KPI, compiled (kept in ``cache``,
    kpi.warehouse.statements), or None when the catalogue has no covered KPI. Every covered
    KPI, not only those the run recomputes: one statement whatever the day touched, over the
    few open periods."""
    covered = [k for k, kpi in windows.catalog.kpis.items() if windows.covers(kpi)]
    if not covered:
        return None

    def build() -> Compiled:
        return compile_select(dialect, windows.compared_select(covered))

    return build() if cache is None else cache.get("compared_values", {}, build)
