"""SQLAlchemy engines: a new one per warehouse, built on what the process learnt before.

SQLAlchemy means an engine to live as long as the process: it keeps the statements it has
compiled (its compiled cache) and what its dialect learnt on the first connection (the
server's version and default schema, DuckDB's reserved words). The pipeline opens a
``Warehouse`` per Dagster step and per command, and each made an engine from nothing, so
every step compiled again the bookkeeping statements the step before had compiled.

``warehouse_engine`` gives each warehouse an engine of its own, with a pool of its own (so
its ``dispose`` closes its connections and nobody else's, and DuckDB's file is free once it
has), on the dialect and the compiled statements of the process's earlier engines for the
same URL. The templates those come from never connect, so a forked process inherits no
connection from here. What the dialect learns on its first connection stays the process's
for that URL: PostgreSQL's default schema among it, so a ``search_path`` schema created
after the first connection is not seen as the default until the next process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.util import LRUCache

from kpi.warehouse import session_settings
from kpi.warehouse.dsn import check_unambiguous, scrub_errors, scrub_exception, url_secrets
from kpi.warehouse.locks import explain_duckdb_lock

# Named here so that create_engine finds DuckDB's dialect at once: without it SQLAlchemy
# scans every installed package's entry points, about 20 ms on each new engine. Ours is
# duckdb_engine's without the databases it opens for itself (kpi.warehouse.duckdb_dialect).
sa.dialects.registry.register("duckdb", "kpi.warehouse.duckdb_dialect", "DuckDBDialect")

# URLs whose dialect and compiled statements are kept (the least recently used goes
# beyond): a process works on one warehouse, a test run on many, one after another.
KEPT_TEMPLATES = 8
# Compiled statements kept per URL, as SQLAlchemy's default (query_cache_size).
COMPILED_KEPT = 500

_templates: OrderedDict[str, tuple[Engine, LRUCache]] = OrderedDict()
_lock = threading.Lock()


def make_engine(url: str) -> Engine:
    """A new engine for ``url``, from nothing; a DuckDB file's folder is created when missing.

    Its errors (connection errors included) never show the URL's secrets (kpi.warehouse.dsn).
    """
    check_unambiguous(url)
    try:
        _make_folder(url)
        parsed = sa.make_url(url)
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = sa.create_engine(parsed)
    except Exception as error:  # a malformed port or option can be echoed with the password
        scrub_exception(error, url_secrets(url))
        raise
    _listen(engine, url)
    return engine


def _listen(engine: Engine, url: str) -> None:
    """The engine's own error listeners: no secret in an error, a locked DuckDB file named."""
    scrub_errors(engine, url)
    if engine.dialect.name == "duckdb":
        sa.event.listen(engine, "handle_error", explain_duckdb_lock)


def warehouse_engine(url: str, settings: Mapping[str, str] | None = None) -> Engine:
    """A new engine for ``url`` whose PostgreSQL transactions start with ``settings``
    (kpi.warehouse.session_settings), with a pool of its own, on the dialect and compiled
    statements of the earlier engines for ``url`` in this process.

    An in-memory DuckDB URL gets an engine from nothing: each of its databases is new.
    """
    if _database(url) in (None, "", ":memory:"):
        engine = make_engine(url)
    else:
        _make_folder(url)  # every time: it may have gone since the template was made
        with _lock:
            template, compiled = _templates.pop(url, None) or (make_engine(url), _new_cache())
            _templates[url] = (template, compiled)  # the most recently used last
            while len(_templates) > KEPT_TEMPLATES:
                _templates.popitem(last=False)
        # The template's pool never connects: recreate() gives a new, empty one with its
        # listeners (the dialect's first-connect set-up among them, run once).
        engine = Engine(
            template.pool.recreate(),
            template.dialect,
            template.url,
            query_cache_size=0,
            execution_options={"compiled_cache": compiled},
        )
        _listen(engine, url)
    session_settings.configure(engine, settings)
    return engine


def _new_cache() -> LRUCache:
    return LRUCache(COMPILED_KEPT)


def _make_folder(url: str) -> None:
    parsed = sa.make_url(url)
    if parsed.drivername.startswith("duckdb") and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def _database(url: str) -> str | None:
    try:
        return sa.make_url(url).database
    except Exception:  # make_engine raises it, without the URL's secrets
        return None
