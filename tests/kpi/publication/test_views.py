"""The readers' views are made again only when their SQL can have changed (a stamp of the
catalog, layout, code and dialect in ``refresh_state``), on both warehouses: a daily run
with the same definitions runs no CREATE VIEW, and a view dropped or replaced, a comment
edited or a definition changed since is put right by the next run."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from kpi.compute.tables import KpiTables
from kpi.language.loader import load_catalog
from kpi.publication.claims import refresh_claims_view
from kpi.publication.unmapped import refresh_unmapped_view
from kpi.refresh import refresh_scorecard_view
from kpi.warehouse.comments import stored_comments
from kpi.warehouse.connection import Warehouse

REFRESH = {
    "kpi.conversion_claims": refresh_claims_view,
    "kpi.unmapped_dimension_values": refresh_unmapped_view,
    "kpi.kpi_scorecard": refresh_scorecard_view,
}


class Statements:
    """The SQL an engine runs (a SQLAlchemy event on the real engine, nothing replaced)."""

    def __init__(self, engine: sa.Engine):
        self.seen: list[str] = []
        sa.event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, parameters, context, executemany):
        self.seen.append(" ".join(statement.split()))

    def creating(self, name: str) -> list[str]:
        return [s for s in self.seen if s.startswith("CREATE") and f" VIEW {name} " in s]

    def commenting(self) -> list[str]:
        return [s for s in self.seen if s.startswith("COMMENT ON")]


def _tables() -> KpiTables:
    return KpiTables.for_catalog(load_catalog(), use_cubes=True)


@pytest.fixture
def wh(warehouse_url):
    """A real warehouse (DuckDB file, PostgreSQL database) with the KPI tables, empty."""
    warehouse = Warehouse(warehouse_url)
    warehouse.ensure_tables(_tables().all_tables())
    yield warehouse
    warehouse.dispose()


def _comments(wh: Warehouse, name: str) -> dict:
    schema, view = name.split(".")
    with wh.engine.connect() as conn:
        return {k: v for k, v in stored_comments(conn, schema).items() if k[0] == view}


@pytest.mark.parametrize("name", sorted(REFRESH))
def test_a_view_whose_sql_cannot_have_changed_is_kept(wh, name):
    tables, refresh = _tables(), REFRESH[name]
    seen = Statements(wh.engine)
    assert refresh(wh, tables) == name
    assert len(seen.creating(name)) == 1
    made = _comments(wh, name)
    assert made[(name.split(".")[1], None)]  # the view's own comment, and its columns'
    assert len(made) > 3
    seen.seen.clear()
    assert refresh(wh, tables) == name
    assert seen.creating(name) == [] and seen.commenting() == []
    assert _comments(wh, name) == made
    wh.rows(sa.text(f"SELECT * FROM {name}"))  # still a view that reads


@pytest.mark.parametrize("name", sorted(REFRESH))
def test_a_view_dropped_or_a_comment_edited_is_put_right(wh, name):
    tables, refresh = _tables(), REFRESH[name]
    refresh(wh, tables)
    made = _comments(wh, name)
    view = name.split(".")[1]
    with wh.transaction() as conn:
        conn.execute(sa.text(f"COMMENT ON VIEW {name} IS 'edited by hand'"))
    seen = Statements(wh.engine)
    refresh(wh, tables)
    assert seen.creating(name) == [] and len(seen.commenting()) == 1
    assert _comments(wh, name) == made
    with wh.transaction() as conn:
        conn.execute(sa.text(f"DROP VIEW {name}"))
    seen.seen.clear()
    refresh(wh, tables)
    assert len(seen.creating(name)) == 1
    assert _comments(wh, name) == made and (view, None) in made


@pytest.mark.parametrize("name", sorted(REFRESH))
def test_a_view_replaced_by_other_sql_is_made_again(wh, name):
    # By hand, or by an older version of this code (which made the views without a stamp):
    # the definition the warehouse holds is not the one stamped.
    tables, refresh = _tables(), REFRESH[name]
    refresh(wh, tables)
    made = _comments(wh, name)
    with wh.transaction() as conn:
        conn.execute(sa.text(f"DROP VIEW {name}"))
        conn.execute(sa.text(f"CREATE VIEW {name} AS SELECT 1 AS other"))
    seen = Statements(wh.engine)
    refresh(wh, tables)
    # PostgreSQL cannot replace a view of other columns: it drops and creates it (two).
    assert seen.creating(name)
    assert _comments(wh, name) == made  # our columns again, each with its comment


def test_a_changed_definition_makes_the_views_again(wh):
    # Another catalog (a KPI's name changed) is another stamp: every view is made again.
    tables = _tables()
    for refresh in REFRESH.values():
        refresh(wh, tables)
    catalog = load_catalog()
    kpi = catalog.kpis["sessions"]
    catalog.kpis["sessions"] = kpi.model_copy(update={"name": kpi.name + " (renamed)"})
    changed = KpiTables.for_catalog(catalog, use_cubes=True)
    seen = Statements(wh.engine)
    for name, refresh in REFRESH.items():
        assert refresh(wh, changed) == name
        assert len(seen.creating(name)) == 1
