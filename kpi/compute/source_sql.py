"""How a source's rows read in SQL: their local day and their conformed dimensions.

Shared by the compiler's per-KPI queries and the daily cubes, so both read a source alike.
``local_date`` is compiled per warehouse.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from kpi.compute.channel_sql import channel_of, normalised_inputs
from kpi.language.catalog import Catalog
from kpi.language.channels import Taxonomy
from kpi.language.expressions import referenced_names
from kpi.language.models import (
    RESERVED_COLUMN_PREFIX,
    Additivity,
    Agg,
    Kpi,
    Measure,
    SourceSpec,
)

NOT_SET = "(not set)"


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


def local_day(src: SourceSpec, moment: ColumnElement, time_zone: str) -> ColumnElement:
    """``moment`` (a value of ``src``'s time column, or a min/max of it) as a day in
    ``time_zone``; a date column already is one."""
    if src.time.type != "timestamp":
        return moment
    return local_date(moment, sa.literal(time_zone, sa.String))


def dimension_value(
    src: SourceSpec, table: sa.FromClause, dim: str, taxonomy: Taxonomy | None
) -> ColumnElement:
    """The conformed value of dimension ``dim`` on a row of ``src``: its column mapped to
    the shared vocabulary, as a string, ``NOT_SET`` when missing. A dimension declaring
    ``classify`` takes, where its column holds no channel, the channel ``taxonomy`` gives
    the row's source, medium and campaign (kpi.compute.channel_sql); read from
    :func:`classifiable` rows, the rules read those inputs normalised once per row."""
    value = _declared_value(src, table, dim)
    mapping = src.dimensions[dim]
    if mapping.classify is None or taxonomy is None:
        return value
    computed = {f: f"{CLASSIFY_INPUT}{dim}_{f}" for f in ("source", "medium", "campaign")}
    if all(name in table.c for name in computed.values()):
        row = {f: table.c[name] for f, name in computed.items()}
    else:
        row = _classify_inputs(src, table, dim, taxonomy)
    return sa.case((_unclassified(value), channel_of(taxonomy, row)), else_=value)


# The columns :func:`classifiable` adds: ``_cube_in_<dimension>_<source|medium|campaign>``
# (the language refuses source columns with the prefix).
CLASSIFY_INPUT = f"{RESERVED_COLUMN_PREFIX}in_"


def classifiable(
    src: SourceSpec,
    table: sa.Table,
    taxonomy: Taxonomy | None,
    reading: Iterable[str] | None = None,
) -> sa.FromClause:
    """``table``'s rows, with the channel rules' inputs of each dimension that declares
    ``classify`` normalised once per row, and only on the rows the rules classify (NULL on
    others); ``table`` itself when no dimension classifies, or none of ``reading`` (the
    dimensions a query reads; default all) does.

    :func:`dimension_value` reads them from such rows. Written out where each rule reads
    them, the inputs (the source alias alone is a CASE of dozens of values) made the
    GA4 cube statement 15 KB of SQL that DuckDB took ~75 ms to bind and optimise
    (common subexpressions, expression rewriting) whatever the rows; as columns below it,
    under 5 KB and ~13 ms. Computed on every row they would cost more than they save: most
    sources' rows carry their own channel."""
    read = set(src.dimensions if reading is None else reading)
    dims = [d for d, m in src.dimensions.items() if m.classify is not None and d in read]
    if taxonomy is None or not dims:
        return table
    inputs = []
    for dim in dims:
        unclassified = _unclassified(_declared_value(src, table, dim))
        for field, expr in _classify_inputs(src, table, dim, taxonomy).items():
            inputs.append(sa.case((unclassified, expr)).label(f"{CLASSIFY_INPUT}{dim}_{field}"))
    return sa.select(*table.c, *inputs).subquery()


def _declared_value(src: SourceSpec, table: sa.FromClause, dim: str) -> ColumnElement:
    """Dimension ``dim``'s own column on a row, mapped, as a string, ``NOT_SET`` if NULL."""
    mapping = src.dimensions[dim]
    col = table.c[mapping.column]
    if mapping.map:
        col = sa.case(mapping.map, value=col, else_=col)
    return sa.func.coalesce(sa.cast(col, sa.String), NOT_SET)


def _unclassified(value: ColumnElement) -> ColumnElement:
    return value.in_([NOT_SET, *UNCLASSIFIED])


def _classify_inputs(
    src: SourceSpec, table: sa.FromClause, dim: str, taxonomy: Taxonomy
) -> dict[str, ColumnElement]:
    inputs = src.dimensions[dim].classify
    campaign = table.c[inputs.campaign] if inputs.campaign else sa.null()
    return normalised_inputs(taxonomy, table.c[inputs.source], table.c[inputs.medium], campaign)


# What a source's own channel column says when it has no channel for the row (GA4's
# "(other)" is kept: it is GA4's bucket of rows beyond its limits, flagged is_other_row).
UNCLASSIFIED = ("Unassigned",)


def source_names(catalog: Catalog, kpi: Kpi) -> list[str]:
    """The sources ``kpi`` reads, itself or through the KPIs it is built on."""
    names: list[str] = []
    for k in [kpi, *catalog.dependencies(kpi.id)]:
        for _, m in k.measures:
            if m.source not in names:
                names.append(m.source)
    return names


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
