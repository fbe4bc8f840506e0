"""kpi.refresh on a real warehouse: the calendar's first day, and all-or-nothing KPI values."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from kpi.compute.tables import KpiTables
from kpi.language.loader import load_catalog
from kpi.refresh import first_day_of_data, refresh_kpi_values, refresh_periods
from kpi.warehouse.connection import ANALYZE_MIN_ROWS, Warehouse

LOADED = {"_source_file": "t.csv", "_source_line": 2, "_run_id": "t"}


@pytest.fixture
def tables() -> KpiTables:
    return KpiTables.for_catalog(load_catalog(), use_cubes=True)


def _insert(wh: Warehouse, table: sa.Table, **values) -> None:
    required = {c.name: LOADED[c.name] for c in table.c if c.name in LOADED}
    with wh.transaction() as conn:
        conn.execute(table.insert().values(**required, **values))


@pytest.mark.parametrize(
    ("zone", "ordered_at", "ga4_day", "first"),
    [
        # 23:30 UTC on 1 March is 00:30 on 2 March in Copenhagen: the order's local day,
        # not its UTC day, starts the calendar, before GA4's first day.
        ("Europe/Copenhagen", dt.datetime(2026, 3, 1, 23, 30), dt.date(2026, 3, 3), 2),
        # West of UTC: 03:00 UTC on 3 March is still 2 March in New York, the same day as
        # GA4's first DATE. A DATE is read as it is: taken as midnight UTC it would become
        # the evening of 1 March in New York.
        ("America/New_York", dt.datetime(2026, 3, 3, 3, 0), dt.date(2026, 3, 2), 2),
    ],
)
def test_first_day_of_data_is_the_earliest_local_day_of_the_daily_sources(
    warehouse_url, tables, zone, ordered_at, ga4_day, first
):
    tables.catalog.reporting = tables.catalog.reporting.model_copy(update={"time_zone": zone})
    wh = Warehouse(warehouse_url)
    wh.ensure_tables(tables.all_tables())
    raw = tables.raw_tables
    assert first_day_of_data(wh, tables) is None  # every source empty

    _insert(wh, raw["ga4_traffic"], property_id="1", date=ga4_day, sessions=1)
    _insert(
        wh,
        raw["orders"],
        order_id="o1",
        ordered_at=ordered_at.replace(tzinfo=dt.UTC),
        customer_id="c1",
        revenue=10.0,
        currency="EUR",
    )
    # The monthly market row labels a month, not a day with data: left out, although it
    # is earlier still.
    market = tables.catalog.sources["market"]
    assert market.grain == "month"
    _insert(wh, raw["market"], **{market.time.column: dt.date(2026, 1, 1)})
    assert first_day_of_data(wh, tables) == dt.date(2026, 3, first)
    wh.dispose()


def test_kpi_values_are_replaced_all_or_nothing(warehouse_url, tables):
    """A KPI whose query fails leaves every KPI's rows as they were, also the ones computed
    before it in the same refresh (each used to commit on its own)."""
    wh = Warehouse(warehouse_url)
    wh.ensure_tables(tables.all_tables())
    refresh_periods(wh, tables, dt.date(2026, 3, 10))
    first_run = dt.datetime(2026, 3, 11, 6, tzinfo=dt.UTC)
    counts = refresh_kpi_values(wh, tables, computed_at=first_run)
    values = tables.values
    before = wh.read(sa.select(values.c.kpi_id, values.c.computed_at))
    assert len(before) == sum(counts.values()) > 0
    # Break the distinct count of customers (computed from raw orders, after the fused KPIs):
    # its source column disappears.
    assert "unique_customers" in counts and not tables.rollups.fusable(
        tables.catalog.kpis["unique_customers"]
    )
    with wh.transaction() as conn:
        conn.execute(sa.text("ALTER TABLE raw.orders RENAME COLUMN customer_id TO customer"))
    with pytest.raises(sa.exc.DBAPIError):
        refresh_kpi_values(wh, tables, computed_at=first_run + dt.timedelta(days=1))
    after = wh.read(sa.select(values.c.kpi_id, values.c.computed_at))
    assert len(after) == len(before)
    assert set(after["computed_at"].map(lambda t: t.astimezone(dt.UTC))) == {first_run}
    wh.dispose()


def test_the_periods_and_the_day_map_are_replaced_together(warehouse_url, tables):
    """When the day map cannot be written, the periods stay as they were: the KPI SQL joins
    the two, and this run's periods beside the last run's day map would count wrong days."""
    wh = Warehouse(warehouse_url)
    wh.ensure_tables(tables.all_tables())
    _insert(wh, tables.raw_tables["ga4_traffic"], property_id="1", date=dt.date(2026, 3, 1))
    refresh_periods(wh, tables, dt.date(2026, 3, 10))
    periods, day_map = tables.periods, tables.compiler.day_periods
    last_day = sa.select(sa.func.max(periods.c.window_end))
    assert wh.scalar(last_day) == dt.date(2026, 3, 10)
    # A day map that refuses days after 10 March (a hand-made table, on both warehouses).
    with wh.transaction() as conn:
        conn.execute(sa.schema.DropTable(day_map))
        conn.execute(
            sa.text(
                "CREATE TABLE kpi_work.day_periods (grain VARCHAR NOT NULL, day DATE NOT NULL, "
                "period_start DATE NOT NULL, CHECK (day <= DATE '2026-03-10'))"
            )
        )
    with pytest.raises(sa.exc.DBAPIError):
        refresh_periods(wh, tables, dt.date(2026, 3, 12))
    assert wh.scalar(last_day) == dt.date(2026, 3, 10)
    assert wh.count(day_map) == 0  # the hand-made table, still empty
    wh.dispose()


@pytest.mark.postgres
def test_periods_rewritten_whole_are_analyzed_whatever_their_size(postgres_url, tables):
    """Every KPI statement filters the periods tables by grain: without statistics (a new
    warehouse, fewer rows than a bulk write analyzes) PostgreSQL took ``grain = 'week'``
    for 2 rows of 60 and nested loops over a derived KPI's sparse slices (one kpi_values
    statement of the differential test's seed 7008: 98 s instead of 0.2 s)."""
    wh = Warehouse(postgres_url)
    wh.ensure_tables(tables.all_tables())
    _insert(wh, tables.raw_tables["ga4_traffic"], property_id="1", date=dt.date(2026, 1, 1))
    refresh_periods(wh, tables, dt.date(2026, 3, 10))
    for table in (tables.periods, tables.compiler.day_periods):
        name = f"{table.schema}.{table.name}"
        estimated = sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:name)")
        assert 0 < wh.count(table) < ANALYZE_MIN_ROWS  # below the bulk write's threshold
        assert wh.scalar(estimated.bindparams(name=name)) == wh.count(table)
    wh.dispose()
