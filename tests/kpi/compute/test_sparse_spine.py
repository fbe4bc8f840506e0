"""A sparse slice's spine carries its periods' columns (kpi.compute.compiler): no part of a
KPI joins the periods table to the spine again.

That join, on period_start, was of a DISTINCT's output, a column PostgreSQL has no
statistics for: it took the join for one row, and nested the parts of a ratio or derived
KPI over it. In the differential test's seed 910012 (a derived KPI over two sources, by
channel x campaign by month, 244 combinations) each part's window join ran 30,000 times:
the kpi_values statement took 5 s instead of 1 (no timing is asserted here; the plan
shape is). The values themselves are the hand-worked ones of
tests/kpi_cases/sparse_slices.yaml, on both warehouses (test_kpi_cases.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import visitors
from sqlalchemy.sql.selectable import Alias, CompoundSelect, Join, Subquery

from kpi.cli import load_dialect
from kpi.compute.compiler import SPINE_PERIOD_PREFIX
from kpi.compute.tables import KpiTables
from kpi.language.loader import load_catalog

CASE = Path(__file__).resolve().parents[2] / "kpi_cases" / "sparse_slices.yaml"


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> KpiTables:
    case = yaml.safe_load(CASE.read_text())
    folder = tmp_path_factory.mktemp("defs")
    sources = {k: case[k] for k in ("dimensions", "sources")}
    (folder / "sources.yaml").write_text(
        yaml.safe_dump({"reporting": {"time_zone": "UTC"}, **sources})
    )
    (folder / "test.yaml").write_text(yaml.safe_dump({"area": "test", "kpis": case["kpis"]}))
    return KpiTables.for_catalog(load_catalog(folder))


def _periods_joined_to_a_spine(select: sa.Select, periods: sa.Table) -> list[Join]:
    """The joins of an alias of ``periods`` with a spine (the periods and values with data:
    a SELECT DISTINCT, or a union of them), anywhere in ``select``."""

    def is_periods(side) -> bool:
        return isinstance(side, Alias) and side.element is periods

    def is_spine(side) -> bool:
        # Not the days with data the spine is made of: (day, dimension values).
        if not isinstance(side, Subquery) or "day" in side.c:
            return False
        if isinstance(side.element, CompoundSelect):  # one part per window read
            return True
        sql = str(side.element.compile(dialect=postgresql.dialect())).lstrip()
        return sql.startswith("SELECT DISTINCT")

    return [
        node
        for node in visitors.iterate(select)
        if isinstance(node, Join)
        and (
            (is_periods(node.left) and is_spine(node.right))
            or (is_periods(node.right) and is_spine(node.left))
        )
    ]


@pytest.mark.parametrize(
    ("kpi_id", "dims"),
    [
        ("revenue", ("campaign",)),
        ("revenue_per_session", ("channel", "campaign")),  # two parts, two sources
        ("revenue_7d", ("campaign",)),  # a running window
        ("revenue_dod", ("campaign",)),  # the day before
    ],
)
def test_no_part_joins_the_periods_to_the_sparse_spine(tables, kpi_id, dims):
    compiler = tables.compiler
    kpi = compiler.catalog.kpis[kpi_id]
    assert compiler.catalog.is_sparse(dims)
    for grain in kpi.grains:
        select = compiler.compile(kpi_id, grain, dims)
        sql = str(select.compile(dialect=postgresql.dialect()))
        assert SPINE_PERIOD_PREFIX in sql, (kpi_id, grain)  # the spine, with its periods
        assert _periods_joined_to_a_spine(select, compiler.periods) == [], (kpi_id, grain)


def test_a_dense_slice_keeps_every_period_crossed_with_its_values(tables):
    # The dense slice is not built on a spine of data: nothing to carry there.
    select = tables.compiler.compile("revenue", "day", ("channel",))
    sql = str(select.compile(dialect=postgresql.dialect()))
    assert SPINE_PERIOD_PREFIX not in sql


def test_the_spine_is_distinct_on_its_period_and_values_on_duckdb_only(tables):
    # DuckDB hashes the keys instead of the periods' 32 columns; PostgreSQL, which sorts
    # for DISTINCT ON and took twice as long with it, keeps the plain DISTINCT
    # (kpi/warehouse/distinct_on.py).

    select = tables.compiler.compile("revenue_7d", "day", ("campaign",))
    duck = str(select.compile(dialect=load_dialect("duckdb")[0]))
    pg = str(select.compile(dialect=postgresql.dialect()))
    assert re.search(r"SELECT DISTINCT ON \(periods_\d+\.period_start, anon_\d+\.campaign\) ", duck)
    assert "DISTINCT ON" not in pg and "SELECT DISTINCT" in pg
