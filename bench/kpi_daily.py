"""Benchmark: daily runs on the kpi_bench file (10M GA4 rows by default).

After a full refresh of the 14 bench KPIs (``kpi_bench.BENCH_KPIS``, day, week and month),
each daily run adds one more day of rows (a copy of the as-of date's GA4 traffic and ad
spend, dated the next day), then refreshes as the schedule does: the calendar as of the new
day and the KPI values incrementally (``kpi.refresh``, in process: the values of the open
periods are recomputed, the cubes rewritten from the new day). The floor answers the whole
question again on the longer table (``kpi_bench.floor_statements``), as a person's
hand-written SQL would. The fastest of ``--repeat`` daily runs of each is reported, and
after the last one every row of ours is compared with the floor's.

    .venv/bin/python bench/kpi_daily.py --db /tmp/b10m/b.duckdb   # a file kpi_bench --keep made
    .venv/bin/python bench/kpi_daily.py --rows 1000000             # generates one first

The file given is copied, never changed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import kpi_bench as kb  # bench/ is sys.path[0] when this runs; it puts the project on it

COMPUTED_AT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def add_day(db: Path, day: dt.date) -> int:
    """Copy the as-of date's GA4 traffic and ad spend rows to ``day``; GA4 rows added."""
    import duckdb

    con = duckdb.connect(str(db))
    try:
        added = [
            con.execute(
                f"INSERT INTO {table} SELECT * REPLACE (DATE '{day}' AS date) FROM {table} "
                f"WHERE date = DATE '{kb.AS_OF}'"
            ).fetchone()[0]  # DuckDB answers an INSERT with the rows it inserted
            for table in ("raw.ga4_traffic", "raw.ad_spend")
        ]
        return added[0]
    finally:
        con.close()


def refresh(db: Path, tables, as_of: dt.date, full: bool) -> tuple[float, float]:
    """The calendar and the KPI values as of ``as_of`` (``full``: from scratch); seconds of
    each, in process (opening the file and making sure of the tables are not counted)."""
    from kpi.refresh import refresh_calendar, refresh_kpi_values
    from kpi.warehouse.connection import Warehouse

    wh = Warehouse(f"duckdb:///{db}")
    try:
        wh.ensure_tables(tables.all_tables())
        began = time.perf_counter()
        refresh_calendar(wh, tables, as_of, full_refresh=full)
        calendar = time.perf_counter()
        refresh_kpi_values(
            wh, tables, list(kb.BENCH_KPIS), computed_at=COMPUTED_AT, full_refresh=full
        )
        done = time.perf_counter()
    finally:
        wh.dispose()
    return calendar - began, done - calendar


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="a DuckDB file kpi_bench.py made (--keep)")
    parser.add_argument("--rows", type=int, default=10_000_000, help="GA4 rows, without --db")
    parser.add_argument("--days", type=int, default=1096, help="days of data, without --db")
    parser.add_argument("--repeat", type=int, default=5, help="daily runs (one new day each)")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="kpi_daily_"))
    work = root / "daily.duckdb"
    try:
        if args.db is not None:
            kb._check_is_bench_db(args.db)
            shutil.copy(args.db, work)
        else:
            began = time.perf_counter()
            counts = kb.generate(work, args.rows, args.days)
            print(f"generated {counts} in {time.perf_counter() - began:.1f} s")
        import duckdb

        con = duckdb.connect(str(work), read_only=True)
        rows = con.execute("SELECT count(*) FROM raw.ga4_traffic").fetchone()[0]
        con.close()
        tables = kb.bench_tables()
        calendar, values = refresh(work, tables, kb.AS_OF, full=True)
        print(f"{rows:,} GA4 rows; full refresh {calendar + values:.3f} s, then daily runs:")
        print(
            f"{'day':12}{'GA4 rows +':>12}{'floor s':>9}{'ours s':>9}{'calendar':>10}"
            f"{'values':>9}{'x floor':>9}"
        )
        best_floor = best_ours = math.inf
        for k in range(1, args.repeat + 1):
            day = kb.AS_OF + dt.timedelta(days=k)
            added = add_day(work, day)
            calendar, values = refresh(work, tables, day, full=False)
            began = time.perf_counter()
            kb.run_floor(work, day)
            floor = time.perf_counter() - began
            ours = calendar + values
            best_floor, best_ours = min(best_floor, floor), min(best_ours, ours)
            print(
                f"{day.isoformat():12}{added:>12,}{floor:9.3f}{ours:9.3f}{calendar:10.3f}"
                f"{values:9.3f}{ours / floor:9.2f}"
            )
        print(
            f"{'fastest':12}{'':>12}{best_floor:9.3f}{best_ours:9.3f}{'':>19}"
            f"{best_ours / best_floor:9.2f}"
        )
        lines = kb.compare(work, ["floor", "ours"])
        print(lines[0])
        return 0 if lines[0].endswith("AGREE") else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
