"""On PostgreSQL every table with a natural key has a unique index on it
(kpi.warehouse.schema.unique_key): a second row with the same key is refused whatever writes
it, a NULL key part included (NULLS NOT DISTINCT). ensure_tables adds the index to tables
made before it, and refuses clearly when their rows already break the key. DuckDB has no
such index (too slow there)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

import kpi.warehouse.connection
from kpi.compute.tables import KpiTables
from kpi.language.loader import load_catalog
from kpi.refresh import (
    refresh_anomalies,
    refresh_catalog,
    refresh_comparisons,
    refresh_kpi_values,
    refresh_periods,
    refresh_targets,
)
from kpi.warehouse.connection import Warehouse

pytestmark = pytest.mark.postgres

NOW = dt.datetime(2026, 3, 11, 6, tzinfo=dt.UTC)
DAY = dt.date(2026, 3, 2)


@pytest.fixture
def tables() -> KpiTables:
    return KpiTables.for_catalog(load_catalog(), use_cubes=True)


def _value_row(tables: KpiTables, **dims) -> dict:
    row = {
        "kpi_id": "sessions",
        "grain": "day",
        "period_start": DAY,
        "period_end": DAY,
        "is_complete_period": True,
        "value": 1.0,
        "definition_version": "v1",
        "computed_at": NOW,
    }
    return {**row, **{d: dims.get(d) for d in tables.catalog.dimensions}}


def _comparison_row(tables: KpiTables, **dims) -> dict:
    row = {
        "kpi_id": "sessions",
        "kpi_name": "Sessions",
        "area": "marketing",
        "direction": "higher_is_better",
        "grain": "day",
        "period_start": DAY,
        "period_end": DAY,
        "is_complete_period": True,
        "actual": 1.0,
        "status": "no_target",
        "definition_version": "v1",
        "computed_at": NOW,
    }
    return {**row, **{d: dims.get(d) for d in tables.catalog.dimensions}}


def _traffic_row(campaign: str | None = "spring") -> dict:
    return {
        "property_id": "1",
        "date": DAY,
        "session_default_channel_group": "Paid Search",
        "session_source": "google",
        "session_medium": "cpc",
        "session_campaign_name": campaign,
        "device_category": "mobile",
        "sessions": 5,
        "_source_file": "t",
        "_source_line": 2,
        "_run_id": "t",
    }


def _insert(wh: Warehouse, table: sa.Table, *rows: dict) -> None:
    with wh.transaction() as conn:
        conn.execute(table.insert(), list(rows))


def _indexes(wh: Warehouse) -> dict[str, str]:
    """name -> definition of every index in the raw, kpi and kpi_work schemas."""
    query = sa.text(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname IN ('raw', 'kpi', 'kpi_work')"
    )
    with wh.engine.connect() as conn:
        return dict(conn.execute(query).all())


def _table_key_cases(tables: KpiTables):
    dims = tables.catalog.dimensions
    return [
        # The total row: every dimension NULL, twice.
        (tables.values, _value_row(tables), _value_row(tables)),
        # A slice row, twice.
        (
            tables.values,
            _value_row(tables, channel="Paid Search"),
            _value_row(tables, channel="Paid Search"),
        ),
        (tables.comparisons, _comparison_row(tables), _comparison_row(tables)),
        (
            tables.comparisons,
            _comparison_row(tables, **{dims[-1]: "x"}),
            _comparison_row(tables, **{dims[-1]: "x"}),
        ),
        (tables.raw_tables["ga4_traffic"], _traffic_row(), _traffic_row()),
        # A NULL key part equals another NULL (NULLS NOT DISTINCT).
        (tables.raw_tables["ga4_traffic"], _traffic_row(None), _traffic_row(None)),
    ]


@pytest.mark.parametrize("case", range(6))
def test_a_second_row_with_the_same_key_is_refused(postgres_url, tables, case) -> None:
    wh = Warehouse(postgres_url)
    wh.ensure_tables(tables.all_tables())
    table, first, second = _table_key_cases(tables)[case]
    _insert(wh, table, first)
    with pytest.raises(sa.exc.IntegrityError, match="__key"):
        _insert(wh, table, second)
    assert wh.count(table) == 1
    wh.dispose()


def test_rows_that_differ_in_one_key_part_are_both_kept(postgres_url, tables) -> None:
    """The total row and a slice row of the same KPI and period, and a NULL against a value:
    different keys."""
    wh = Warehouse(postgres_url)
    wh.ensure_tables(tables.all_tables())
    _insert(
        wh,
        tables.values,
        _value_row(tables),
        _value_row(tables, channel="Paid Search"),
        _value_row(tables, device="mobile"),
        {**_value_row(tables), "grain": "week"},
    )
    _insert(wh, tables.raw_tables["ga4_traffic"], _traffic_row(None), _traffic_row("spring"))
    assert wh.count(tables.values) == 4
    assert wh.count(tables.raw_tables["ga4_traffic"]) == 2
    wh.dispose()


def test_every_keyed_table_has_its_unique_index(postgres_url, tables) -> None:
    wh = Warehouse(postgres_url)
    wh.ensure_tables(tables.all_tables())
    found = _indexes(wh)
    dims = ", ".join(tables.catalog.dimensions)
    assert (
        "(kpi_id, grain, period_start, " + dims + ") NULLS NOT DISTINCT" in found["kpi_values__key"]
    )
    assert found["kpi_values__key"].startswith("CREATE UNIQUE INDEX")
    assert "(kpi_id, grain, period_start, " + dims + ")" in found["kpi_comparisons__key"]
    for name in (
        "periods",
        "day_periods",
        "kpi_targets",
        "kpi_catalog",
        "kpi_changes",
        "kpi_anomalies",
    ):
        assert f"{name}__key" in found, name
    for name, src in tables.catalog.sources.items():
        if src.union_of:  # a view over its members' tables: their keys hold
            assert f"{src.table_name}__key" not in found, name
            continue
        index = found[f"{src.table_name}__key"]
        assert f"({', '.join(src.key)}) NULLS NOT DISTINCT" in index, name
    wh.dispose()


def test_ensure_tables_adds_the_index_to_an_older_table(postgres_url, tables) -> None:
    """A warehouse made before the keys: ensure_tables adds them, and a second call is a
    no-op."""
    wh = Warehouse(postgres_url)
    old = sa.MetaData()
    values = tables.values.to_metadata(old)
    for index in list(values.indexes):
        values.indexes.discard(index)
    wh.ensure_tables([values])
    assert "kpi_values__key" not in _indexes(wh)
    _insert(wh, values, _value_row(tables))

    wh.ensure_tables(tables.all_tables())
    wh.ensure_tables(tables.all_tables())
    assert "kpi_values__key" in _indexes(wh)
    assert wh.count(tables.values) == 1
    with pytest.raises(sa.exc.IntegrityError):
        _insert(wh, tables.values, _value_row(tables))
    wh.dispose()


def test_ensure_tables_names_the_table_and_key_an_older_table_breaks(postgres_url, tables):
    wh = Warehouse(postgres_url)
    old = sa.MetaData()
    raw = tables.raw_tables["ga4_traffic"].to_metadata(old)
    for index in list(raw.indexes):
        raw.indexes.discard(index)
    wh.ensure_tables([raw])
    _insert(wh, raw, _traffic_row(None), _traffic_row(None), _traffic_row("spring"))

    with pytest.raises(kpi.warehouse.connection.DuplicateKeyError) as caught:
        wh.ensure_tables(tables.all_tables())
    message = str(caught.value)
    assert "raw.ga4_traffic" in message
    assert ", ".join(tables.catalog.sources["ga4_traffic"].key) in message
    assert "1 key" in message and "2 rows" in message
    # Nothing of the failed call was kept: the other tables were not created either.
    assert "kpi_values__key" not in _indexes(wh)
    wh.dispose()


@pytest.mark.slow
def test_a_full_refresh_writes_under_the_keys(postgres_url, tables) -> None:
    """Every KPI table refreshed twice, over loaded raw rows: the keys refuse nothing."""
    wh = Warehouse(postgres_url)
    wh.ensure_tables(tables.all_tables())
    rows = [
        {**_traffic_row(c), "date": DAY + dt.timedelta(days=i)}
        for i in range(10)
        for c in ("spring", None, "autumn")
    ]
    _insert(wh, tables.raw_tables["ga4_traffic"], *rows)
    for _ in range(2):
        periods = refresh_periods(wh, tables, DAY + dt.timedelta(days=9))
        refresh_catalog(wh, tables, now=NOW)
        refresh_kpi_values(wh, tables, computed_at=NOW)
        refresh_targets(wh, tables, periods)
        refresh_comparisons(wh, tables, computed_at=NOW)
        refresh_anomalies(wh, tables)
    assert wh.count(tables.values) > 0
    assert wh.count(tables.comparisons) > 0
    wh.dispose()
