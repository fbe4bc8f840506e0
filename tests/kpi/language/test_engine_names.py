"""``EngineColumnNameRule``'s list holds every name the engine puts beside the dimensions.

The rule refuses a conformed dimension named like a column of the engine's tables and
statements. Its list is written out in the language package (which knows nothing of the
SQL); here every statement the engine compiles for two catalogues (the shipped one and one
with the KPI types it lacks) and every table holding dimension columns are walked, and
each column or label found beside the dimensions must be on the list, or the list is out
of date and a dimension of that name would fail at its first refresh instead of at load.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import Label

from kpi.compute.tables import KpiTables
from kpi.language.catalog import Catalog
from kpi.language.loader import load_catalog
from kpi.language.models import RESERVED_COLUMN_PREFIX
from kpi.language.rules.engine_names import ENGINE_COLUMNS, ENGINE_PATTERN
from kpi.status.comparisons import comparison_select

SOURCES_YAML = """\
reporting: {time_zone: UTC, week_start: monday}
dimensions:
  channel: {description: channel}
  campaign: {description: campaign}
sources:
  daily:
    table: raw.daily
    time: {column: date, type: date, time_zone: UTC}
    columns:
      date: {type: date}
      channel: {type: string}
      campaign: {type: string}
      customer: {type: string}
      sessions: {type: integer, additivity: additive}
      balance: {type: number, additivity: semi_additive}
    dimensions:
      channel: {column: channel}
      campaign: {column: campaign}
"""

KPIS_YAML = """\
area: test
kpis:
  - id: sessions
    name: Sessions
    description: a sum by one dimension and by two
    owner: t@example.com
    unit: count
    direction: higher_is_better
    type: simple
    measure: {source: daily, agg: sum, expr: sessions}
    dimensions: [channel, [channel, campaign]]
    grains: [day, week, month]
  - id: balance
    name: Balance
    description: the last balance of a period
    owner: t@example.com
    unit: currency
    direction: higher_is_better
    type: simple
    measure: {source: daily, agg: last, expr: balance}
    dimensions: [channel]
    grains: [day, month]
  - id: customers
    name: Customers
    description: distinct customers
    owner: t@example.com
    unit: count
    direction: higher_is_better
    type: simple
    measure: {source: daily, agg: count_distinct, expr: customer}
    dimensions: [campaign]
    grains: [week, month]
  - id: sessions_rolling_7
    name: Sessions, last 7 days
    description: a rolling window
    owner: t@example.com
    unit: count
    direction: higher_is_better
    type: cumulative
    cumulative: {of: sessions, window_days: 7}
    grains: [day, week]
  - id: sessions_vs_a_week_ago
    name: Sessions against a week earlier
    description: a growth over a fixed offset
    owner: t@example.com
    unit: percent
    direction: higher_is_better
    type: period_over_period
    period_over_period: {of: sessions, offset: 7 days}
    dimensions: [channel]
    grains: [day]
"""


# Labels of subqueries that hold no dimension column beside them: the rollups' slice key
# (beside its ``v_<dimension>`` columns) and the sources' first day (alone in its CTE). A
# dimension of such a name loads and refreshes (helper review, on DuckDB): not refused.
APART = {"slice", "first_day"}


def _catalogs(tmp_path) -> list[Catalog]:
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "sources.yaml").write_text(SOURCES_YAML)
    (folder / "test.yaml").write_text(KPIS_YAML)
    return [load_catalog(), load_catalog(folder)]


def _beside_dimensions(catalog: Catalog) -> set[str]:
    """Every column and label of a statement or table that also holds a dimension column,
    and every label of any statement (a subquery's labels sit beside its dimensions)."""
    found: set[str] = set()
    raw: set[str] = set()
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def walk(statement) -> None:
        for element in visitors.iterate(statement, {}):
            if isinstance(element, Label):
                found.add(element.name)
            elif isinstance(element, sa.Select):
                found.update(c.key for c in element.selected_columns)

    for use_cubes in (True, False):
        tables = KpiTables.for_catalog(catalog, use_cubes=use_cubes)
        compiler = tables.compiler
        raw |= {c.name for t in tables.raw_tables.values() for c in t.columns}
        for kpi_id, kpi in catalog.kpis.items():
            for grain in kpi.grains:  # a day to start from changes filters, not columns
                slices = compiler.slices(kpi)
                walk(
                    comparison_select(
                        compiler, kpi, str(grain), slices, tables.values, tables.targets, now,
                        changes=tables.changes, compared=tables.compared_windows,
                    )
                )  # fmt: skip
                for dims in slices:
                    walk(compiler.compile(kpi_id, grain, dims, computed_at=now))
        dimensional = [t for t in tables.all_tables() if t.schema != "raw"]
        if use_cubes:
            fused = [k for k, kpi in catalog.kpis.items() if tables.rollups.fusable(kpi)]
            walk(tables.rollups.values_select(fused, now))
            walk(tables.compared_windows.compared_select(list(catalog.kpis)))
            dimensional += [*compiler.cubes.tables.values(), *compiler.cubes.month_tables.values()]
        for table in dimensional:
            if any(d in table.c for d in catalog.dimensions):
                found.update(c.name for c in table.columns)
    # Raw source columns are the user's own names, read only inside their source's rows.
    return found - raw - set(catalog.dimensions)


def test_every_name_beside_the_dimensions_is_on_the_rules_list(tmp_path):
    missing = set()
    for catalog in _catalogs(tmp_path):
        names = _beside_dimensions(catalog)
        assert {"value", "status", "day", "judged", "window_offset"} <= names  # it found them
        dims = catalog.dimensions
        positional = {n for n in names if ENGINE_PATTERN.search(n)}
        keyed = {n for n in names if n[:2] in ("v_", "o_") and n[2:] in dims}  # per dimension
        cube = {n for n in names if n.startswith(RESERVED_COLUMN_PREFIX)}
        missing |= names - positional - keyed - cube - APART - ENGINE_COLUMNS
    assert not missing, f"add to ENGINE_COLUMNS (kpi/language/rules/engine_names.py): {missing}"
