"""How a source's rows read in SQL: their local day and their conformed dimensions.

Shared by the compiler's per-KPI queries and the daily cubes, so both read a source alike.
``local_date`` is compiled per warehouse.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from kpi.compute.channel_sql import channel_expression
from kpi.language.catalog import Catalog
from kpi.language.channels import Taxonomy
from kpi.language.models import Kpi, SourceSpec

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
    src: SourceSpec, table: sa.Table, dim: str, taxonomy: Taxonomy | None
) -> ColumnElement:
    """The conformed value of dimension ``dim`` on a row of ``src``: its column mapped to
    the shared vocabulary, as a string, ``NOT_SET`` when missing. A dimension declaring
    ``classify`` takes, where its column holds no channel, the channel ``taxonomy`` gives
    the row's source, medium and campaign (kpi.compute.channel_sql)."""
    mapping = src.dimensions[dim]
    col = table.c[mapping.column]
    if mapping.map:
        col = sa.case(mapping.map, value=col, else_=col)
    value = sa.func.coalesce(sa.cast(col, sa.String), NOT_SET)
    if mapping.classify is None or taxonomy is None:
        return value
    inputs = mapping.classify
    classified = channel_expression(
        taxonomy,
        table.c[inputs.source],
        table.c[inputs.medium],
        table.c[inputs.campaign] if inputs.campaign else sa.null(),
    )
    return sa.case((value.in_([NOT_SET, *UNCLASSIFIED]), classified), else_=value)


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
