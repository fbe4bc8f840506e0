"""received = loaded + quarantined is counted inside the write's own transaction, while its
write locks are held: a writer of the same table that takes the lock the moment the load
commits cannot change the counts of the load (a real DuckDB file and a real PostgreSQL).

The concurrent writer is made deterministic by wrapping
``kpi.warehouse.connection.locked_transaction`` (the real one runs): when the load's
transaction has committed and released its locks, a second writer, in another thread with
its own connection, takes the lock and inserts a row into the same slice through the real
lock and the real warehouse. That is the interleaving of the race (a writer scheduled right
after the commit); without the wrapper it happens only by chance.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading

import sqlalchemy as sa

import kpi.warehouse.connection
from assets.settings import catalog
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.locks import locked_transaction
from kpi.warehouse.schema import source_table
from quality.quarantine import quarantine_table
from tests.ingest.test_files_loading import AD_HEADER, AD_ROWS, FIXTURE_DAYS, load, write_landing
from tests.quality.test_atomic_load import _ad_rows, _write

D = dt.date


def _table() -> sa.Table:
    return source_table("ad_spend", catalog().sources["ad_spend"], sa.MetaData())


def _intrude_after_the_load(monkeypatch, source_file: str) -> list[str]:
    """After the first transaction that writes raw.ad_spend and its quarantine together has
    committed (its locks released), another thread inserts one ad_spend row of 2026-01-05
    from ``source_file``. Returns a list that gets "done" once it did.

    Not a mock: the real transaction runs and commits, and the intruder writes for real. The
    wrapper only picks the moment (after the commit, before the counts are read), which two
    real processes would hit only by chance."""
    real = kpi.warehouse.connection.locked_transaction
    done: list[str] = []
    table = _table()
    qname = quarantine_table(table, sa.MetaData()).fullname

    def intruder(engine: sa.Engine) -> None:
        row = _ad_rows([("intruder", 1.0)], line=99).assign(_source_file=source_file)
        with locked_transaction(engine, [table]) as conn:
            Warehouse.insert_rows_in(conn, table, row)
        done.append("done")

    @contextlib.contextmanager
    def spied(engine, tables):
        tables = list(tables)
        names = {t if isinstance(t, str) else t.fullname for t in tables}
        with real(engine, tables) as conn:
            yield conn
        if not done and {table.fullname, qname} <= names:
            thread = threading.Thread(target=intruder, args=(engine,))
            thread.start()
            thread.join(timeout=60)
            assert done, "the concurrent writer did not finish"

    monkeypatch.setattr(kpi.warehouse.connection, "locked_transaction", spied)
    return done


def test_counts_are_the_rows_written(warehouse_url):
    table = _table()
    wh = Warehouse(warehouse_url)
    try:
        wh.ensure_tables([table])
        deleted, inserted, kept = _write(wh, table, _ad_rows([("a", 1.0), ("b", 2.0), ("r", -3.0)]))
        assert (deleted, inserted) == (0, 2)
        assert (kept.received, kept.loaded, kept.quarantined, kept.holds) == (3, 2, 1, True)
        # A re-run replaces them: counted once, not added to the first run's rows.
        deleted, inserted, kept = _write(wh, table, _ad_rows([("a", 1.0), ("r", -3.0)]))
        assert (deleted, inserted) == (2, 1)
        assert (kept.received, kept.loaded, kept.quarantined, kept.holds) == (2, 1, 1, True)
    finally:
        wh.dispose()


def test_a_writer_right_after_the_commit_does_not_change_the_counts(warehouse_url, monkeypatch):
    table = _table()
    wh = Warehouse(warehouse_url)
    try:
        wh.ensure_tables([table])
        done = _intrude_after_the_load(monkeypatch, "a.csv")
        _, _, kept = _write(wh, table, _ad_rows([("a", 1.0), ("b", 2.0), ("r", -3.0)]))
        assert done == ["done"]
        # The intruder's row is in the table now, but not in this load's counts.
        assert wh.count(table) == 3
        assert (kept.received, kept.loaded, kept.quarantined, kept.holds) == (3, 2, 1, True)
    finally:
        wh.dispose()


def test_per_file_counts_are_those_of_the_write(warehouse_url, tmp_path, monkeypatch):
    """The per-file counts (raw.file_loads, and received = loaded + quarantined per file)
    come from the same transaction too."""
    root = tmp_path / "landing"
    write_landing(root, {"a.csv": "\n".join([AD_HEADER, *AD_ROWS]) + "\n"})
    a = str(root / "ad_spend" / "a.csv")
    done = _intrude_after_the_load(monkeypatch, a)
    result = load(warehouse_url, root, window=FIXTURE_DAYS, raise_on_error=False)
    assert done == ["done"]
    assert result.success, [e.step_failure_data.error for e in result.get_step_failure_events()]
    meta = result.asset_materializations_for_node("ad_spend")[0].metadata
    assert (meta["rows_received"].value, meta["rows_loaded"].value) == (3, 3)
    assert meta["rows_conserved"].value is True
    wh = Warehouse(warehouse_url)
    try:
        loads = wh.read(
            sa.text(
                "select file_path, rows_received, rows_loaded, rows_quarantined "
                "from raw.file_loads where source = 'ad_spend'"
            )
        )
    finally:
        wh.dispose()
    assert [tuple(r) for r in loads.itertuples(index=False)] == [(a, 3, 3, 0)]
