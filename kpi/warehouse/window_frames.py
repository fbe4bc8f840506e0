"""A window aggregate over the rows up to the current one, its frame written as literals.

SQLAlchemy's ``over(rows=(-6, 0))`` sends the 6 as a bound parameter. DuckDB and
PostgreSQL take that; whether BigQuery takes a query parameter as a frame bound its
documentation does not say, and Snowflake's dialect writes it inline anyway. The frames a
running total needs are fixed by its definition (kpi.compute.rollups), so they are written
into the SQL as the integers they are, on every warehouse.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement


class running_over(FunctionElement):
    """``aggregate`` over the rows of its partition (``partition_by``, ordered by
    ``order_by``) from ``preceding`` rows before the current one (None: from the first)
    through the current one."""

    # The frame is not an SQL element: the statement cache must not reuse one frame's SQL
    # for another.
    inherit_cache = False
    name = "running_over"

    def __init__(
        self,
        aggregate: ColumnElement,
        partition_by: list[ColumnElement],
        order_by: ColumnElement,
        preceding: int | None,
    ):
        if preceding is not None and (not isinstance(preceding, int) or preceding < 0):
            raise ValueError(f"a frame of {preceding!r} preceding rows")
        self.aggregate, self.partition_by, self.order_by = aggregate, partition_by, order_by
        self.preceding = preceding
        self.type = aggregate.type
        # The elements as the function's clauses: the columns they read are the SELECT's.
        super().__init__(aggregate, *partition_by, order_by)


@compiles(running_over)
def _running_over(element: running_over, compiler: Any, **kw: Any) -> str:
    aggregate = compiler.process(element.aggregate, **kw)
    partition = ", ".join(compiler.process(c, **kw) for c in element.partition_by)
    order = compiler.process(element.order_by, **kw)
    start = "UNBOUNDED" if element.preceding is None else str(int(element.preceding))
    over = f"PARTITION BY {partition} ORDER BY {order}" if partition else f"ORDER BY {order}"
    return f"{aggregate} OVER ({over} ROWS BETWEEN {start} PRECEDING AND CURRENT ROW)"
