"""Compile KPI definitions to SQLAlchemy Core queries that run inside the warehouse.

The shape of every query:

1. **daily**: the source aggregated to one row per local day and dimension slice
   (sum, count, min, max of the measure, and the row count). This is the only full scan.
2. **window join**: each period of the ``periods`` table picks up the daily rows between
   its window start and end. Plain periods, to-date periods, rolling windows and
   comparison windows are all just different start/end columns of that table.
3. **spine**: periods (times the slice values) are the left side of the join, so a day or
   period with no rows gives zero for sums and counts, and NULL for a ratio.

Distinct counts cannot be added up from daily rows; they join rows to windows directly.
Ratios keep their numerator and denominator sums and divide at the end, so every rollup
is a sum over a sum. No SQL is written as text: everything is SQLAlchemy expressions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from kpi.language.catalog import Catalog
from kpi.language.expressions import referenced_names, safe_divide, to_sql
from kpi.language.models import Additivity, Agg, Grain, Kpi, KpiType, Measure, SourceSpec
from kpi.warehouse.schema import day_periods_table, periods_table, source_table

NOT_SET = "(not set)"
ADDITIVE_AGGS = {Agg.sum, Agg.count, Agg.average, Agg.min, Agg.max}
# The daily aggregates a cube keeps per measure (besides its row count ``n``), by the
# aggregation that reads them. Every one keeps ``nonnull``: it is the sample size.
CUBE_PARTS = {
    Agg.sum: {"total", "nonnull"},
    Agg.count: {"nonnull"},
    Agg.average: {"total", "nonnull"},
    Agg.min: {"low", "nonnull"},
    Agg.max: {"high", "nonnull"},
    Agg.last: {"total", "nonnull"},
}
CUBE_COLUMNS = {
    "total": (sa.Double, "sum of"),
    "nonnull": (sa.BigInteger, "non-null"),
    "low": (sa.Double, "min of"),
    "high": (sa.Double, "max of"),
    "n": (sa.BigInteger, "rows of"),
}


def unknown_when_missing(measure: Measure, src: SourceSpec) -> bool:
    """True when ``measure`` sums a non-additive column (users by month, read at the
    source's own grain, one row per period): a period without its row is unknown (NULL),
    not 0 users, as an empty period of an additive measure is."""
    if measure.agg != Agg.sum or not measure.expr:
        return False
    names = referenced_names(measure.expr)
    return any(
        n in src.columns and src.columns[n].additivity == Additivity.non_additive for n in names
    )


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


# ---------------------------------------------------------------------------------------------
# Dialect-specific pieces, compiled per warehouse
# ---------------------------------------------------------------------------------------------


class local_date(FunctionElement):
    """The calendar date of a timestamp in a time zone."""

    type = sa.Date()
    inherit_cache = True
    name = "local_date"


@compiles(local_date)
def _local_date_default(element, compiler, **kw):  # PostgreSQL, DuckDB
    ts, zone = list(element.clauses)
    return f"CAST(timezone({compiler.process(zone, **kw)}, {compiler.process(ts, **kw)}) AS DATE)"


@compiles(local_date, "bigquery")
def _local_date_bigquery(element, compiler, **kw):
    ts, zone = list(element.clauses)
    return f"DATE({compiler.process(ts, **kw)}, {compiler.process(zone, **kw)})"


@compiles(local_date, "snowflake")
def _local_date_snowflake(element, compiler, **kw):
    ts, zone = list(element.clauses)
    return (
        f"CAST(CONVERT_TIMEZONE({compiler.process(zone, **kw)}, "
        f"{compiler.process(ts, **kw)}) AS DATE)"
    )


# ---------------------------------------------------------------------------------------------
# The compiler
# ---------------------------------------------------------------------------------------------


@dataclass
class Evaluated:
    """A KPI evaluated over one window: a subquery keyed by period_start and dimensions."""

    query: FromClause
    dims: tuple[str, ...]

    def col(self, name: str) -> ColumnElement:
        return self.query.c[name]


class KpiCompiler:
    """Turns catalog KPIs into SELECTs with the columns of ``kpi.kpi_values``."""

    def __init__(
        self, catalog: Catalog, metadata: sa.MetaData | None = None, use_cubes: bool = False
    ):
        self.catalog = catalog
        self.metadata = metadata if metadata is not None else sa.MetaData()
        self.periods = periods_table(self.metadata)
        self.day_periods = day_periods_table(self.metadata)
        self.tables = {
            name: source_table(name, spec, self.metadata) for name, spec in catalog.sources.items()
        }
        # With cubes, additive measures read a per-source daily rollup built once per
        # refresh (see cube_select) instead of scanning the raw table once per KPI, grain
        # and slice. Without, every query is self-contained (``kpi compile``).
        self.use_cubes = use_cubes
        self.cube_dims = self._collect_cube_dims()
        self._collect_cube_storage()
        self.cubes = {source: self._cube_table(source) for source in self.cube_measures}

    # -- public -----------------------------------------------------------------------------

    def slices(self, kpi: Kpi) -> list[tuple[str, ...]]:
        """The dimension slices a KPI is reported by: the total, then each dimension."""
        return [(), *[(d,) for d in kpi.dimensions]]

    def compile(
        self,
        kpi_id: str,
        grain: Grain | str,
        dims: tuple[str, ...] = (),
        window: Window = CURRENT,
        computed_at: dt.datetime | None = None,
    ) -> sa.Select:
        """The rows of ``kpi.kpi_values`` for one KPI, grain and slice."""
        kpi = self.catalog.kpis[kpi_id]
        grain = Grain(grain)
        values = self.evaluate(kpi, grain, dims, window, self.slice_values(kpi, dims))
        p = self.periods.alias("p")
        out_dims = [
            (values.col(d) if d in dims else sa.cast(sa.null(), sa.String)).label(d)
            for d in self.catalog.dimensions
        ]
        stamp = computed_at if computed_at is not None else sa.func.current_timestamp()
        return (
            sa.select(
                sa.literal(kpi.id, sa.String).label("kpi_id"),
                sa.literal(str(grain), sa.String).label("grain"),
                p.c.period_start,
                p.c.period_end,
                p.c.is_complete_period,
                *out_dims,
                sa.cast(values.col("value"), sa.Double).label("value"),
                sa.cast(values.col("numerator"), sa.Double).label("numerator"),
                sa.cast(values.col("denominator"), sa.Double).label("denominator"),
                sa.cast(values.col("sample_size"), sa.BigInteger).label("sample_size"),
                sa.literal(self.catalog.versions[kpi.id], sa.String).label("definition_version"),
                # TIMESTAMP, not DateTime: BigQuery's DATETIME has no time zone.
                sa.cast(stamp, sa.TIMESTAMP(timezone=True)).label("computed_at"),
            )
            .select_from(
                values.query.join(
                    p,
                    sa.and_(
                        p.c.grain == str(grain), p.c.period_start == values.col("period_start")
                    ),
                )
            )
            .order_by(p.c.period_start, *[values.col(d) for d in dims])
        )

    def compile_all(self, kpi_id: str, computed_at: dt.datetime | None = None) -> list[sa.Select]:
        kpi = self.catalog.kpis[kpi_id]
        return [
            self.compile(kpi_id, g, dims, computed_at=computed_at)
            for g in kpi.grains
            for dims in self.slices(kpi)
        ]

    # -- evaluation ---------------------------------------------------------------------------

    def evaluate(
        self,
        kpi: Kpi,
        grain: Grain,
        dims: tuple[str, ...],
        window: Window,
        slice_values: FromClause | None,
    ) -> Evaluated:
        if kpi.type == KpiType.simple:
            return self._measure(kpi.measure, grain, dims, window, slice_values)
        if kpi.type == KpiType.ratio:
            num = self._measure(kpi.numerator, grain, dims, window, slice_values)
            den = self._measure(kpi.denominator, grain, dims, window, slice_values)
            n, d = num.col("value"), den.col("value")
            return self._combine(
                [num, den],
                dims,
                value=safe_divide(n, d),
                numerator=n,
                denominator=d,
                sample_size=den.col("sample_size"),
            )
        if kpi.type == KpiType.derived:
            refs = {
                ref: self.evaluate(self.catalog.kpis[ref], grain, dims, window, slice_values)
                for ref in kpi.referenced_kpis()
            }
            value = to_sql(kpi.expr, lambda name: sa.cast(refs[name].col("value"), sa.Double))
            # A derived value rests on the thinnest of its inputs.
            sizes = [r.col("sample_size") for r in refs.values()]
            size = sizes[0] if len(sizes) == 1 else sa.func.least(*sizes)
            return self._combine(list(refs.values()), dims, value=value, sample_size=size)
        if kpi.type == KpiType.cumulative:
            c = kpi.cumulative
            base = self.catalog.kpis[c.of]
            kind = f"{c.to_date}_to_date" if c.to_date else f"rolling_{c.window_days}"
            return self.evaluate(base, grain, dims, window.running(kind), slice_values)
        if kpi.type == KpiType.period_over_period:
            pop = kpi.period_over_period
            base = self.catalog.kpis[pop.of]
            offset = PREVIOUS if pop.offset == "previous_period" else LAST_YEAR
            cur = self.evaluate(base, grain, dims, window, slice_values)
            prev = self.evaluate(base, grain, dims, offset, slice_values)
            c, p = cur.col("value"), prev.col("value")
            # value = relative change; numerator/denominator keep both sides so the
            # absolute change is numerator - denominator.
            return self._combine(
                [cur, prev],
                dims,
                value=safe_divide(c - p, p),
                numerator=c,
                denominator=p,
            )
        raise ValueError(f"unknown KPI type {kpi.type}")

    def _combine(
        self,
        parts: list[Evaluated],
        dims: tuple[str, ...],
        value: ColumnElement,
        numerator: ColumnElement | None = None,
        denominator: ColumnElement | None = None,
        sample_size: ColumnElement | None = None,
    ) -> Evaluated:
        """Join evaluated parts on period and slice; every part has the same spine."""
        first, rest = parts[0], parts[1:]
        joined: FromClause = first.query
        for other in rest:
            on = [other.col("period_start") == first.col("period_start")]
            on += [other.col(d) == first.col(d) for d in dims]
            joined = joined.join(other.query, sa.and_(*on))
        query = sa.select(
            first.col("period_start").label("period_start"),
            *[first.col(d).label(d) for d in dims],
            value.label("value"),
            (numerator if numerator is not None else sa.null()).label("numerator"),
            (denominator if denominator is not None else sa.null()).label("denominator"),
            (sample_size if sample_size is not None else sa.null()).label("sample_size"),
        ).select_from(joined)
        return Evaluated(query.subquery(), dims)

    def _measure(
        self,
        measure: Measure,
        grain: Grain,
        dims: tuple[str, ...],
        window: Window,
        slice_values: FromClause | None,
    ) -> Evaluated:
        src = self.catalog.sources[measure.source]
        table = self.tables[measure.source]
        rows = self._rows(measure, src, table, dims)
        cubed = self.use_cubes and measure.agg != Agg.count_distinct
        daily_of = (
            (lambda: self._cube_daily(measure, dims))
            if cubed
            else (lambda: self._daily(rows, dims))
        )
        p = self.periods.alias()
        spine: FromClause = p
        if dims:
            spine = p.join(slice_values, sa.true())
        dim_keys = [slice_values.c[d] for d in dims] if dims else []

        if measure.agg == Agg.count_distinct or measure.agg in ADDITIVE_AGGS:
            data = rows if measure.agg == Agg.count_distinct else daily_of()
            data, on = self._window_join(data, p, grain, window)
            on += [data.c[d] == slice_values.c[d] for d in dims]
            joined = spine.outerjoin(data, sa.and_(*on))
            zero_fill = not unknown_when_missing(measure, src)
            num, den, value, n = self._aggregate(measure.agg, data, zero_fill)
            query = (
                sa.select(
                    p.c.period_start.label("period_start"),
                    *[k.label(k.key) for k in dim_keys],
                    value.label("value"),
                    num.label("numerator"),
                    den.label("denominator"),
                    n.label("sample_size"),
                )
                .select_from(joined)
                .where(p.c.grain == str(grain))
                .group_by(p.c.period_start, *dim_keys)
            )
            return Evaluated(query.subquery(), dims)

        # last: a balance takes the value of the latest day with data in the window.
        daily, on = self._window_join(daily_of(), p, grain, window)
        on += [daily.c[d] == slice_values.c[d] for d in dims]
        rank = (
            sa.func.row_number()
            .over(partition_by=[p.c.period_start, *dim_keys], order_by=daily.c.day.desc())
            .label("rank")
        )
        ranked = (
            sa.select(
                p.c.period_start.label("period_start"),
                *[k.label(k.key) for k in dim_keys],
                daily.c.total.label("value"),
                daily.c.nonnull.label("sample_size"),
                rank,
            )
            .select_from(spine.outerjoin(daily, sa.and_(*on)))
            .where(p.c.grain == str(grain))
            .subquery()
        )
        query = sa.select(
            ranked.c.period_start,
            *[ranked.c[d] for d in dims],
            ranked.c.value,
            sa.null().label("numerator"),
            sa.null().label("denominator"),
            sa.func.coalesce(ranked.c.sample_size, 0).label("sample_size"),
        ).where(ranked.c.rank == 1)
        return Evaluated(query.subquery(), dims)

    def _window_join(
        self, data: FromClause, p: FromClause, grain: Grain, window: Window
    ) -> tuple[FromClause, list]:
        """``data`` (with a ``day`` column) and the condition that puts its days in ``p``'s
        window. A period's own window is found by equality through day_periods (a hash
        join); running and comparison windows overlap, so they need a range join."""
        if window != CURRENT:
            return data, [data.c.day >= p.c[window.start], data.c.day <= p.c[window.end]]
        dp = self.day_periods
        bucketed = (
            sa.select(*data.c, dp.c.period_start.label("bucket"))
            .select_from(data.join(dp, sa.and_(dp.c.day == data.c.day, dp.c.grain == str(grain))))
            .subquery()
        )
        return bucketed, [bucketed.c.bucket == p.c.period_start]

    @staticmethod
    def _aggregate(agg: Agg, data: FromClause, zero_fill: bool = True):
        """(numerator, denominator, value, sample size) over the joined window rows.

        The sample size is the number of rows the value rests on: rows kept by the
        measure's filter whose measure is not NULL (a CSAT share of 11 of 12 scored
        answers rests on 12 answers, not on the 143 rows of the survey). ``zero_fill``: a
        sum over a window without rows is 0 (else NULL, see ``unknown_when_missing``)."""
        if agg == Agg.count_distinct:
            value = sa.func.count(sa.distinct(data.c.x))
            return sa.null(), sa.null(), value, sa.func.count(data.c.x)
        n = sa.func.coalesce(sa.func.sum(data.c.nonnull), 0)
        if agg == Agg.sum:
            value = sa.func.sum(data.c.total)
            return sa.null(), sa.null(), sa.func.coalesce(value, 0) if zero_fill else value, n
        if agg == Agg.count:
            value = sa.func.coalesce(sa.func.sum(data.c.nonnull), 0)
            return sa.null(), sa.null(), value, n
        if agg == Agg.average:
            total, count = sa.func.sum(data.c.total), sa.func.sum(data.c.nonnull)
            return total, count, safe_divide(total, count), n
        if agg == Agg.min:
            return sa.null(), sa.null(), sa.func.min(data.c.low), n
        return sa.null(), sa.null(), sa.func.max(data.c.high), n

    def local_day(self, src: SourceSpec, moment: ColumnElement) -> ColumnElement:
        """``moment`` (a value of ``src``'s time column, or a min/max of it) as a day in the
        reporting time zone; a date column already is one."""
        if src.time.type != "timestamp":
            return moment
        return local_date(moment, sa.literal(self.catalog.reporting.time_zone, sa.String))

    def _rows(
        self, measure: Measure, src: SourceSpec, table: sa.Table, dims: tuple[str, ...]
    ) -> FromClause:
        """Source rows as (day, dimension values, x) with the measure's filter applied."""
        day = self.local_day(src, table.c[src.time.column])

        def column(name: str) -> ColumnElement:
            return table.c[name]

        def dimension_or_column(name: str) -> ColumnElement:
            # Filters speak the conformed vocabulary: `channel` means the mapped channel even
            # when the source has a raw column of the same name in its own vocabulary.
            if name in src.dimensions:
                return self._dimension(src, table, name)
            return table.c[name]

        x = to_sql(measure.expr, column) if measure.expr else sa.literal(1)
        query = sa.select(
            day.label("day"),
            *[self._dimension(src, table, d).label(d) for d in dims],
            x.label("x"),
        )
        if measure.filter:
            query = query.where(to_sql(measure.filter, dimension_or_column))
        return query.subquery()

    @staticmethod
    def _daily(rows: FromClause, dims: tuple[str, ...]) -> FromClause:
        keys = [rows.c.day, *[rows.c[d] for d in dims]]
        return (
            sa.select(
                *keys,
                sa.func.sum(rows.c.x).label("total"),
                sa.func.count(rows.c.x).label("nonnull"),
                sa.func.min(rows.c.x).label("low"),
                sa.func.max(rows.c.x).label("high"),
                sa.func.count().label("n"),
            )
            .group_by(*keys)
            .subquery()
        )

    def _dimension(self, src: SourceSpec, table: sa.Table, dim: str) -> ColumnElement:
        mapping = src.dimensions[dim]
        col = table.c[mapping.column]
        if mapping.map:
            col = sa.case(mapping.map, value=col, else_=col)
        return sa.func.coalesce(sa.cast(col, sa.String), NOT_SET)

    def slice_values(self, kpi: Kpi, dims: tuple[str, ...]) -> FromClause | None:
        """Every value combination of ``dims`` seen in any source the KPI reads."""
        if not dims:
            return None
        selects = []
        for name in self.source_names(kpi):
            if self.use_cubes and name in self.cubes:
                cube = self.cubes[name]
                selects.append(sa.select(*[cube.c[d] for d in dims]).distinct())
                continue
            src, table = self.catalog.sources[name], self.tables[name]
            selects.append(
                sa.select(*[self._dimension(src, table, d).label(d) for d in dims]).distinct()
            )
        return sa.union(*selects).subquery() if len(selects) > 1 else selects[0].subquery()

    def source_names(self, kpi: Kpi) -> list[str]:
        """The sources ``kpi`` reads, itself or through the KPIs it is built on."""
        names: list[str] = []
        for k in [kpi, *self.catalog.dependencies(kpi.id)]:
            for _, m in k.measures:
                if m.source not in names:
                    names.append(m.source)
        return names

    # -- cubes: one daily rollup per source -------------------------------------------------
    #
    # A cube has one row per local day and value combination of the dimensions KPIs slice
    # the source by, a row count ``n``, and per *stored* measure (an expression, with the
    # part of its filter that needs raw columns) the daily aggregates some KPI needs:
    # ``s{j}_total`` (sum), ``s{j}_nonnull``, ``s{j}_low`` (min), ``s{j}_high`` (max) and,
    # for a filtered one, ``s{j}_n``. A filter that speaks only of dimensions the cube keeps
    # (``channel in ('Paid Search', ...)``) is applied to cube rows, not raw rows, so
    # revenue and paid revenue are one column of the scan, not two.

    def _collect_cube_storage(self) -> None:
        """Per source, every distinct (expr, filter) an additive or `last` measure reads
        (``cube_measures``), which measures the cube stores (``cube_stored``) with which
        parts, and how each measure read maps onto them (``cube_reads``: stored index,
        filter on cube rows)."""
        self.cube_measures: dict[str, list[tuple[str | None, str | None]]] = {}
        self.cube_stored: dict[str, list[tuple[str | None, str | None]]] = {}
        self.cube_parts: dict[tuple[str, int], set[str]] = {}
        self.cube_reads: dict[tuple[str, tuple[str | None, str | None]], tuple[int, str | None]]
        self.cube_reads = {}
        for kpi in self.catalog.kpis.values():
            for _, m in kpi.measures:
                if m.agg == Agg.count_distinct or m.source not in self.catalog.sources:
                    continue
                read = self.cube_measures.setdefault(m.source, [])
                if (m.expr, m.filter) not in read:
                    read.append((m.expr, m.filter))
                names = set(referenced_names(m.filter)) if m.filter else set()
                on_cube = bool(names) and names <= set(self.cube_dims[m.source])
                stored_key = (m.expr, None if on_cube else m.filter)
                stored = self.cube_stored.setdefault(m.source, [])
                if stored_key not in stored:
                    stored.append(stored_key)
                j = stored.index(stored_key)
                self.cube_reads[(m.source, (m.expr, m.filter))] = (j, m.filter if on_cube else None)
                parts = self.cube_parts.setdefault((m.source, j), set())
                parts.update(CUBE_PARTS[m.agg])
                if stored_key[1]:
                    parts.add("n")

    def cube_measure_index(self, measure: Measure) -> int:
        """The ``i`` of ``measure`` among the source's cube measures (``cube_measures``)."""
        return self.cube_measures[measure.source].index((measure.expr, measure.filter))

    def cube_part(
        self, cube: FromClause, source: str, key: tuple[str | None, str | None], part: str
    ) -> ColumnElement | None:
        """One daily aggregate (``total``, ``nonnull``, ``low``, ``high``, ``n``) of the
        measure ``key`` on a cube row, or None when no KPI needs that part."""
        j, cube_filter = self.cube_reads[(source, key)]
        if part == "n":
            column = cube.c.get(f"s{j}_n", cube.c.n)
        elif f"s{j}_{part}" in cube.c:
            column = cube.c[f"s{j}_{part}"]
        else:
            return None
        if cube_filter is None:
            return column
        keep = to_sql(cube_filter, lambda name: cube.c[name])
        return sa.case((keep, column), else_=sa.null())

    def _collect_cube_dims(self) -> dict[str, list[str]]:
        """Per source, the dimensions some KPI reading it is sliced by: the cube keeps those
        and no finer breakdown, so it stays small."""
        found: dict[str, list[str]] = {name: [] for name in self.catalog.sources}
        for kpi in self.catalog.kpis.values():
            for name in self.source_names(kpi):
                src = self.catalog.sources.get(name)
                if src is None:
                    continue
                for dim in kpi.dimensions:
                    if dim in src.dimensions and dim not in found[name]:
                        found[name].append(dim)
        return found

    def _cube_table(self, source: str) -> sa.Table:
        name = f"cube_{source}"
        schema = self.periods.schema
        if f"{schema}.{name}" in self.metadata.tables:
            return self.metadata.tables[f"{schema}.{name}"]
        columns = [sa.Column("day", sa.Date, nullable=False)]
        columns += [sa.Column(d, sa.String, nullable=False) for d in self.cube_dims[source]]
        columns += [sa.Column("n", sa.BigInteger, nullable=False, comment="source rows")]
        for j, (expr, filter_) in enumerate(self.cube_stored.get(source, [])):
            what = f"{expr or 'rows'}" + (f" where {filter_}" if filter_ else "")
            parts = self.cube_parts[(source, j)]
            columns += [
                sa.Column(f"s{j}_{part}", type_, comment=f"{label} {what}")
                for part, (type_, label) in CUBE_COLUMNS.items()
                if part in parts
            ]
        return sa.Table(
            name,
            self.metadata,
            *columns,
            schema=schema,
            comment=f"Daily rollup of {source} by the dimensions KPIs slice it by; rebuilt "
            "from scratch on every run (it holds no history)",
        )

    def cube_select(self, source: str) -> sa.Select:
        """The rollup of ``source``: one row per local day and dimension values, with the
        row count and the daily aggregates of every measure the cube stores."""
        src, table = self.catalog.sources[source], self.tables[source]
        day = self.local_day(src, table.c[src.time.column])
        dims = [self._dimension(src, table, d).label(d) for d in self.cube_dims[source]]

        def dimension_or_column(name: str) -> ColumnElement:
            if name in src.dimensions:
                return self._dimension(src, table, name)
            return table.c[name]

        aggregates = [sa.func.count().label("n")]
        for j, (expr, filter_) in enumerate(self.cube_stored.get(source, [])):
            x = to_sql(expr, lambda name: table.c[name]) if expr else sa.literal(1)
            if filter_:
                keep = to_sql(filter_, dimension_or_column)
                x = sa.case((keep, x), else_=sa.null())
                one = sa.case((keep, 1), else_=sa.null())
            else:
                one = sa.literal(1)
            of_part = {
                "total": sa.func.sum(x),
                "nonnull": sa.func.count(x),
                "low": sa.func.min(x),
                "high": sa.func.max(x),
                "n": sa.func.count(one),
            }
            parts = self.cube_parts[(source, j)]
            aggregates += [of_part[p].label(f"s{j}_{p}") for p in CUBE_COLUMNS if p in parts]
        keys = [day.label("day"), *dims]
        return sa.select(*keys, *aggregates).group_by(*[k.element for k in keys])

    def _cube_daily(self, measure: Measure, dims: tuple[str, ...]) -> FromClause:
        cube = self.cubes[measure.source]
        key = (measure.expr, measure.filter)
        keys = [cube.c.day, *[cube.c[d] for d in dims]]
        n = sa.func.sum(self.cube_part(cube, measure.source, key, "n"))

        def part(name: str, agg) -> ColumnElement:
            column = self.cube_part(cube, measure.source, key, name)
            return (agg(column) if column is not None else sa.null()).label(name)

        return (
            sa.select(
                *keys,
                part("total", sa.func.sum),
                part("nonnull", sa.func.sum),
                part("low", sa.func.min),
                part("high", sa.func.max),
                n.label("n"),
            )
            .group_by(*keys)
            # A day where the filter kept no row is no day of this measure, as on raw rows.
            .having(n > 0)
            .subquery()
        )
