"""A deterministic hash of a source row, summed per local day to see which days changed.

DuckDB's ``hash()`` and PostgreSQL's ``hash_record()`` (PostgreSQL 14 and later; each field
hashed by its type's hash function, as hash joins do: a numeric 1.0 and 1.00 hash alike, as
they are equal); other warehouses have no checksum and refresh in full
(``kpi.compute.changes.supports_incremental``). The sum of the hashes of a day's rows does
not depend on how the rows are grouped first, so the daily cubes can carry it per cube row
and the day's checksum is the sum of theirs (``kpi.compute.cubes``).

Only the columns some KPI reads are hashed (``read_columns``): a column no KPI reads cannot
change a KPI's number, so a change to it recomputes nothing, and hashing the other columns
cost a third of the checksum (4 of GA4's 14 columns, ~18 ms of 10M rows on DuckDB). A
catalogue that starts reading another column changes the checksum of every day of that
source once: its readers then recompute in full, as they must, since their rows were
computed without it.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from kpi.language.catalog import Catalog
from kpi.language.expressions import referenced_names
from kpi.warehouse.schema import LINEAGE_COLUMNS

# DuckDB's hash() is 64 bits; its top 30 (a shift, where a modulo divided every row: ~10 ms
# of the 10M-row bench's grouped scan) keep a sum of up to 2^33 rows inside a BIGINT.
_DUCKDB_DROPPED_BITS = 34


class row_checksum(FunctionElement):
    """A deterministic integer hash of a row's values (BIGINT), for ``sum()`` per day."""

    type = sa.BigInteger()
    inherit_cache = True


@compiles(row_checksum, "duckdb")
def _duckdb_checksum(element, compiler, **kw):
    hashed = f"hash({compiler.process(element.clauses, **kw)})"
    return f"CAST({hashed} >> {_DUCKDB_DROPPED_BITS} AS BIGINT)"


@compiles(row_checksum, "postgresql")
def _postgresql_checksum(element, compiler, **kw):
    # Not hashtext(ROW(...)::text): turning every row into text first took ~40% more (1M
    # rows of five columns grouped by day: 760 against 460-490 ms).
    return f"CAST(hash_record(ROW({compiler.process(element.clauses, **kw)})) AS BIGINT)"


@compiles(row_checksum)
def _unsupported_checksum(element, compiler, **kw):
    raise NotImplementedError(
        f"no row checksum on {compiler.dialect.name}: refresh with full_refresh=True there"
    )


def read_columns(catalog: Catalog, source: str) -> list[str]:
    """The columns of ``source`` some KPI's number depends on, in declared order: its time
    column, the columns of its dimensions (with the channel rules' inputs), and the columns
    the expressions and filters of the measures reading it name (a name in a filter may be
    a dimension's: its columns are in already)."""
    src = catalog.sources[source]
    names: set[str | None] = {src.time.column}
    for mapping in src.dimensions.values():
        names.add(mapping.column)
        if mapping.classify is not None:
            names |= {mapping.classify.source, mapping.classify.medium, mapping.classify.campaign}
    for kpi in catalog.kpis.values():
        for _, m in kpi.measures:
            if m.source == source:
                names |= {n for text in (m.expr, m.filter) if text for n in referenced_names(text)}
    return [c for c in src.columns if c in names and c not in LINEAGE_COLUMNS]


def rows_checksum(
    table: sa.Table, rows: FromClause | None = None, columns: list[str] | None = None
) -> ColumnElement:
    """The sum of the checksums of the grouped rows of ``table``, over ``columns`` (default:
    its declared columns; ``read_columns`` gives those KPIs read). Lineage columns such as
    ``_loaded_at`` are left out either way, so a re-pull that brings the same numbers
    changes nothing. ``rows`` is a subquery passing ``table``'s columns through (with
    others): its columns of those names are read instead, giving the same sums."""
    names = [c.name for c in table.c if c.name not in LINEAGE_COLUMNS]
    if columns is not None:
        names = [n for n in names if n in columns]
    of = table if rows is None else rows
    return sa.cast(sa.func.sum(row_checksum(*[of.c[n] for n in names])), sa.BigInteger)
