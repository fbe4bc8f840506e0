"""Two writers of the same slice at once leave one copy of it (kpi.warehouse.locks).

Each test runs the same replace in two threads, each with its own engine (two runs), and
holds both at a barrier just before their first DELETE, so that both transactions are open
at once when nothing serialises them. With the locks the second writer waits inside the
lock, before its DELETE: the first one's barrier times out and it goes on alone.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

import pandas as pd
import pytest
import sqlalchemy as sa

import kpi.warehouse.connection
from kpi.warehouse.connection import Warehouse

WAIT = 3.0  # seconds a writer waits for the other at a barrier before going on alone


def _facts() -> sa.Table:
    return sa.Table(
        "facts",
        sa.MetaData(),
        sa.Column("day", sa.Integer, nullable=False),
        sa.Column("amount", sa.Double),
        schema="raw",
    )


def _hold_before_and_after_delete(wh: Warehouse, before: threading.Barrier, after) -> None:
    """Make ``wh``'s first DELETE wait for the other writer before it runs, and wait again
    after it ran (so that neither commits before both deleted, when nothing serialises)."""
    done = threading.local()

    def wait(barrier: threading.Barrier) -> None:
        # Broken: the other writer is held elsewhere (by the lock), so go on alone.
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(WAIT)

    def before_execute(conn, cursor, statement, *_):
        if statement.lstrip().upper().startswith("DELETE") and not getattr(done, "b", False):
            done.b = True
            wait(before)

    def after_execute(conn, cursor, statement, *_):
        if statement.lstrip().upper().startswith("DELETE") and not getattr(done, "a", False):
            done.a = True
            wait(after)

    sa.event.listen(wh.engine, "before_cursor_execute", before_execute)
    sa.event.listen(wh.engine, "after_cursor_execute", after_execute)


def _race(url: str, write: Callable[[Warehouse], None]) -> list[BaseException]:
    """Run ``write`` in two threads at once, each with its own Warehouse; their errors."""
    before, after = threading.Barrier(2), threading.Barrier(2)
    errors: list[BaseException] = []
    warehouses = [Warehouse(url) for _ in range(2)]
    for wh in warehouses:
        _hold_before_and_after_delete(wh, before, after)

    def run(wh: Warehouse) -> None:
        try:
            write(wh)
        except BaseException as error:  # reported to the test
            errors.append(error)

    threads = [threading.Thread(target=run, args=(wh,)) for wh in warehouses]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a writer never finished"
    for wh in warehouses:
        wh.dispose()
    return errors


def _seeded(url: str) -> sa.Table:
    """raw.facts with day 1 = amounts 1..5 (the slice both writers replace) and day 2 = 3
    rows (a slice nobody touches)."""
    table = _facts()
    wh = Warehouse(url)
    wh.ensure_tables([table])
    wh.replace_rows(
        table, None, pd.DataFrame({"day": [1] * 5 + [2] * 3, "amount": [1, 2, 3, 4, 5, 7, 8, 9]})
    )
    wh.dispose()
    return table


def _day_counts(url: str, table: sa.Table) -> dict[int, int]:
    wh = Warehouse(url)
    q = sa.select(table.c.day, sa.func.count()).group_by(table.c.day)
    counts = dict(wh.rows(q))
    wh.dispose()
    return counts


NEW = pd.DataFrame({"day": [1] * 5, "amount": [10.0, 20.0, 30.0, 40.0, 50.0]})


def _replace_rows(table: sa.Table) -> Callable[[Warehouse], None]:
    return lambda wh: wh.replace_rows(table, table.c.day == 1, NEW)


def _replace_from_select(table: sa.Table) -> Callable[[Warehouse], None]:
    # The new day-1 slice is computed in the warehouse: ten times the day-2 amounts plus
    # two constant rows (7,8,9 -> 70,80,90; 1 and 2): 5 rows.
    source = sa.select(sa.literal(1).label("day"), (table.c.amount * 10).label("amount")).where(
        table.c.day == 2
    )
    extra = sa.select(
        sa.literal(1).label("day"), sa.literal(1.0, sa.Double).label("amount")
    ).union_all(sa.select(sa.literal(1).label("day"), sa.literal(2.0, sa.Double).label("amount")))
    extra_sel = sa.select(*extra.subquery().c)
    return lambda wh: wh.replace_from_select(table, table.c.day == 1, [source, extra_sel])


def _replay_style(table: sa.Table) -> Callable[[Warehouse], None]:
    # quality/replay.py's shape: delete by key, then insert, in the caller's transaction.
    def write(wh: Warehouse) -> None:
        with wh.transaction(lock=[table]) as conn:
            Warehouse.delete_keys_in(conn, table, ["day"], NEW[["day"]].head(1))
            Warehouse.insert_rows_in(conn, table, NEW)

    return write


WRITES = {
    "replace_rows": _replace_rows,
    "replace_from_select": _replace_from_select,
    "transaction_delete_keys_in": _replay_style,
}


@pytest.mark.parametrize("how", list(WRITES))
def test_two_writers_of_one_slice_leave_one_copy(warehouse_url: str, how: str) -> None:
    table = _seeded(warehouse_url)
    errors = _race(warehouse_url, WRITES[how](table))
    assert errors == []
    # 5 new rows on day 1 (once, not 10); day 2 untouched.
    assert _day_counts(warehouse_url, table) == {1: 5, 2: 3}


def test_without_the_locks_the_race_shows(warehouse_url: str, monkeypatch) -> None:
    """The barrier really opens both transactions at once: with the locks switched off the
    same race duplicates the slice or fails a writer, so the test above can fail."""
    monkeypatch.setattr(kpi.warehouse.connection, "lock_tables", lambda conn, tables: None)
    monkeypatch.setattr(
        kpi.warehouse.connection, "locked_transaction", lambda engine, tables: engine.begin()
    )
    table = _seeded(warehouse_url)
    errors = _race(warehouse_url, _replace_rows(table))
    counts = _day_counts(warehouse_url, table)
    assert errors or counts[1] == 10, (errors, counts)


def test_lock_keys_are_stable_and_distinct() -> None:
    from kpi.warehouse.locks import lock_key

    # blake2b is the same in every process (unlike hash()), so two runs agree on the key.
    assert lock_key("raw.orders") == lock_key("raw.orders")
    assert lock_key("raw.orders") != lock_key("raw.ad_spend")
    assert -(2**63) <= lock_key("kpi.kpi_values") < 2**63


def test_every_spelling_of_a_duckdb_file_takes_the_same_lock(tmp_path, monkeypatch) -> None:
    """The locks are per file, however its URL spells it (a symlink, ``..``, relative to the
    working directory); a relative path means the file of the working directory of the
    moment (the absolute ones are resolved once per process)."""
    from kpi.warehouse.locks import _duckdb_lock

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "a")

    def lock_of(path: str):
        engine = sa.create_engine(f"duckdb:///{path}")
        try:
            with engine.connect() as conn:
                return _duckdb_lock(conn, "raw.facts")
        finally:
            engine.dispose()

    first = lock_of(str(tmp_path / "a" / "w.duckdb"))
    assert lock_of(str(tmp_path / "link" / "w.duckdb")) is first
    assert lock_of(str(tmp_path / "b" / ".." / "a" / "w.duckdb")) is first
    monkeypatch.chdir(tmp_path / "a")
    assert lock_of("w.duckdb") is first
    monkeypatch.chdir(tmp_path / "b")
    assert lock_of("w.duckdb") is not first  # b/w.duckdb: another file
    assert lock_of(str(tmp_path / "a" / "w.duckdb")) is first


# -- the whole job, twice at once, on PostgreSQL ---------------------------------------------

# Written at write time or naming the run that wrote the row: differ between any two runs.
_RUN_COLUMNS = ("_run_id", "run_id", "_loaded_at", "_quarantine_id")
# Logs that every run appends to by design (ingest/load_registry.py): two runs, two entries.
_APPEND_ONLY = {"raw.file_loads"}
# One row per GA4 request of a run (ingest/ga4/load_log.py), holding the quota the fake
# server had left, which both runs spend at once: only the number of rows is comparable.
_PER_RUN_REQUESTS = {"raw.ga4_load_log"}


def _every_row(url: str) -> dict[str, list[tuple]]:
    """Every raw.* and kpi.* table (and view) -> its rows, sorted, without the columns that
    name the run or the time of writing."""
    wh = Warehouse(url)
    try:
        names = wh.rows(
            sa.text(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema IN ('raw', 'kpi') ORDER BY 1, 2"
            )
        )
        out = {}
        for schema, name in names:
            frame = wh.read(sa.text(f'SELECT * FROM "{schema}"."{name}"'))
            keep = [c for c in frame.columns if c not in _RUN_COLUMNS and not c.endswith("_at")]
            rows = [tuple(map(repr, r)) for r in frame[keep].itertuples(index=False)]
            out[f"{schema}.{name}"] = sorted(rows)
        return out
    finally:
        wh.dispose()


@pytest.mark.slow
def test_two_runs_at_once_equal_one_run(postgres_url, make_postgres_url, tmp_path) -> None:
    import datetime as dt

    from demo.generator import ga4_traffic
    from demo.landing import write_demo_landing
    from tests.support import fake_ga4, run_pipeline

    start, end = dt.date(2026, 1, 1), dt.date(2026, 1, 12)
    landing = tmp_path / "landing"
    write_demo_landing(landing, start, end)
    single_url = make_postgres_url()  # a second fresh database, for the run alone
    with fake_ga4(ga4_traffic(start, end)) as server:
        results: list = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                results.append(run_pipeline(postgres_url, server.endpoint, landing, start, end))
            except BaseException as error:  # reported to the test
                errors.append(error)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        assert errors == []
        assert len(results) == 2 and all(r.success for r in results)
        assert run_pipeline(single_url, server.endpoint, landing, start, end).success
    twice, once = _every_row(postgres_url), _every_row(single_url)
    assert sorted(twice) == sorted(once)
    assert once["raw.orders"], "the window loads orders: the comparison is not empty"
    for name in once:
        if name in _PER_RUN_REQUESTS:
            assert len(twice[name]) == 2 * len(once[name]), name
            continue
        expected = sorted(once[name] * 2) if name in _APPEND_ONLY else once[name]
        assert twice[name] == expected, name
