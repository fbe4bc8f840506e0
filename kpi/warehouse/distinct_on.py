"""``DISTINCT ON`` where it is the cheaper ``DISTINCT``: on DuckDB only.

A sparse slice's spine (kpi.compute.compiler) is the distinct periods and slice values with
data, and carries the period's other columns, which the period determines. A plain
``DISTINCT`` makes DuckDB hash all of them (32 more columns); ``DISTINCT ON`` the period and
values hashes those: a year-to-date by month x channel x campaign, sparse, on the peer
bench's 1M rows went from 3.9-4.3 to 2.8-3.1 s (alternating, three runs each). PostgreSQL
sorts for ``DISTINCT ON``, and the same refresh took twice as long with it there (3.6 ->
7.0 s on 200 days), so PostgreSQL keeps the plain ``DISTINCT``, as do BigQuery and
Snowflake, which have no ``DISTINCT ON``. The rows are the same either way: the other
columns are functions of the keys.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql.ext import DistinctOnClause
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement


class DistinctOnInDuckDB(DistinctOnClause):
    """``select(...).ext(DistinctOnInDuckDB(keys))``: ``SELECT DISTINCT ON (keys)`` on
    DuckDB, ``SELECT DISTINCT`` elsewhere. Only for columns the keys determine."""

    __visit_name__ = "kpi_distinct_on_in_duckdb"
    inherit_cache = True


@compiles(DistinctOnInDuckDB)
def _plain_distinct(element: DistinctOnInDuckDB, compiler: Any, **kw: Any) -> None:
    return None  # the SELECT is marked DISTINCT already (DistinctOnClause.apply_to_select)


@compiles(DistinctOnInDuckDB, "duckdb")
def _distinct_on(element: DistinctOnInDuckDB, compiler: Any, **kw: Any) -> str:
    keys = ", ".join(compiler.process(key, **kw) for key in element._distinct_on)
    return f"ON ({keys})"


def distinct_on_in_duckdb(*keys: ColumnElement) -> DistinctOnInDuckDB:
    """The extension for ``Select.ext``: distinct on ``keys`` (DuckDB), on all columns
    (elsewhere)."""
    return DistinctOnInDuckDB(keys)
