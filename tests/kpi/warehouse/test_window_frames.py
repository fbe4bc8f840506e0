"""The running window aggregate (kpi/warehouse/window_frames.py): its frame written as
integers in every dialect, and the rows it gives on both warehouses."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from kpi.cli import DIALECTS, load_dialect
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.statements import compile_select
from kpi.warehouse.window_frames import running_over

T = sa.table("t", sa.column("g", sa.String), sa.column("d", sa.Integer), sa.column("x", sa.Float))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_frame_is_written_as_integers_not_parameters(dialect):
    select = sa.select(
        running_over(sa.func.sum(T.c.x), [T.c.g], T.c.d, 6).label("last_7"),
        running_over(sa.func.max(T.c.x), [], T.c.d, None).label("so_far"),
    )
    compiled = compile_select(load_dialect(dialect)[0], select)
    sql = compiled.sql
    assert "ROWS BETWEEN 6 PRECEDING AND CURRENT ROW" in sql, sql
    assert "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW" in sql, sql
    assert not compiled.params, compiled.params


@pytest.mark.parametrize("preceding", [-1, 1.5, "6"])
def test_a_frame_is_a_count_of_rows(preceding):
    with pytest.raises(ValueError, match="preceding rows"):
        running_over(sa.func.sum(T.c.x), [], T.c.d, preceding)


def test_running_sums_and_maxima(warehouse_url):
    wh = Warehouse(warehouse_url)
    try:
        rows = sa.union_all(
            *[
                sa.select(
                    sa.literal(g, sa.String).label("g"),
                    sa.literal(d, sa.Integer).label("d"),
                    sa.literal(x, sa.Float).label("x"),
                )
                for g, d, x in [("a", 1, 1.0), ("a", 2, 2.0), ("a", 3, 4.0), ("b", 1, 8.0)]
            ]
        ).subquery()
        query = sa.select(
            rows.c.g,
            rows.c.d,
            running_over(sa.func.sum(rows.c.x), [rows.c.g], rows.c.d, 1).label("two"),
            running_over(sa.func.max(rows.c.x), [rows.c.g], rows.c.d, None).label("top"),
        ).order_by(rows.c.g, rows.c.d)
        assert wh.rows(query) == [
            ("a", 1, 1.0, 1.0),
            ("a", 2, 3.0, 2.0),
            ("a", 3, 6.0, 4.0),
            ("b", 1, 8.0, 8.0),
        ]
    finally:
        wh.dispose()
