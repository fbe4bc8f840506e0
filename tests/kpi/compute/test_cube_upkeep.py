"""The cubes kept current in part (kpi/compute/cube_upkeep.py): from which day a monthly
cube is computed again, and that after each kind of incremental run (a revised day, a new
day, the as-of date moving on, back, and into a new month, a new campaign, a deleted day)
the daily and monthly cubes hold the rows of their whole statements and the KPIs those of
the per-KPI queries on the raw rows, on both warehouses, without being rebuilt; and that a
cube dropped by hand, its stamp left behind, is rebuilt."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from kpi.compute.cube_upkeep import REBUILD, MonthCubeStamp, month_cube_start
from kpi.compute.tables import KpiTables
from kpi.language.loader import load_catalog
from kpi.refresh import refresh_kpi_values, refresh_periods
from kpi.warehouse.connection import Warehouse
from tests.kpi.compute.per_kpi import assert_same, per_kpi_rows, stored_rows

D = dt.date
COMPUTED_AT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _month(day: dt.date) -> dt.date | None:
    """The calendar of the pure cases: every day from 1 January 2026 to 31 March."""
    return day.replace(day=1) if D(2026, 1, 1) <= day <= D(2026, 3, 31) else None


STAMP = MonthCubeStamp("s", D(2026, 1, 1), D(2026, 3, 10))

# (what the cube was made with, what it would be made with now, first changed day, start)
START_CASES = {
    "no stamp": (None, STAMP, None, REBUILD),
    "another statement": (STAMP, MonthCubeStamp("t", STAMP.first, STAMP.last), None, REBUILD),
    "another first day": (STAMP, MonthCubeStamp("s", D(2025, 12, 1), STAMP.last), None, REBUILD),
    "nothing changed": (STAMP, STAMP, None, None),
    "a changed day: its month": (STAMP, STAMP, D(2026, 2, 10), D(2026, 2, 1)),
    "a changed day after the calendar: that day": (STAMP, STAMP, D(2026, 3, 12), D(2026, 3, 12)),
    "a changed day before the calendar": (STAMP, STAMP, D(2025, 12, 31), REBUILD),
    "the as-of date on: the month holding the old one": (
        STAMP,
        MonthCubeStamp("s", STAMP.first, D(2026, 3, 11)),
        None,
        D(2026, 3, 1),
    ),
    "the as-of date back: the month holding the new one": (
        STAMP,
        MonthCubeStamp("s", STAMP.first, D(2026, 3, 5)),
        None,
        D(2026, 3, 1),
    ),
    "the as-of date into a new month: its first day": (
        MonthCubeStamp("s", STAMP.first, D(2026, 2, 28)),
        MonthCubeStamp("s", STAMP.first, D(2026, 3, 1)),
        None,
        D(2026, 3, 1),
    ),
    "the as-of date and an earlier change: the earlier": (
        STAMP,
        MonthCubeStamp("s", STAMP.first, D(2026, 3, 11)),
        D(2026, 1, 20),
        D(2026, 1, 1),
    ),
    "a day the calendar lacks": (
        MonthCubeStamp("s", STAMP.first, D(2026, 4, 10)),
        MonthCubeStamp("s", STAMP.first, D(2026, 4, 11)),
        None,
        REBUILD,
    ),
    "no calendar then": (
        MonthCubeStamp("s", None, None),
        MonthCubeStamp("s", None, None),
        None,
        REBUILD,
    ),
}


@pytest.mark.parametrize("case", START_CASES)
def test_the_first_day_a_monthly_cube_is_computed_again_from(case):
    old, new, changed, start = START_CASES[case]
    assert month_cube_start(old, new, changed, _month) == start


def test_a_stamp_reads_back_and_a_foreign_one_is_none():
    assert MonthCubeStamp.decode(STAMP.encode()) == STAMP
    assert MonthCubeStamp.decode(None) is None
    assert MonthCubeStamp.decode("count:123") is None


def _catalogue(folder: Path, use_cubes: bool = True) -> KpiTables:
    """Revenue by day and month by channel (the daily cube), and by month and quarter by
    channel x campaign (a slice only month-grained KPIs read: the monthly cube)."""
    folder.mkdir(exist_ok=True)
    string = {"type": "string"}
    sources = {
        "reporting": {"time_zone": "UTC"},
        "dimensions": {"channel": {}, "campaign": {}},
        "sources": {
            "sales": {
                "table": "raw.sales",
                "time": {"column": "date", "type": "date", "time_zone": "UTC"},
                "columns": {
                    "date": {"type": "date"},
                    "channel": string,
                    "campaign": string,
                    "amount": {"type": "number", "additivity": "additive"},
                },
                "dimensions": {
                    "channel": {"column": "channel"},
                    "campaign": {"column": "campaign"},
                },
            }
        },
    }
    amount = {"source": "sales", "agg": "sum", "expr": "amount"}

    def kpi(kpi_id: str, grains: list[str], dims: list) -> dict:
        return {
            "id": kpi_id,
            "name": kpi_id,
            "description": "revenue",
            "owner": "t@example.com",
            "unit": "currency",
            "direction": "higher_is_better",
            "grains": grains,
            "dimensions": dims,
            "type": "simple",
            "measure": amount,
        }

    kpis = [
        kpi("revenue", ["day", "month"], ["channel"]),
        kpi("campaign_revenue", ["month", "quarter"], [["channel", "campaign"]]),
    ]
    (folder / "sources.yaml").write_text(yaml.safe_dump(sources))
    (folder / "test.yaml").write_text(yaml.safe_dump({"area": "test", "kpis": kpis}))
    return KpiTables.for_catalog(load_catalog(folder), use_cubes=use_cubes)


def _sales(
    first: dt.date, last: dt.date, campaigns: tuple[str, ...] = ("c1", "c2")
) -> pd.DataFrame:
    rows = [
        (first + dt.timedelta(days=i), channel, campaign, float(10 + (i * 7 + j * 3 + k) % 41))
        for i in range((last - first).days + 1)
        for j, channel in enumerate(("paid", "organic"))
        for k, campaign in enumerate(campaigns)
    ]
    return pd.DataFrame(rows, columns=["date", "channel", "campaign", "amount"])


def _cube_rows(wh: Warehouse, select: sa.Select | sa.Table) -> list[tuple]:
    """Rows in a comparable form (sums rounded: a parallel sum's last bits may differ)."""
    return sorted(
        tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in wh.rows(select)
    )


def test_cubes_kept_in_part_hold_the_rows_of_their_whole_statements(warehouse_url, tmp_path):
    tables = _catalogue(tmp_path / "defs")
    raw = _catalogue(tmp_path / "defs", use_cubes=False)
    cubes = tables.compiler.cubes
    assert list(cubes.month_tables) == list(cubes.tables) == ["sales"]
    day_cube, month_cube = cubes.tables["sales"], cubes.month_tables["sales"]
    sales = tables.raw_tables["sales"]
    wholes = {
        day_cube: cubes.select("sales", checksum=True),
        month_cube: cubes.month_select("sales", tables.compiler.day_periods),
    }
    wh = Warehouse(warehouse_url)
    seen: list[str] = []
    sa.event.listen(wh.engine, "before_cursor_execute", lambda *a: seen.append(a[2].lstrip()))

    def done(cube: sa.Table) -> str:
        name = f"{cube.fullname} "
        rebuilt = [s for s in seen if s.startswith("CREATE TABLE") and name in s]
        rewritten = [s for s in seen if s.startswith("DELETE FROM") and name in s]
        assert len(rewritten) <= 1, rewritten
        return "rebuilt" if rebuilt else "rewritten" if rewritten else "untouched"

    def run(as_of: dt.date, when: str, month: str = "rewritten", day: str = "rewritten") -> None:
        seen.clear()
        refresh_periods(wh, tables, as_of)
        refresh_kpi_values(wh, tables, computed_at=COMPUTED_AT)
        for cube, whole in wholes.items():
            assert _cube_rows(wh, sa.select(cube)) == _cube_rows(wh, whole), (when, cube.name)
        assert_same(stored_rows(wh, tables), per_kpi_rows(wh, raw, COMPUTED_AT), when)
        assert (done(day_cube), done(month_cube)) == (day, month), when

    def change(statement) -> None:
        with wh.transaction() as conn:
            conn.execute(statement)

    try:
        wh.ensure_tables(tables.all_tables())
        # Two days after the as-of date: in no month, each a cube row of its own day.
        wh.replace_rows(sales, None, _sales(D(2026, 1, 1), D(2026, 3, 12)))
        run(D(2026, 3, 10), "the first run", "rebuilt", "rebuilt")
        run(D(2026, 3, 11), "the as-of date on a day: 11 March joins March", day="untouched")
        change(
            sales.update().where(sales.c.date == D(2026, 2, 10)).values(amount=sales.c.amount * 3)
        )
        run(D(2026, 3, 11), "a revised day in February")
        wh.replace_rows(
            sales, sales.c.date == D(2026, 3, 13), _sales(D(2026, 3, 13), D(2026, 3, 13))
        )
        run(D(2026, 3, 12), "a new day and the as-of date on")
        run(D(2026, 3, 5), "the as-of date back: 6 to 12 March leave March", day="untouched")
        new_campaign = _sales(D(2026, 1, 20), D(2026, 1, 20), ("c3",))
        with wh.transaction() as conn:
            Warehouse.insert_rows_in(conn, sales, new_campaign)
        run(D(2026, 3, 12), "a campaign first seen on 20 January")
        april = _sales(D(2026, 3, 14), D(2026, 4, 2))
        wh.replace_rows(sales, sales.c.date >= D(2026, 3, 14), april)
        run(D(2026, 3, 31), "March complete, April's first days after the calendar")
        run(D(2026, 4, 1), "the as-of date into April", day="untouched")
        change(sales.delete().where(sales.c.date == D(2026, 3, 3)))
        run(D(2026, 4, 1), "a day deleted")
        # Their stamps left behind: a kept cube would be a DELETE on no table.
        change(sa.text(f"DROP TABLE {day_cube.fullname}"))
        change(sa.text(f"DROP TABLE {month_cube.fullname}"))
        run(D(2026, 4, 1), "both cubes dropped by hand", "rebuilt", "rebuilt")
        run(D(2026, 4, 1), "nothing new", "untouched", "untouched")
        refresh_kpi_values(wh, tables, computed_at=COMPUTED_AT, full_refresh=True)
        for cube, whole in wholes.items():
            assert _cube_rows(wh, sa.select(cube)) == _cube_rows(wh, whole)
        assert (done(day_cube), done(month_cube)) == ("rebuilt", "rebuilt")
    finally:
        wh.dispose()
