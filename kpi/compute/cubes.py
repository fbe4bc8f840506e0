"""Daily cubes: one rollup per source, kept by each refresh, that additive measures read.

A cube has one row per local day and value combination of the dimensions KPIs slice the
source by, a row count ``n``, and per *stored* measure (an expression, with the part of its
filter that needs raw columns) the daily aggregates some KPI needs: ``s{j}_total`` (sum),
``s{j}_nonnull``, ``s{j}_low`` (min), ``s{j}_high`` (max) and, for a filtered one,
``s{j}_n``. A filter that speaks only of dimensions the cube keeps
(``channel in ('Paid Search', ...)``) is applied to cube rows, not raw rows, so revenue and
paid revenue are one column of the scan, not two. ``kpi.compute.rollups`` sums the cubes
into periods.

A slice that only KPIs reported by whole months read (month, quarter, year; see
kpi.compute.fusion.monthly) needs no days: its dimensions stay out of the daily cube and go
into a **monthly cube** of the same columns, one row per month and value combination, whose
``day`` is a day of that month with data (any such day lies in the same month, quarter and
year). A campaign slice by month of three years of daily rows is 36 rows per campaign, not
1,096: on MetricFlow's benchmark table the daily cube by channel x campaign was as large as
the table, and writing it was most of the refresh.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.elements import ColumnElement

from kpi.compute.checksums import read_columns, rows_checksum
from kpi.compute.fusion import monthly
from kpi.compute.source_sql import classifiable, dimension_value, local_day, source_names
from kpi.language.catalog import Catalog
from kpi.language.expressions import referenced_names, to_sql
from kpi.language.models import RESERVED_COLUMN_PREFIX, Agg, Measure

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

CHECKSUM_COMMENT = "sum of a hash of the columns KPIs read, per source row (NULL: not computed)"

MeasureKey = tuple[str | None, str | None]  # a measure's (expr, filter)

# Names of the per-row values the cube computes beside a source's own columns (reserved:
# the language refuses source columns named so).
DAY, DIM = f"{RESERVED_COLUMN_PREFIX}day", f"{RESERVED_COLUMN_PREFIX}dim_"


class SourceCubes:
    """The daily cube of every source some additive or ``last`` measure reads.

    ``tables`` (by source) are bound to ``metadata`` in ``schema``; ``dims`` holds the
    dimensions each cube keeps, ``measures`` the distinct measures read from it,
    ``stored`` the measures it stores (with ``parts``: which aggregates of each) and
    ``reads`` how each measure read maps onto them (stored index, filter on cube rows).
    ``month_tables`` and ``month_dims``: the monthly cubes of the sources with slices only
    month-grained KPIs read (see the module docstring), with the same measure columns.
    """

    def __init__(
        self,
        catalog: Catalog,
        metadata: sa.MetaData,
        schema: str | None,
        raw_tables: dict[str, sa.Table],
    ):
        self.catalog = catalog
        self.metadata = metadata
        self.schema = schema
        self.raw_tables = raw_tables
        self.dims, month_slices = self._collect_dims()
        self._collect_storage()
        self.month_dims = self._collect_month_dims(month_slices)
        self.tables = {source: self._table(source) for source in self.measures}
        self.month_tables = {
            source: self._table(source, by_month=True)
            for source in self.measures
            if self.month_dims.get(source)
        }

    def _collect_storage(self) -> None:
        """Per source, every distinct (expr, filter) an additive or `last` measure reads
        (``measures``), which measures the cube stores (``stored``) with which parts, and
        how each measure read maps onto them (``reads``: stored index, filter on cube rows)."""
        self.measures: dict[str, list[MeasureKey]] = {}
        self.stored: dict[str, list[MeasureKey]] = {}
        self.parts: dict[tuple[str, int], set[str]] = {}
        self.reads: dict[tuple[str, MeasureKey], tuple[int, str | None]] = {}
        for kpi in self.catalog.kpis.values():
            for _, m in kpi.measures:
                if m.agg == Agg.count_distinct or m.source not in self.catalog.sources:
                    continue
                read = self.measures.setdefault(m.source, [])
                if (m.expr, m.filter) not in read:
                    read.append((m.expr, m.filter))
                names = set(referenced_names(m.filter)) if m.filter else set()
                on_cube = bool(names) and names <= set(self.dims[m.source])
                stored_key = (m.expr, None if on_cube else m.filter)
                stored = self.stored.setdefault(m.source, [])
                if stored_key not in stored:
                    stored.append(stored_key)
                j = stored.index(stored_key)
                self.reads[(m.source, (m.expr, m.filter))] = (j, m.filter if on_cube else None)
                parts = self.parts.setdefault((m.source, j), set())
                parts.update(CUBE_PARTS[m.agg])
                if stored_key[1]:
                    parts.add("n")

    def measure_index(self, measure: Measure) -> int:
        """The ``i`` of ``measure`` among the source's cube measures (``measures``)."""
        return self.measures[measure.source].index((measure.expr, measure.filter))

    def part(
        self, cube: FromClause, source: str, key: MeasureKey, part: str
    ) -> ColumnElement | None:
        """One daily aggregate (``total``, ``nonnull``, ``low``, ``high``, ``n``) of the
        measure ``key`` on a cube row, or None when no KPI needs that part."""
        j, cube_filter = self.reads[(source, key)]
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

    def covers(self, source: str, dims: tuple[str, ...] | list[str]) -> bool:
        """True when the daily cube of ``source`` keeps every dimension of ``dims``."""
        return all(d in self.dims.get(source, ()) for d in dims)

    def table_with(self, source: str, dims: tuple[str, ...]) -> sa.Table:
        """The cube of ``source`` that keeps ``dims``: the daily one where it does, else
        the monthly one."""
        return self.tables[source] if self.covers(source, dims) else self.month_tables[source]

    def _collect_dims(self) -> tuple[dict[str, list[str]], dict[str, list[tuple[str, ...]]]]:
        """Per source, the dimensions some KPI reading it is sliced by: the cube keeps those
        and no finer breakdown, so it stays small. Month-grained KPIs are left out of it
        (kpi.compute.fusion.monthly): their slices are returned apart, per source."""
        daily: dict[str, list[str]] = {name: [] for name in self.catalog.sources}
        by_month: dict[str, list[tuple[str, ...]]] = {name: [] for name in self.catalog.sources}
        for kpi in self.catalog.kpis.values():
            month_grained = monthly(self.catalog, kpi)
            for name in source_names(self.catalog, kpi):
                src = self.catalog.sources.get(name)
                if src is None:
                    continue
                if month_grained:
                    by_month[name] += [dims for dims in kpi.slice_dimensions if dims]
                    continue
                for dim in kpi.dimension_names:
                    if dim in src.dimensions and dim not in daily[name]:
                        daily[name].append(dim)
        return daily, by_month

    def _collect_month_dims(
        self, month_slices: dict[str, list[tuple[str, ...]]]
    ) -> dict[str, list[str]]:
        """Per source with a month-grained slice the daily cube does not keep, the
        dimensions its monthly cube keeps: those of every such slice, and the daily cube's
        dimensions a filter applied to cube rows reads (revenue where channel is paid), so
        the monthly cube's rows take the same filters."""
        found: dict[str, list[str]] = {}
        for source, slices in month_slices.items():
            if source not in self.measures:
                continue
            apart = [dims for dims in slices if not self.covers(source, dims)]
            if not apart:
                continue
            filtered = {
                name
                for (s, _), (_, cube_filter) in self.reads.items()
                if s == source and cube_filter
                for name in referenced_names(cube_filter)
            }
            kept = [d for d in self.dims[source] if d in filtered]
            found[source] = list(dict.fromkeys([*kept, *(d for dims in apart for d in dims)]))
        return found

    def _table(self, source: str, by_month: bool = False) -> sa.Table:
        name = f"{'month_cube' if by_month else 'cube'}_{source}"
        schema = self.schema
        if f"{schema}.{name}" in self.metadata.tables:
            return self.metadata.tables[f"{schema}.{name}"]
        dims = self.month_dims[source] if by_month else self.dims[source]
        day_comment = "a day of the month with data" if by_month else None
        columns = [sa.Column("day", sa.Date, nullable=False, comment=day_comment)]
        columns += [sa.Column(d, sa.String, nullable=False) for d in dims]
        columns += [sa.Column("n", sa.BigInteger, nullable=False, comment="source rows")]
        if not by_month:
            columns += [sa.Column("checksum", sa.BigInteger, comment=CHECKSUM_COMMENT)]
        for j, (expr, filter_) in enumerate(self.stored.get(source, [])):
            what = f"{expr or 'rows'}" + (f" where {filter_}" if filter_ else "")
            parts = self.parts[(source, j)]
            columns += [
                sa.Column(f"s{j}_{part}", type_, comment=f"{label} {what}")
                for part, (type_, label) in CUBE_COLUMNS.items()
                if part in parts
            ]
        what = (
            f"Monthly rollup of {source} by the dimensions only month-grained KPIs slice it by"
            if by_month
            else f"Daily rollup of {source} by the dimensions KPIs slice it by"
        )
        return sa.Table(
            name,
            self.metadata,
            *columns,
            schema=schema,
            comment=f"{what}; rebuilt by a full refresh, rewritten from the first changed day by "
            "an incremental one (it holds no history of its own)",
        )

    def select(
        self, source: str, checksum: bool = False, since: ColumnElement | None = None
    ) -> sa.Select:
        """The rollup of ``source``: one row per local day and dimension values, with the
        row count and the daily aggregates of every measure the cube stores.

        ``checksum`` fills the ``checksum`` column (the sum of the rows' checksums, on the
        warehouses that have one; NULL otherwise), from which the refresh reads which days
        of the source changed (kpi.compute.changes.cube_days_select) without scanning the
        source a second time. ``since`` keeps the days from it on (kpi.compute.cube_upkeep).
        """
        table = self.raw_tables[source]
        rows = self._rows(source)
        dims = [rows.c[f"{DIM}{d}"] for d in self.dims[source]]
        total = (
            rows_checksum(table, rows, read_columns(self.catalog, source))
            if checksum
            else sa.cast(sa.null(), sa.BigInteger)
        )
        keys = [rows.c[DAY].label("day"), *[c.label(c.name[len(DIM) :]) for c in dims]]
        aggregates = self._aggregates(source, rows)
        select = sa.select(
            *keys, sa.func.count().label("n"), total.label("checksum"), *aggregates
        ).group_by(rows.c[DAY], *dims)
        return select if since is None else select.where(rows.c[DAY] >= since)

    def month_select(
        self, source: str, day_periods: sa.Table, since: ColumnElement | None = None
    ) -> sa.Select:
        """The monthly cube of ``source``: one row per month (its period in ``day_periods``)
        and values of ``month_dims``, with the same aggregates as the daily cube; ``day`` is
        the group's first day, which the rollup joins to the month, quarter and year.
        ``since`` (the first day of a month, or a day after the calendar) keeps the rows of
        the days from it on: the months from it on, whole (kpi.compute.cube_upkeep).

        A row whose day has no month in the calendar keeps its own day: it joins the
        periods it would join from the daily cube, none or some. Such rows are those after
        the as-of date and, of a pre-aggregated source (users by month), those before the
        first month of the daily sources, which the quarter or year containing them holds.
        Grouped together, the earliest of them would carry the others into its periods.
        """
        rows = self._rows(source)
        dims = [rows.c[f"{DIM}{d}"] for d in self.month_dims[source]]
        month = day_periods.alias("month")
        in_month = sa.and_(month.c.day == rows.c[DAY], month.c.grain == "month")
        outside = sa.case((month.c.period_start.is_(None), rows.c[DAY]))
        first = sa.func.min(rows.c[DAY]).label("day")
        keys = [first, *[c.label(c.name[len(DIM) :]) for c in dims]]
        select = (
            sa.select(*keys, sa.func.count().label("n"), *self._aggregates(source, rows))
            .select_from(rows.outerjoin(month, in_month))
            .group_by(month.c.period_start, outside, *dims)
        )
        return select if since is None else select.where(rows.c[DAY] >= since)

    def _rows(self, source: str) -> sa.Subquery:
        """The rows of ``source`` with each one's local day and dimension values computed
        once (reserved names DAY and DIM + dimension), to be grouped by name: a classified
        channel is a CASE of dozens of conditions, and its copies in SELECT, GROUP BY and
        every filter reading it were most of the statement's planning."""
        src, table = self.catalog.sources[source], self.raw_tables[source]
        taxonomy = self.catalog.taxonomy
        read = classifiable(src, table, taxonomy)
        computed = {
            DAY: local_day(src, read.c[src.time.column], self.catalog.reporting.time_zone),
            **{f"{DIM}{d}": dimension_value(src, read, d, taxonomy) for d in src.dimensions},
        }
        # The language refuses such columns; a catalogue built in code is stopped here.
        clash = [c.name for c in table.c if c.name.casefold().startswith(RESERVED_COLUMN_PREFIX)]
        if clash:
            raise ValueError(f"{table.fullname}: columns {clash} are names the cube uses")
        return sa.select(
            *[read.c[c.name] for c in table.c], *[e.label(k) for k, e in computed.items()]
        ).subquery("rows")

    def _aggregates(self, source: str, rows: sa.Subquery) -> list[ColumnElement]:
        """The ``s{j}_*`` aggregates of every measure the cube of ``source`` stores, over
        ``rows`` (``_rows``)."""
        src = self.catalog.sources[source]

        def dimension_or_column(name: str) -> ColumnElement:
            return rows.c[f"{DIM}{name}"] if name in src.dimensions else rows.c[name]

        aggregates = []
        for j, (expr, filter_) in enumerate(self.stored.get(source, [])):
            x = to_sql(expr, lambda name: rows.c[name]) if expr else sa.literal(1)
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
            parts = self.parts[(source, j)]
            aggregates += [of_part[p].label(f"s{j}_{p}") for p in CUBE_COLUMNS if p in parts]
        return aggregates

    def daily(self, measure: Measure, dims: tuple[str, ...]) -> FromClause:
        """``measure``'s daily aggregates by ``dims``, read from its source's cube: the same
        columns as the compiler's daily rows of raw data."""
        cube = self.tables[measure.source]
        key = (measure.expr, measure.filter)
        keys = [cube.c.day, *[cube.c[d] for d in dims]]
        n = sa.func.sum(self.part(cube, measure.source, key, "n"))

        def part(name: str, agg) -> ColumnElement:
            column = self.part(cube, measure.source, key, name)
            # Typed: PostgreSQL takes a bare NULL column of a subquery for text, which a
            # sum of periods of these rows (kpi.compute.window_tiles) could not add up.
            none = sa.cast(sa.null(), sa.Double)
            return (agg(column) if column is not None else none).label(name)

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
