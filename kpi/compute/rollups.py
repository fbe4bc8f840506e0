"""Every plain KPI of the catalogue in one statement, from per-source period rollups.

A refresh first brings the daily cube of each source up to date (``kpi.compute.cubes``,
``kpi.compute.cube_upkeep``: the only scan of a raw table). This module adds one more,
much smaller step per source: the **period rollup**, the cube summed into periods for the
total and for each slice some fused KPI reads (one dimension or several at once), in the
grains those KPIs report, keyed by
``(grain, period_start, slice)`` and one ``v_<dimension>`` column per cube dimension: the
slice's value of that dimension, ``''`` for a dimension the slice does not break down by.
The rollups are CTEs of the statement that inserts the KPI rows, not tables: only that
statement reads them, and writing them (and committing what was written) cost more than
summing them (peer set 3: 13-17 ms of 112; 10M rows: 35-40 ms of 350).

A KPI whose value is a function of its period's sums (simple sum, count, average, min and
max; ratios; derived KPIs over those) is then a projection of one row of each rollup it
reads: the periods (times the KPI's dense slice values, so gaps are zero-filled; for a
sparse slice, the periods and values its sources' rollups hold, those with data in the
period) left-joined to the rollups by equality columns only (an ``IS NOT DISTINCT FROM``
would keep PostgreSQL from hashing the join). KPIs that read the same sources and slice by
the same dimensions share that join (a CTE), and all of them go into ``kpi_values`` with one
INSERT of a UNION ALL, instead of one statement per KPI, grain and slice. Planning, not
scanning, was what those statements cost; one join per KPI still took half of the INSERT.

The numbers are the same as ``KpiCompiler.compile``'s, row for row: ratios are sums over
sums, a sum over a period without rows is 0 and a ratio with a zero denominator NULL.
``tests/kpi/compute/test_kpi_cases.py`` runs every hand-worked case through both. A growth
by day over a fixed shift (``offset: 7 days``) is a projection too: its earlier day is
another row of the same join, found by the slice's keys and the shifted day (a self-join
that replaced, on the peer bench's set 5, two re-aggregations of the cube per growth and
slice: its INSERT went from ~56 to ~23 ms).
A running total (all time, to date, rolling) in grains whose periods tile its window
(kpi.compute.fusion.running_total) is its base KPI over running sums of the join's columns:
window functions over the slice value's periods in order, where the compiler's per-KPI query
joined every day of the window to every period (an all-time total by day and campaign, 1,000
days x 100 campaigns: 50M joined rows, 1.2 s, now 0.24 s; the join grew with the square of
the history). In a sparse slice its rows are the periods from the value's first with data in
the window (kpi.compute.sparse_running). In an incremental run its join starts at the first
period (or window start) its rows need, an all-time sum carrying the earlier periods' parts
in (kpi.compute.running_sums), and its rows are those ending on or after the run's first
day. Distinct counts, ``last`` balances, the other running windows and the other growths
need days, not period sums; they stay on the compiler's per-KPI queries, in the same INSERT
(``kpi.refresh.refresh_kpi_values``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.elements import ColumnElement

from kpi.compute.compiler import KpiCompiler, unknown_when_missing
from kpi.compute.cubes import CUBE_COLUMNS
from kpi.compute.fused_groups import (
    Slice,
    is_growth,
    is_running,
    join_groups,
    join_reach,
    slice_key,
)
from kpi.compute.fusion import MONTHLY_GRAINS, fusable
from kpi.compute.running_sums import PART_ROLLUP, RUNNING_CODES, first_start_needed, running_parts
from kpi.compute.sparse_running import running_rows
from kpi.compute.windows import shift_date
from kpi.language.expressions import safe_divide, to_sql
from kpi.language.models import RESERVED_COLUMN_PREFIX, Agg, Kpi, KpiType, Measure

TOTAL = ""  # the slice of the row for "all dimensions", and a value outside the slice
# The fused join's slice keys, for a growth's self-join: no dimension may be named so.
KEY_PREFIX = RESERVED_COLUMN_PREFIX


class PeriodRollups:
    """The period rollup tables of a cube-reading compiler, and the fused KPI query."""

    def __init__(self, compiler: KpiCompiler):
        if not compiler.use_cubes:
            raise ValueError("period rollups read the daily cubes: use_cubes must be on")
        self.compiler = compiler
        self.catalog = compiler.catalog
        self.grains = self._collect_grains()
        self._positions = {source: i for i, source in enumerate(sorted(self.catalog.sources))}

    # -- which KPIs ---------------------------------------------------------------------------

    def fusable(self, kpi: Kpi) -> bool:
        """True when ``kpi`` is a function of its period's sums (see the module docstring;
        kpi.compute.fusion.fusable)."""
        return fusable(self.catalog, kpi)

    # -- the rollups --------------------------------------------------------------------

    def _collect_grains(self) -> dict[str, dict[Slice, set[str]]]:
        """Per source, the slices fused KPIs read from its rollup (the total first) and the
        grains each is read in: the rollup holds those rows and no others, so a KPI by
        month x campaign does not sum the cube into days x campaign as well."""
        found: dict[str, dict[Slice, set[str]]] = {
            s: {(): set()} for s in self.compiler.cubes.tables
        }
        for kpi in self.catalog.kpis.values():
            if not self.fusable(kpi):
                continue
            for source in self._sources(kpi):
                for dims in [(), *(slice_key(d) for d in kpi.slice_dimensions)]:
                    found[source].setdefault(dims, set()).update(str(g) for g in kpi.grains)
        return found

    def _dims(self, source: str) -> list[str]:
        """The dimensions of the rollup of ``source``: its daily cube's, then its monthly
        cube's that the daily one leaves out."""
        cubes = self.compiler.cubes
        daily = cubes.dims[source]
        return [*daily, *[d for d in cubes.month_dims.get(source, []) if d not in daily]]

    def _columns(self, source: str) -> dict[str, tuple]:
        """``m{i}_{part}`` -> (measure key, part), for every measure of the source KPIs read
        and every part of it the cube keeps."""
        columns = {}
        cube = self.compiler.cubes.tables[source]
        for i, key in enumerate(self.compiler.cubes.measures[source]):
            for part in CUBE_COLUMNS:
                if self.compiler.cubes.part(cube, source, key, part) is not None:
                    columns[f"m{i}_{part}"] = (key, part)
        return columns

    def rollup_select(self, source: str) -> sa.Select | sa.CompoundSelect:
        """The cubes of ``source`` summed into periods (via day_periods), per slice fused
        KPIs read, in the grains they read it in: from the daily cube, or from the monthly
        one for a slice the daily cube leaves out (only month-grained KPIs read it).
        Columns: ``grain``, ``period_start``, ``slice`` ('' = all, else its dimensions,
        a,b), ``v_<dimension>`` ('' where the slice does not break down by it) and
        ``m{i}_{part}`` (kpi.compute.cubes.CUBE_COLUMNS of the source's i-th measure)."""
        cubes, dp = self.compiler.cubes, self.compiler.day_periods
        columns = self._columns(source)
        selects = []
        for dims, grains in self.grains[source].items():
            cube = cubes.table_with(source, dims)
            if cube is not cubes.tables[source] and not grains <= MONTHLY_GRAINS:
                raise AssertionError(f"{source}: slice {dims} in {grains} read by month")
            # The total row exists in every grain, read or not: a rollup is never empty.
            where = [dp.c.grain.in_(sorted(grains))] if dims or grains else []
            values, aggregates = self._sums(source, cube, dims, columns)
            selects.append(
                sa.select(
                    dp.c.grain,
                    dp.c.period_start,
                    sa.literal(slice_name(dims), sa.String).label("slice"),
                    *values,
                    *aggregates,
                )
                .select_from(cube.join(dp, dp.c.day == cube.c.day))
                .where(*where)
                .group_by(dp.c.grain, dp.c.period_start, *[cube.c[d] for d in dims])
            )
        return sa.union_all(*selects) if len(selects) > 1 else selects[0]

    def _sums(
        self, source: str, cube: sa.Table, dims: Slice, columns: dict[str, tuple]
    ) -> tuple[list[ColumnElement], list[ColumnElement]]:
        """A rollup row's slice values (``v_<dimension>``, ``''`` outside ``dims``) and its
        sums of ``cube``'s columns (``m{i}_{part}``, see ``_columns``), grouped by ``dims``."""
        values = [
            (cube.c[d] if d in dims else sa.literal(TOTAL, sa.String)).label(f"v_{d}")
            for d in self._dims(source)
        ]
        aggregates = [
            PART_ROLLUP[part](self.compiler.cubes.part(cube, source, key, part)).label(name)
            for name, (key, part) in columns.items()
        ]
        return values, aggregates

    # -- the fused KPI query ------------------------------------------------------------------

    def values_select(
        self,
        kpi_ids: list[str],
        computed_at: dt.datetime | ColumnElement,
        since: dt.date | ColumnElement | None = None,
    ) -> sa.Select | sa.CompoundSelect:
        """The ``kpi_values`` rows of every grain and slice of ``kpi_ids`` (all fusable).

        KPIs that read the same sources and slice by the same dimensions share one join of
        the periods, their slice values and those sources' rollups (a CTE); each KPI is then
        a projection of it. One join per KPI made a catalogue's statement mostly planning.
        With ``since``, only the periods ending on or after it (kpi.compute.changes).
        """
        unfused = [k for k in kpi_ids if not self.fusable(self.catalog.kpis[k])]
        if unfused:
            raise ValueError(f"not functions of their period rollups: {unfused}")
        groups = join_groups(self.catalog, kpi_ids, self._sources)
        # Each source's rollup once, however many groups read it.
        read = sorted({source for sources, *_ in groups for source in sources})
        rollups = {s: self.rollup_select(s).cte(f"rollup_{s}") for s in read}
        selects = []
        for number, ((sources, *_), kpis) in enumerate(groups.items()):
            name = f"rollups_{number}"
            shifts = [k.period_over_period.shift for k in kpis if is_growth(k)]
            # Per running window, the rollup columns its KPIs' values read: each running
            # column is a window aggregate of its own (~15 ms per 100,000 rows on DuckDB).
            kinds: dict[str, set[tuple[str, str]]] = {}
            for k in kpis:
                if is_running(k):
                    of = self.catalog.kpis[k.cumulative.of]
                    kinds.setdefault(k.cumulative.running_kind, set()).update(self._reads(of))
            # A running sum reads every earlier period of its slice: an incremental run's
            # join starts at the first period (or to-date window) that the rows it writes,
            # and the growths' earlier days, need; an all-time sum carries the parts of the
            # periods before in.
            reach = join_reach(since, shifts)
            base = self._joined_rollups(
                kpis,
                sources,
                name,
                rollups,
                None if kinds else reach,
                bool(shifts),
                kinds,
                reach if kinds else None,
            )
            # A growth's earlier days are in the join when it was widened back to them, a
            # running total's earlier periods always: their own rows are still only those
            # of the periods ending on or after since.
            widened = bool(shifts or kinds)
            recent = [base.c.period_end >= since] if widened and since is not None else []
            # Each reader of a CTE has a name of its own; the sources' rollups are read as
            # {name}_{source}, and a source may be named anything.
            taken = {f"{name}_{source}" for source in sources}
            for i, kpi in enumerate(kpis):
                alias = f"{name}_earlier_{i}"
                while alias in taken:
                    alias += "_"
                selects.append(self._kpi_select(kpi, base, computed_at, alias).where(*recent))
        return sa.union_all(*selects) if len(selects) > 1 else selects[0]

    def _joined_rollups(
        self,
        kpis: list[Kpi],
        sources: tuple[str, ...],
        name: str,
        rollups: dict[str, sa.CTE],
        since: dt.date | ColumnElement | None = None,
        keyed: bool = False,
        running: dict[str, set[tuple[str, str]]] | None = None,
        running_since: dt.date | ColumnElement | None = None,
    ) -> sa.CTE:
        """The periods of ``kpis``' grains times their slice values, left-joined to the
        ``rollups`` of ``sources``; rollup column ``m{i}_{part}`` of source S is
        ``label(S, m{i}_{part})``. ``keyed``: with the slice's join keys too (``KEY_PREFIX``
        + ``slice`` and ``v_<dimension>``), for a growth to find its earlier row by.
        ``running``: per running window, the (source, column) pairs whose running sum
        (minimum, maximum) over it the join holds too, ``label(S, column, window)``
        (kpi.compute.running_sums; in a sparse slice over the rows of
        kpi.compute.sparse_running, a group of one window); with ``running_since``, from
        the first period the rows ending on or after it need (``first_start_needed``)."""
        p = self.compiler.periods.alias("p")
        kpi, used = kpis[0], kpis[0].dimension_names
        grains = sorted({str(g) for k in kpis for g in k.grains})
        recent = [p.c.grain.in_(grains), *KpiCompiler.recent_periods(p, since)]
        start = None
        if running and running_since is not None:
            start = first_start_needed(self.compiler.periods, grains, running_since, [*running])
            recent.append(p.c.period_start >= start)
        slices = sorted({slice_key(d) for d in kpi.slice_dimensions})
        sparse = [d for d in slices if self.catalog.is_sparse(d)]
        s = self._slices(kpi, [d for d in slices if d not in sparse]).alias("s")
        rows: FromClause = p
        joined: FromClause = p.join(s, sa.true())
        if sparse:
            # A sparse slice's rows are the combinations its sources' rollups hold for
            # the period: those with data in it (the row's window, for a function of the
            # period's sums), beside the dense slices' periods x values.
            keys = self._present_slices(kpi, sparse, sources, rollups, name, grains).alias()
            if running:  # a group of one window (values_select): the periods it holds data
                (kind,) = running
                keys = running_rows(keys, self.compiler.periods, kind).alias()
            period = [p.c.grain, p.c.period_start, p.c.period_end, p.c.is_complete_period]
            # The running sums' partitions (running_sums) are read from the frame.
            period += [p.c[f"{k}_start"] for k in sorted(running or {}) if k.endswith("_to_date")]
            on = sa.and_(keys.c.grain == p.c.grain, keys.c.period_start == p.c.period_start)
            frame = sa.union_all(
                sa.select(*period, *s.c).select_from(p.join(s, sa.true())).where(*recent),
                sa.select(*period, *[keys.c[c.name] for c in s.c])
                .select_from(p.join(keys, on))
                .where(*recent),
            ).subquery(f"{name}_rows")
            rows = s = joined = frame
            recent = []
        columns = []
        for source in sources:
            r = rollups[source].alias(f"{name}_{source}")  # one name per reader of a CTE
            joined = joined.outerjoin(
                r,
                sa.and_(
                    r.c.grain == rows.c.grain,
                    r.c.period_start == rows.c.period_start,
                    r.c.slice == s.c.slice,
                    *[r.c[f"v_{d}"] == s.c[f"v_{d}"] for d in used],
                ),
            )
            columns += [r.c[m].label(self.label(source, m)) for m in self._columns(source)]
            for kind, reads in (running or {}).items():
                columns_of = self._columns(source).items()
                parts = {m: part for m, (_, part) in columns_of if (source, m) in reads}
                keys = [s.c.slice, *[s.c[f"v_{d}"] for d in used]]
                sums, carry = running_parts(kind, parts, r, rows, keys, rollups[source], start)
                if carry is not None:  # all time, in an incremental run
                    joined = joined.outerjoin(*carry)
                columns += [v.label(self.label(source, m, kind)) for m, v in sums.items()]
        # The group's KPIs have the same slices: each dimension's column is the slice's
        # value on the rows of a slice by it, NULL ("all") on the others.
        dims = [
            (s.c[f"o_{d}"] if d in used else sa.cast(sa.null(), sa.String)).label(d)
            for d in self.catalog.dimensions
        ]
        # Named with the prefix no dimension may take (kpi.language.rules.engine_names).
        keys = [s.c[name] for name in _slice_keys(used)] if keyed else []
        return (
            sa.select(
                rows.c.grain,
                rows.c.period_start,
                rows.c.period_end,
                rows.c.is_complete_period,
                *dims,
                *columns,
                *[key.label(f"{KEY_PREFIX}{key.name}") for key in keys],
            )
            .select_from(joined)
            .where(*recent)
            .cte(name)
        )

    def _present_slices(
        self,
        kpi: Kpi,
        slices: list[Slice],
        sources: tuple[str, ...],
        rollups: dict[str, sa.CTE],
        name: str,
        grains: list[str],
    ) -> sa.Select | sa.CompoundSelect:
        """The periods and values of ``kpi``'s sparse ``slices`` that some source's rollup
        holds a row for, with the columns of a slice-values row (``_slices``): ``grain``,
        ``period_start``, ``slice``, ``v_<d>`` and ``o_<d>``. A rollup row is a group of
        cube rows, so it exists where the source has rows in the period (as the compiler's
        spine: rows of a source, whatever a measure's filter keeps)."""
        used = kpi.dimension_names
        selects = []
        for source in sources:
            r = rollups[source].alias(f"{name}_present_{source}")
            for dims in slices:
                values = {d: r.c[f"v_{d}"] for d in dims}
                selects.append(
                    sa.select(
                        r.c.grain, r.c.period_start, *_slice_row(slice_name(dims), values, used)
                    ).where(r.c.slice == slice_name(dims), r.c.grain.in_(grains))
                )
        # UNION: a combination with data in two sources is one row.
        return sa.union(*selects) if len(sources) > 1 else sa.union_all(*selects)

    def _kpi_select(
        self,
        kpi: Kpi,
        base: sa.CTE,
        computed_at: dt.datetime | ColumnElement,
        earlier_name: str = "earlier",
    ) -> sa.Select:
        """``kpi``'s rows, projected from the group's join ``base``; a growth joins
        ``base`` again, as ``earlier_name``, for the day it compares with."""

        def rollup(row: FromClause, source: str) -> Callable[[str], ColumnElement]:
            return lambda column: row.c[self.label(source, column)]

        def running(row: FromClause, source: str, kind: str) -> Callable[[str], ColumnElement]:
            return lambda column: row.c[self.label(source, column, kind)]

        sources = self._sources(kpi)
        rows: FromClause = base
        if is_growth(kpi):
            # The day it is compared with is another row of the same join: the same
            # slice, the day shifted back (a left join: before the first day, none).
            days, months = kpi.period_over_period.shift
            earlier = base.alias(earlier_name)
            # By name: a source's rollup columns can start with the prefix too.
            keys = [f"{KEY_PREFIX}{name}" for name in _slice_keys(kpi.dimension_names)]
            rows = base.outerjoin(
                earlier,
                sa.and_(
                    earlier.c.grain == base.c.grain,
                    earlier.c.period_start == shift_date(base.c.period_start, -days, -months),
                    *[earlier.c[key] == base.c[key] for key in keys],
                ),
            )
            of = self.catalog.kpis[kpi.period_over_period.of]
            now, *_ = self._evaluate(of, {s: rollup(base, s) for s in sources})
            before, *_ = self._evaluate(of, {s: rollup(earlier, s) for s in sources})
            # As KpiCompiler.evaluate: the relative change, and both sides kept.
            value, numerator, denominator, size = (
                safe_divide(now - before, before),
                now,
                before,
                sa.null(),
            )
        elif is_running(kpi):
            # The KPI it runs over, evaluated on the running sums of the rollups' rows.
            kind = kpi.cumulative.running_kind
            of = self.catalog.kpis[kpi.cumulative.of]
            value, numerator, denominator, size = self._evaluate(
                of, {source: running(base, source, kind) for source in sources}
            )
        else:
            value, numerator, denominator, size = self._evaluate(
                kpi, {source: rollup(base, source) for source in sources}
            )
        return (
            sa.select(
                sa.literal(kpi.id, sa.String).label("kpi_id"),
                base.c.grain,
                base.c.period_start,
                base.c.period_end,
                base.c.is_complete_period,
                *[base.c[d] for d in self.catalog.dimensions],
                sa.cast(value, sa.Double).label("value"),
                sa.cast(numerator, sa.Double).label("numerator"),
                sa.cast(denominator, sa.Double).label("denominator"),
                sa.cast(size, sa.BigInteger).label("sample_size"),
                sa.literal(self.catalog.versions[kpi.id], sa.String).label("definition_version"),
                sa.cast(computed_at, sa.TIMESTAMP(timezone=True)).label("computed_at"),
            )
            .select_from(rows)
            .where(base.c.grain.in_([str(g) for g in kpi.grains]))
        )

    def _slices(self, kpi: Kpi, slices: list[Slice] | None = None) -> FromClause:
        """The total, then every value (combination) of each of the KPI's slices (or of
        ``slices``) seen in the cubes of the sources it reads (as the compiler's spine: seen
        in any of them). Per dimension, ``v_<d>`` is the join key (``''`` outside the slice)
        and ``o_<d>`` the KPI row's column (NULL outside the slice)."""
        used = kpi.dimension_names

        def row(name: str, values: dict[str, ColumnElement]) -> list[ColumnElement]:
            return _slice_row(name, values, used)

        total = sa.select(*row(TOTAL, {}))
        selects: list[sa.Select] = [total]
        if slices is None:
            slices = sorted({slice_key(d) for d in kpi.slice_dimensions})
        for dims in slices:
            seen = [
                sa.select(
                    *[self.compiler.cubes.table_with(src, dims).c[d] for d in dims]
                ).distinct()
                for src in self._sources(kpi)
            ]
            values = (sa.union(*seen) if len(seen) > 1 else seen[0]).subquery()
            selects.append(
                sa.select(*row(slice_name(dims), {d: values.c[d] for d in dims})).select_from(
                    values
                )
            )
        return sa.union_all(*selects).subquery() if len(selects) > 1 else total.subquery()

    def _sources(self, kpi: Kpi) -> list[str]:
        return self.compiler.source_names(kpi)

    def label(self, source: str, column: str, running: str | None = None) -> str:
        """The name of rollup column ``column`` of ``source`` in a fused join (with
        ``running``: its running sum over that window): by the source's position, under
        the prefix no dimension may take. Named after the source, a long source name ran
        past PostgreSQL's 63 bytes, which cut two running columns to one name."""
        name = f"{KEY_PREFIX}{self._positions[source]}_{column}"
        return name if running is None else f"{name}_{RUNNING_CODES[running]}"

    def _reads(self, kpi: Kpi) -> set[tuple[str, str]]:
        """The (source, rollup column) pairs ``kpi``'s value, numerator, denominator and
        sample size read (``_evaluate`` run on placeholders)."""
        seen: set[tuple[str, str]] = set()

        def reader(source: str) -> Callable[[str], ColumnElement]:
            def column(name: str) -> ColumnElement:
                seen.add((source, name))
                return sa.literal_column("0")

            return column

        self._evaluate(kpi, {source: reader(source) for source in self._sources(kpi)})
        return seen

    def _evaluate(
        self, kpi: Kpi, rollups: dict[str, Callable[[str], ColumnElement]]
    ) -> tuple[ColumnElement, ColumnElement, ColumnElement, ColumnElement]:
        """(value, numerator, denominator, sample size) of ``kpi`` from the joined rollups
        (``rollups[source](column)``: that rollup's column in the join)."""
        if kpi.type == KpiType.simple:
            return self._measure(kpi.measure, rollups)
        if kpi.type == KpiType.ratio:
            num, *_ = self._measure(kpi.numerator, rollups)
            den, _, _, size = self._measure(kpi.denominator, rollups)
            return safe_divide(num, den), num, den, size
        if kpi.type != KpiType.derived:  # a growth is two rows of a join (_kpi_select)
            raise ValueError(f"{kpi.id}: a {kpi.type} KPI is not a function of one row")
        refs = {r: self._evaluate(self.catalog.kpis[r], rollups) for r in kpi.referenced_kpis()}
        value = to_sql(kpi.expr, _value_of(refs))
        sizes = [size for *_, size in refs.values()]
        size = sizes[0] if len(sizes) == 1 else sa.func.least(*sizes)
        return value, sa.null(), sa.null(), size

    def _measure(
        self, measure: Measure, rollups: dict[str, Callable[[str], ColumnElement]]
    ) -> tuple[ColumnElement, ColumnElement, ColumnElement, ColumnElement]:
        column = rollups[measure.source]
        i = self.compiler.cubes.measure_index(measure)

        def col(part: str) -> ColumnElement:
            return column(f"m{i}_{part}")

        # The sample: kept rows with a non-NULL measure, as in KpiCompiler._aggregate.
        size = sa.func.coalesce(col("nonnull"), 0)
        if measure.agg == Agg.sum:
            # A missing period of a non-additive source (users by month) is unknown, not 0.
            if unknown_when_missing(measure, self.catalog.sources[measure.source]):
                return col("total"), sa.null(), sa.null(), size
            return sa.func.coalesce(col("total"), 0), sa.null(), sa.null(), size
        if measure.agg == Agg.count:
            return sa.func.coalesce(col("nonnull"), 0), sa.null(), sa.null(), size
        if measure.agg == Agg.average:
            # As on days: a period whose rows the filter all dropped has no count (NULL), a
            # period whose kept rows are all NULL has a count of 0.
            rows = sa.func.coalesce(col("n"), 0)
            count = sa.case((rows > 0, col("nonnull")), else_=sa.null())
            return safe_divide(col("total"), count), col("total"), count, size
        if measure.agg == Agg.min:
            return col("low"), sa.null(), sa.null(), size
        return col("high"), sa.null(), sa.null(), size


def _slice_row(name: str, values: dict[str, ColumnElement], used: list[str]) -> list[ColumnElement]:
    """A slice-values row: the slice's name, then per dimension of ``used`` its join key
    ``v_<d>`` (``''`` outside the slice) and the KPI row's column ``o_<d>`` (NULL outside)."""
    out = [sa.literal(name, sa.String).label("slice")]
    for d in used:
        value = values.get(d)
        out.append((sa.literal(TOTAL, sa.String) if value is None else value).label(f"v_{d}"))
        out.append(sa.cast(value if value is not None else sa.null(), sa.String).label(f"o_{d}"))
    return out


def _slice_keys(dimensions: list[str]) -> list[str]:
    """The columns of a slice-values row (``_slices``) that identify the slice: its name
    and its value of each dimension (``''`` outside it)."""
    return ["slice", *[f"v_{d}" for d in dimensions]]


def slice_name(dims: Slice) -> str:
    return ",".join(dims)


def _value_of(refs: dict[str, tuple]) -> Callable[[str], ColumnElement]:
    def value(name: str) -> ColumnElement:
        return sa.cast(refs[name][0], sa.Double)

    return value
