"""Locks that serialise writers of the same table, held until their transaction ends.

Every write is delete-then-insert in one transaction. Two writers of the same slice at
once both delete the old rows (neither sees the other's uncommitted insert) and both
insert: every row twice. So a writer first takes a lock per table it writes, in sorted
order (two writers of overlapping tables never wait on each other in a cycle), at the
start of its transaction:

- PostgreSQL: ``pg_advisory_xact_lock`` on a stable 64-bit key per qualified table name;
  PostgreSQL releases it at commit or rollback. Taking it again in the same transaction
  is harmless (it is counted, and all are released together).
- DuckDB: its file lock only stops another *process*; threads of one process share the
  file. A process-local re-entrant lock per (database file, table) is taken *before* BEGIN
  and released after COMMIT (``locked_transaction``): DuckDB's snapshot starts at BEGIN,
  so a writer that began before the other committed fails its DELETE with "Conflict on
  tuple deletion". A lock first taken inside a transaction (an ``*_in`` write in a
  transaction that did not name its table) is released when that transaction ends.
- Other dialects: no lock. Run one writer at a time (the run queue) there.

Another *process* holding a DuckDB file fails the engine's statements with
:class:`WarehouseBusyError`, which says what to do (``explain_duckdb_lock``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kpi.warehouse import session_settings

# Not a table: taken by schema changes (ensure_tables, rebuilds) so that two fresh runs do
# not both CREATE SCHEMA / CREATE TABLE IF NOT EXISTS and collide on the catalogue's keys.
DDL = "<ddl>"

_HELD = "kpi_write_locks_held"  # Connection.info key: DuckDB locks taken before BEGIN
_LATE = "kpi_write_locks_late"  # Connection.info key: DuckDB locks taken inside the transaction
_registry: dict[tuple[str, str], threading.RLock] = {}
_registry_guard = threading.Lock()


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (same in every process and Python run)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextlib.contextmanager
def locked_transaction(engine: Engine, tables: Iterable[sa.Table | str]) -> Iterator[Connection]:
    """``engine.begin()`` holding the write lock of each of ``tables`` for the whole
    transaction (on DuckDB from before BEGIN to after COMMIT or ROLLBACK); on PostgreSQL
    with the engine's settings (kpi.warehouse.session_settings) set for it."""
    names = _names(tables)
    with engine.connect() as conn:
        if conn.dialect.name != "duckdb" or not names:
            with conn.begin():
                session_settings.apply(conn)  # PostgreSQL: SET LOCAL jit = off (by default)
                lock_tables(conn, names)
                yield conn
            return
        locks = [_duckdb_lock(conn, name) for name in names]
        taken: list[threading.RLock] = []
        try:
            for lock in locks:
                lock.acquire()
                taken.append(lock)
            conn.info[_HELD] = taken
            with conn.begin():
                yield conn
        finally:
            conn.info.pop(_HELD, None)
            for lock in reversed(taken):
                lock.release()


def _names(tables: Iterable[sa.Table | str]) -> list[str]:
    return sorted({t if isinstance(t, str) else t.fullname for t in tables})


def lock_tables(conn: Connection, tables: Iterable[sa.Table | str]) -> None:
    """Take the write lock of each table (a Table or a qualified name) for ``conn``'s
    transaction, in sorted order; they are released when the transaction ends."""
    names = _names(tables)
    if not names:
        return
    dialect = conn.dialect.name
    if dialect == "postgresql":
        for name in names:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(name)})
    elif dialect == "duckdb":
        _lock_duckdb(conn, names)


def _duckdb_lock(conn: Connection, name: str) -> threading.RLock:
    database = conn.engine.url.database or ":memory:"
    # Every connection to ":memory:" has its own database: nobody to collide with, but a
    # lock keyed by the engine keeps the code path the same.
    if database == ":memory:":
        where = f"memory:{id(conn.engine)}"
    elif Path(database).is_absolute():
        where = _resolved(database)
    else:  # relative to the working directory of the moment: resolved each time
        where = str(Path(database).resolve())
    with _registry_guard:
        return _registry.setdefault((where, name), threading.RLock())


@functools.lru_cache(maxsize=64)
def _resolved(database: str) -> str:
    """An absolute path with its symlinks resolved: one key for every spelling of a file.
    Once per path and process: each transaction takes several locks, and a resolve asks
    the file system about every folder of the path. A symlink in the path pointed elsewhere
    while the process runs keeps its first target here (swap releases between processes)."""
    return str(Path(database).resolve())


def _lock_duckdb(conn: Connection, names: list[str]) -> None:
    engine = conn.engine
    if not sa.event.contains(engine, "commit", _release):
        sa.event.listen(engine, "commit", _release)
        sa.event.listen(engine, "rollback", _release)
    held = conn.info.get(_HELD, [])
    late: list[threading.RLock] = conn.info.setdefault(_LATE, [])
    for name in names:
        lock = _duckdb_lock(conn, name)
        if lock in held or lock in late:
            continue  # already ours in this transaction (an *_in write after another)
        lock.acquire()
        late.append(lock)


def _release(conn: Connection) -> None:
    for lock in reversed(conn.info.pop(_LATE, [])):
        lock.release()


class WarehouseBusyError(RuntimeError):
    """Another process holds the DuckDB file: DuckDB allows one writer at a time."""


def explain_duckdb_lock(context) -> None:
    """An engine's ``handle_error``: DuckDB's file lock held by another process, as a
    :class:`WarehouseBusyError` that says what to do."""
    message = str(context.original_exception)
    if "Could not set lock" not in message and "Conflicting lock" not in message:
        return
    holder = (
        message.split("Conflicting lock is held in", 1)[-1].strip()
        if ("Conflicting lock is held in" in message)
        else "another process"
    )
    raise WarehouseBusyError(
        f"the DuckDB warehouse is in use by {holder}. DuckDB allows one writer per file: "
        "wait for the other process (a run launched outside the run queue, or a SQL client) "
        "to finish; runs launched through a Dagster instance configured as "
        "deploy/dagster.yaml queue on the `duckdb_warehouse` pool instead; or use "
        "PostgreSQL as the warehouse (WAREHOUSE_URL)."
    ) from None
