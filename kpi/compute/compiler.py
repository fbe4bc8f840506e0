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

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, replace

import sqlalchemy as sa
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.elements import ColumnElement

from kpi.compute.cubes import SourceCubes
from kpi.compute.fusion import daily_sources
from kpi.compute.source_sql import (
    classifiable,
    dimension_value,
    local_day,
    source_names,
    unknown_when_missing,
)
from kpi.compute.window_tiles import tile_join, tiled
from kpi.compute.windows import CURRENT, RunningWindow, Window, offset_window
from kpi.language.catalog import Catalog
from kpi.language.expressions import safe_divide, to_sql
from kpi.language.models import (
    RESERVED_COLUMN_PREFIX,
    Agg,
    Grain,
    Kpi,
    KpiType,
    Measure,
    SourceSpec,
)
from kpi.warehouse.distinct_on import distinct_on_in_duckdb
from kpi.warehouse.schema import WORK_SCHEMA, day_periods_table, periods_table, source_table
from kpi.warehouse.views import attach_union_views

ADDITIVE_AGGS = {Agg.sum, Agg.count, Agg.average, Agg.min, Agg.max}


@dataclass
class Evaluated:
    """A KPI evaluated over one window: a subquery keyed by period_start and dimensions."""

    query: FromClause
    dims: tuple[str, ...]

    def col(self, name: str) -> ColumnElement:
        return self.query.c[name]


@dataclass(frozen=True)
class SparseSlices:
    """The slice values of a sparse slice (``Catalog.is_sparse``), in place of the value
    combinations a dense slice crosses with every period.

    ``present``: (day, dimension values) of every day with rows in some source the KPI
    reads. ``spine``: (period_start, dimension values) of the combinations with data in
    the windows the KPI's value reads (``KpiCompiler.evaluate`` fills it in for the KPI
    evaluated first, and every part of its value shares it, as parts share a dense spine).
    """

    present: FromClause
    spine: FromClause | None = None


# The periods' columns in a sparse spine: under a prefix no dimension may take
# (RESERVED_COLUMN_PREFIX), beside the dimension columns.
SPINE_PERIOD_PREFIX = f"{RESERVED_COLUMN_PREFIX}period_"


class _SpinePeriods:
    """A sparse spine's periods columns under the periods table's own names (``.c.name``,
    ``.c["name"]``), for the window bounds and filters written against the periods table."""

    def __init__(self, spine: FromClause):
        n = len(SPINE_PERIOD_PREFIX)
        self.c = _Named({c.name[n:]: c for c in spine.c if c.name.startswith(SPINE_PERIOD_PREFIX)})


