"""SQLAlchemy engines: one per warehouse URL and settings in a process, kept between uses.

SQLAlchemy means an engine to live as long as the process: it keeps the statements it has
compiled (its compiled cache) and what it learnt on its first connection (the server's
version, DuckDB's reserved words). The pipeline opens a ``Warehouse`` per Dagster step and
per command, and each made a new engine, so every step compiled again the bookkeeping
statements the step before had compiled, and paid a first connection. ``shared_engine``
hands out the engine made before for the same URL and settings; ``Warehouse.dispose``
still closes its connections (DuckDB allows one writer per file), and the engine opens new
ones when it is next used.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from kpi.warehouse import session_settings
from kpi.warehouse.dsn import check_unambiguous, scrub_errors, scrub_exception, url_secrets
from kpi.warehouse.locks import explain_duckdb_lock

# Named here so that create_engine finds DuckDB's dialect at once: without it SQLAlchemy
# scans every installed package's entry points, about 20 ms on each new engine. Ours is
# duckdb_engine's without the databases it opens for itself (kpi.warehouse.duckdb_dialect).
sa.dialects.registry.register("duckdb", "kpi.warehouse.duckdb_dialect", "DuckDBDialect")

# Engines kept (the least recently used is closed beyond): a process works on one
# warehouse, a test run on many, one after another.
KEPT_ENGINES = 8

_engines: OrderedDict[tuple, Engine] = OrderedDict()
_lock = threading.Lock()


def make_engine(url: str) -> Engine:
    """A new engine for ``url``; a DuckDB file's folder is created when missing.

    Its errors (connection errors included) never show the URL's secrets (kpi.warehouse.dsn).
    """
    check_unambiguous(url)
    try:
        parsed = sa.make_url(url)
        on_disk = parsed.database not in (None, "", ":memory:")
        if parsed.drivername.startswith("duckdb") and on_disk:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = sa.create_engine(parsed)
    except Exception as error:  # a malformed port or option can be echoed with the password
        scrub_exception(error, url_secrets(url))
        raise
    scrub_errors(engine, url)
    if parsed.drivername.startswith("duckdb"):
        sa.event.listen(engine, "handle_error", explain_duckdb_lock)
    return engine


def shared_engine(url: str, settings: Mapping[str, str] | None = None) -> Engine:
    """The process's engine for ``url`` whose PostgreSQL transactions start with
    ``settings`` (kpi.warehouse.session_settings), made on first use.

    An in-memory DuckDB URL gets a new engine each time: each of its connections is a
    database of its own, so two warehouses sharing a pool would share data.
    """
    database = _database(url)
    if database in (None, "", ":memory:"):
        return _configured(url, settings)
    key = (url, None if settings is None else tuple(sorted(settings.items())))
    with _lock:
        engine = _engines.pop(key, None)
        if engine is None:
            engine = _configured(url, settings)
        _engines[key] = engine  # the most recently used last
        evicted = [_engines.popitem(last=False)[1] for _ in range(len(_engines) - KEPT_ENGINES)]
    for old in evicted:
        # A warehouse still using it keeps its open connection; its next opens a new pool.
        old.dispose()
    return engine


def _configured(url: str, settings: Mapping[str, str] | None) -> Engine:
    engine = make_engine(url)
    session_settings.configure(engine, settings)
    return engine


def _database(url: str) -> str | None:
    try:
        return sa.make_url(url).database
    except Exception:  # make_engine raises it, without the URL's secrets
        return None


def _forget_in_child() -> None:
    """A forked process must not use its parent's connections (SQLAlchemy: "Using
    Connection Pools with Multiprocessing or os.fork()"): it starts with no engines."""
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
