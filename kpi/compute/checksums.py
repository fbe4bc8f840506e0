"""A deterministic hash of a source row, summed per local day to see which days changed.

DuckDB's ``hash()`` and PostgreSQL's ``hashtext()``; other warehouses have no checksum and
refresh in full (``kpi.compute.changes.supports_incremental``). The sum of the hashes of a
day's rows does not depend on how the rows are grouped first, so the daily cubes can carry
it per cube row and the day's checksum is the sum of theirs (``kpi.compute.cubes``).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from kpi.warehouse.schema import LINEAGE_COLUMNS

_MODULUS = 1_000_000_007  # keeps DuckDB's 64-bit hashes summable in a BIGINT


class row_checksum(FunctionElement):
    """A deterministic integer hash of a row's values (BIGINT), for ``sum()`` per day."""

    type = sa.BigInteger()
    inherit_cache = True


@compiles(row_checksum, "duckdb")
def _duckdb_checksum(element, compiler, **kw):
    return f"CAST(hash({compiler.process(element.clauses, **kw)}) % {_MODULUS} AS BIGINT)"


@compiles(row_checksum, "postgresql")
def _postgresql_checksum(element, compiler, **kw):
    return f"CAST(hashtext(CAST(ROW({compiler.process(element.clauses, **kw)}) AS TEXT)) AS BIGINT)"


@compiles(row_checksum)
def _unsupported_checksum(element, compiler, **kw):
    raise NotImplementedError(
        f"no row checksum on {compiler.dialect.name}: refresh with full_refresh=True there"
    )


def rows_checksum(table: sa.Table, rows: FromClause | None = None) -> ColumnElement:
    """The sum of the checksums of the grouped rows of ``table``, over its declared columns:
    lineage columns such as ``_loaded_at`` are left out, so a re-pull that brings the same
    numbers changes nothing. ``rows`` is a subquery passing ``table``'s columns through
    (with others): its columns of those names are read instead, giving the same sums."""
    names = [c.name for c in table.c if c.name not in LINEAGE_COLUMNS]
    of = table if rows is None else rows
    return sa.cast(sa.func.sum(row_checksum(*[of.c[n] for n in names])), sa.BigInteger)
