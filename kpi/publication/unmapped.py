"""``kpi.unmapped_dimension_values``: the values no channel rule places, never dropped.

A row whose channel ends as the taxonomy's fallback (``Unassigned``), or as a value that is
not one of its channels (a file's or platform's vocabulary its map does not cover), is
still counted in the KPIs, in that slice; this view says which raw values put it there,
per source and column, with the rows and the first and last day seen, so that a data
engineer extends an alias, a site list or a map. A union source is listed rather than its
members (the same rows). A view: as current as the raw tables.
"""

from __future__ import annotations

import functools

import sqlalchemy as sa

from kpi.compute.channel_sql import normalised, normalised_source
from kpi.compute.source_sql import classifiable, dimension_value, local_day
from kpi.compute.tables import KpiTables
from kpi.publication.views import replace_reader_view
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.schema import KPI_SCHEMA

VIEW = "unmapped_dimension_values"
COMMENTS: dict[str | None, str] = {
    None: "Raw values that no channel rule (kpi_definitions/taxonomy/channels.yaml) or source "
    "map places in a known channel: their rows count in the channel Unassigned (or in the "
    "raw value's own slice). Extend an alias, a site list or a map to place them.",
    "source": "the source (sources.yaml) the rows are in",
    "dimension": "the conformed dimension (channel)",
    "column": "the raw column(s) the value comes from; source / medium / campaign for rows "
    "classified by the taxonomy",
    "value": "the raw value (normalised as the rules read it, for classified rows)",
    "channel": "the channel the rows get now",
    "rows": "raw rows with this value",
    "first_seen": "first day (reporting time zone) with such a row",
    "last_seen": "last day with such a row",
}


def unmapped_select(tables: KpiTables) -> sa.Select | None:
    """The view's SELECT; None without a taxonomy or a source with its dimension."""
    catalog, taxonomy = tables.catalog, tables.catalog.taxonomy
    if taxonomy is None:
        return None
    dim = taxonomy.dimension
    members = {m for spec in catalog.sources.values() for m in spec.union_of}
    known = [c for c in taxonomy.channels if c != taxonomy.fallback]
    parts = []
    for name, src in catalog.sources.items():
        if name in members or dim not in src.dimensions:
            continue
        table = classifiable(src, tables.raw_tables[name], taxonomy)
        mapping = src.dimensions[dim]
        conformed = dimension_value(src, table, dim, taxonomy)
        if mapping.classify is not None:
            inputs = mapping.classify
            columns = [c for c in (inputs.source, inputs.medium, inputs.campaign) if c]
            pieces = [normalised_source(taxonomy, table.c[inputs.source])]
            pieces += [normalised(table.c[c]) for c in columns[1:]]
            value = pieces[0]
            for piece in pieces[1:]:
                value = value + " / " + piece
            label = " / ".join(columns)
        else:
            value = sa.func.coalesce(sa.cast(table.c[mapping.column], sa.String), "(null)")
            label = mapping.column
        day = local_day(src, table.c[src.time.column], catalog.reporting.time_zone)
        parts.append(
            sa.select(
                sa.literal(name, sa.String).label("source"),
                sa.literal(dim, sa.String).label("dimension"),
                sa.literal(label, sa.String).label("column"),
                sa.cast(value, sa.String).label("value"),
                conformed.label("channel"),
                sa.cast(sa.func.count(), sa.BigInteger).label("rows"),
                sa.func.min(day).label("first_seen"),
                sa.func.max(day).label("last_seen"),
            )
            .where(sa.not_(conformed.in_(known)))
            .group_by(value, conformed)
        )
    if not parts:
        return None
    union = sa.union_all(*parts).subquery("unmapped")
    return sa.select(union).order_by(union.c.source, union.c.rows.desc())


def refresh_unmapped_view(wh: Warehouse, tables: KpiTables) -> str | None:
    """(Re)create ``kpi.unmapped_dimension_values`` with its comments where its SQL changed
    (kpi.publication.views); its name or None."""
    build = functools.partial(unmapped_select, tables)
    return replace_reader_view(wh, tables, KPI_SCHEMA, VIEW, build, COMMENTS)