class _Named:
    def __init__(self, columns: dict[str, ColumnElement]):
        self._columns = columns

    def __getitem__(self, name: str) -> ColumnElement:
        return self._columns[name]

    def __getattr__(self, name: str) -> ColumnElement:
        try:
            return self._columns[name]
        except KeyError:
            raise AttributeError(name) from None


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
        attach_union_views(catalog.sources, self.tables)
        # With cubes, additive measures read a per-source daily rollup built once per
        # refresh (kpi.compute.cubes) instead of scanning the raw table once per KPI, grain
        # and slice. Without, every query is self-contained (``kpi compile``).
        self.use_cubes = use_cubes
        self._since: dt.date | ColumnElement | None = None  # see periods_since
        # The cubes and rollups are working tables: beside the readers' schema, not in it.
        work = WORK_SCHEMA if self.periods.schema else None
        self.cubes = SourceCubes(catalog, self.metadata, work, self.tables)

    # -- public -----------------------------------------------------------------------------

    def slices(self, kpi: Kpi) -> list[tuple[str, ...]]:
        """The dimension slices a KPI is reported by: the total, then each declared slice
        (one dimension, or several together)."""
        return [(), *kpi.slice_dimensions]

    def compile(
        self,
        kpi_id: str,
        grain: Grain | str,
        dims: tuple[str, ...] = (),
        window: Window = CURRENT,
        computed_at: dt.datetime | ColumnElement | None = None,
        since: dt.date | ColumnElement | None = None,
    ) -> sa.Select:
        """The rows of ``kpi.kpi_values`` for one KPI, grain and slice; with ``since``,
        only those of the periods ending on or after it (kpi.compute.changes)."""
        kpi = self.catalog.kpis[kpi_id]
        grain = Grain(grain)
        with self.periods_since(since):
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
            .where(*self.recent_periods(p, since))
            .order_by(p.c.period_start, *[values.col(d) for d in dims])
        )

    def compile_all(
        self,
        kpi_id: str,
        computed_at: dt.datetime | ColumnElement | None = None,
        since: dt.date | ColumnElement | None = None,
    ) -> list[sa.Select]:
        kpi = self.catalog.kpis[kpi_id]
        return [
            self.compile(kpi_id, g, dims, computed_at=computed_at, since=since)
            for g in kpi.grains
            for dims in self.slices(kpi)
        ]

    @contextlib.contextmanager
    def periods_since(self, since: dt.date | ColumnElement | None) -> Iterator[None]:
        """Every query built inside evaluates only the periods ending on or after ``since``."""
        before, self._since = self._since, since
        try:
            yield
        finally:
            self._since = before

    @staticmethod
    def recent_periods(p: FromClause, since: dt.date | ColumnElement | None) -> list[ColumnElement]:
        """The filter keeping the periods an incremental refresh recomputes: every window
        of a period ends by its period end, so one ending before ``since`` cannot change."""
        return [] if since is None else [p.c.period_end >= since]

    # -- evaluation ---------------------------------------------------------------------------

    def evaluate(
        self,
        kpi: Kpi,
        grain: Grain,
        dims: tuple[str, ...],
        window: Window,
        slice_values: FromClause | SparseSlices | None,
    ) -> Evaluated:
        if isinstance(slice_values, SparseSlices) and slice_values.spine is None:
            slice_values = self._sparse_spine(kpi, grain, dims, window, slice_values)
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
            return self.evaluate(base, grain, dims, window.running(c.running_kind), slice_values)
        if kpi.type == KpiType.period_over_period:
            pop = kpi.period_over_period
            base = self.catalog.kpis[pop.of]
            offset = offset_window(pop.offset, pop.shift)
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
        slice_values: FromClause | SparseSlices | None,
    ) -> Evaluated:
        src = self.catalog.sources[measure.source]
        table = self.tables[measure.source]
        rows = self._rows(measure, src, table, dims)
        # A slice only month-grained KPIs read is kept by month, not by day
        # (kpi.compute.cubes): asked for by day, it is summed from the raw rows.
        cubed = (
            self.use_cubes
            and measure.agg != Agg.count_distinct
            and self.cubes.covers(measure.source, dims)
        )
        daily_of = (
            (lambda: self.cubes.daily(measure, dims))
            if cubed
            else (lambda: self._daily(rows, dims))
        )
        p = self.periods.alias()
        spine: FromClause = p
        keys = slice_values
        if isinstance(slice_values, SparseSlices):
            # The spine carries its periods' columns (``_sparse_spine``): joined to the
            # periods again by period_start, PostgreSQL took that join of a DISTINCT's output
            # (a column without statistics) for one row, and nested every part of a derived
            # KPI over it (a month of 244 combinations: 30,000 rescans; the statement 5 s, now 1).
            keys = spine = slice_values.spine
            p = _SpinePeriods(keys)
        elif dims:
            spine = p.join(slice_values, sa.true())
        dim_keys = [keys.c[d] for d in dims] if dims else []

        if measure.agg == Agg.count_distinct or measure.agg in ADDITIVE_AGGS:
            distinct = measure.agg == Agg.count_distinct
            data = rows if distinct else daily_of()
            # A distinct count needs its rows; sums, counts, minima and maxima may be taken
            # of the days' summaries summed into periods first, when the source has days
            # (a monthly source's rows before the first period are in no period).
            tiles = not distinct and src.grain == Grain.day
            data, on = self._window_join(data, p, grain, window, tiles=tiles)
            on += [data.c[d] == k for d, k in zip(dims, dim_keys, strict=True)]
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
                .where(p.c.grain == str(grain), *self.recent_periods(p, self._since))
                .group_by(p.c.period_start, *dim_keys)
            )
            return Evaluated(query.subquery(), dims)

        # last: a balance takes the value of the latest day with data in the window.
        daily, on = self._window_join(daily_of(), p, grain, window)
        on += [daily.c[d] == k for d, k in zip(dims, dim_keys, strict=True)]
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
            .where(p.c.grain == str(grain), *self.recent_periods(p, self._since))
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
        self, data: FromClause, p: FromClause, grain: Grain, window: Window, tiles: bool = False
    ) -> tuple[FromClause, list]:
        """``data`` (with a ``day`` column) and the condition that puts its days in ``p``'s
        window. A period's own window is found by equality through day_periods (a hash
        join); running and comparison windows overlap, so they need a range join.

        ``tiles``: ``data`` may be summed into periods (it holds days' summaries, or the
        days a value was seen on), so a running window that ``grain``'s periods tile
        (kpi.compute.fusion.RUNNING_GRAINS: year to date by month, all time by week...)
        joins its periods, not its days: the period's own and the earlier ones of its grain
        from the window's start (all time: every earlier one, the first may start before
        the first day of data). A year to date by month x campaign joined ~30 times fewer
        rows (PostgreSQL ran a range join of 757,000 (month, combination, day) rows)."""
        if tiles and tiled(window, grain):
            return tile_join(data, p, grain, window, self.day_periods)
        if window != CURRENT:
            start, end = window.bounds(p)
            if grain == Grain.day and not isinstance(window, RunningWindow):
                # An earlier day is one day (its window starts where it ends): an equality
                # join, hashed, where the range was a range join over every day.
                return data, [data.c.day == start]
            return data, [data.c.day >= start, data.c.day <= end]
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
        return local_day(src, moment, self.catalog.reporting.time_zone)

    def _rows(
        self, measure: Measure, src: SourceSpec, table: sa.Table, dims: tuple[str, ...]
    ) -> FromClause:
        """Source rows as (day, dimension values, x) with the measure's filter applied."""
        # A filter may read any dimension; without one, only the sliced ones are read.
        reading = src.dimensions if measure.filter else dims
        table = classifiable(src, table, self.catalog.taxonomy, reading)
        day = self.local_day(src, table.c[src.time.column])

        def column(name: str) -> ColumnElement:
            return table.c[name]

        def dimension_or_column(name: str) -> ColumnElement:
            # Filters speak the conformed vocabulary: `channel` means the mapped channel even
            # when the source has a raw column of the same name in its own vocabulary.
            if name in src.dimensions:
                return dimension_value(src, table, name, self.catalog.taxonomy)
            return table.c[name]

        x = to_sql(measure.expr, column) if measure.expr else sa.literal(1)
        query = sa.select(
            day.label("day"),
            *[dimension_value(src, table, d, self.catalog.taxonomy).label(d) for d in dims],
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

    def slice_values(self, kpi: Kpi, dims: tuple[str, ...]) -> FromClause | SparseSlices | None:
        """Every value combination of ``dims`` seen in any source the KPI reads; for a
        sparse slice, the days each was seen on (``SparseSlices``)."""
        if not dims:
            return None
        sparse = self.catalog.is_sparse(dims)
        selects = []
        for name in self.source_names(kpi):
            if self.use_cubes and name in self.cubes.tables and self.cubes.covers(name, dims):
                cube = self.cubes.tables[name]
                day = [cube.c.day] if sparse else []
                selects.append(sa.select(*day, *[cube.c[d] for d in dims]).distinct())
                continue
            selects.append(self.raw_values(name, dims, with_day=sparse))
        seen = sa.union(*selects).subquery() if len(selects) > 1 else selects[0].subquery()
        return SparseSlices(seen) if sparse else seen

    def raw_values(self, name: str, dims: tuple[str, ...], with_day: bool = False) -> sa.Select:
        """The value combinations of ``dims`` on the raw rows of source ``name`` (with the
        local day of each row's, for ``with_day``), distinct."""
        src = self.catalog.sources[name]
        table = classifiable(src, self.tables[name], self.catalog.taxonomy, dims)
        day = [self.local_day(src, table.c[src.time.column]).label("day")] if with_day else []
        return sa.select(
            *day,
            *[dimension_value(src, table, d, self.catalog.taxonomy).label(d) for d in dims],
        ).distinct()

    def _sparse_spine(
        self,
        kpi: Kpi,
        grain: Grain,
        dims: tuple[str, ...],
        window: Window,
        slices: SparseSlices,
    ) -> SparseSlices:
        """``slices`` with its spine: the periods of ``grain`` (every column of the
        periods table) and value combinations with data in some window ``kpi``'s value
        reads (a running total's running window, a growth's current period: its earlier
        period may have no data, and is then 0 for a sum, as in a dense slice)."""
        selects = []
        daily = daily_sources(self.catalog, kpi)  # tiles: as _measure's
        for read in dict.fromkeys(self._windows_read(kpi, window) or [window]):
            q = self.periods.alias()
            present, on = self._window_join(slices.present, q, grain, read, tiles=daily)
            selects.append(
                sa.select(
                    *[c.label(f"{SPINE_PERIOD_PREFIX}{c.name}") for c in q.c],
                    *[present.c[d] for d in dims],
                )
                .select_from(q.join(present, sa.and_(*on)))
                .where(q.c.grain == str(grain), *self.recent_periods(q, self._since))
                # The period's other columns follow from its start (kpi.warehouse.distinct_on).
                .ext(distinct_on_in_duckdb(q.c.period_start, *[present.c[d] for d in dims]))
            )
        spine = sa.union(*selects) if len(selects) > 1 else selects[0]
        return replace(slices, spine=spine.subquery())

    def _windows_read(self, kpi: Kpi, window: Window) -> list[Window]:
        """The windows of days ``kpi``'s value over ``window`` sums (growths: the
        current one only, so a growth has the rows of the KPI it is the growth of)."""
        if kpi.type == KpiType.cumulative:
            base = self.catalog.kpis[kpi.cumulative.of]
            return self._windows_read(base, window.running(kpi.cumulative.running_kind))
        if kpi.type == KpiType.period_over_period:
            return self._windows_read(self.catalog.kpis[kpi.period_over_period.of], window)
        if kpi.type == KpiType.derived:
            refs = [self.catalog.kpis[r] for r in kpi.referenced_kpis()]
            return [w for ref in refs for w in self._windows_read(ref, window)]
        return [window]

    def source_names(self, kpi: Kpi) -> list[str]:
        """The sources ``kpi`` reads, itself or through the KPIs it is built on."""
        return source_names(self.catalog, kpi)
