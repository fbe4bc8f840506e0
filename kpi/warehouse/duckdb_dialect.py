"""duckdb_engine's SQLAlchemy dialect, without two throwaway databases it opens.

Besides the one its import opens (to test for COMMENT support), duckdb_engine opens two
in-memory DuckDB databases before a process's first connection, about 40 ms each on a
2-vCPU machine: one to list DuckDB's setting names (to tell the core settings of a URL's
query from extension settings), one to list DuckDB's reserved keywords (for quoting). Every
Dagster step process, CLI call and benchmark run paid them.

This dialect asks the warehouse's own connection for the keywords, when SQLAlchemy first
connects and before it compiles anything for that engine, and opens the file directly when
the URL carries no settings. With settings, duckdb_engine sorts them as before. The direct
path leaves out duckdb_engine's custom_user_agent, which only MotherDuck reads.
"""

from __future__ import annotations

from typing import Any

import duckdb
import duckdb_engine
from sqlalchemy.dialects.postgresql.base import PGIdentifierPreparer

_RESERVED_QUERY = "SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'"
# Connection parameters that need duckdb_engine's own connect.
_ENGINE_PARAMETERS = ("config", "url_config", "preload_extensions", "register_filesystems")


class _Preparer(duckdb_engine.DuckDBIdentifierPreparer):
    def __init__(self, dialect: Any, **kwargs: Any) -> None:
        # Not duckdb_engine's __init__: it queries an in-memory database for the keywords.
        PGIdentifierPreparer.__init__(self, dialect, **kwargs)
        # An instance set: the class's is PostgreSQL's, shared with the PostgreSQL dialect.
        self.reserved_words = set(self.reserved_words)


class DuckDBDialect(duckdb_engine.Dialect):
    preparer = _Preparer
    # duckdb_engine sets False (every statement compiled again on each execution, ~1 ms
    # each for ours). Its compiler is PostgreSQL's, whose output depends only on the
    # statement, and this dialect's one difference, the reserved words, is settled on the
    # first connection, before SQLAlchemy compiles anything to execute. Our own SQL
    # constructs declare whether they can be cached (inherit_cache), as they must for
    # PostgreSQL.
    supports_statement_cache = True

    def connect(self, *cargs: Any, **cparams: Any) -> Any:
        if any(cparams.get(name) for name in _ENGINE_PARAMETERS):
            return super().connect(*cargs, **cparams)
        for name in _ENGINE_PARAMETERS:
            cparams.pop(name, None)
        return duckdb_engine.ConnectionWrapper(duckdb.connect(*cargs, **cparams))

    def initialize(self, connection: Any) -> None:
        super().initialize(connection)
        # SQLAlchemy runs this on the engine's first connection; the Warehouse compiles
        # nothing before it connects. The preparer remembers each name's quoting, so what
        # it quoted before now (a statement compiled without a connection) is forgotten.
        rows = connection.exec_driver_sql(_RESERVED_QUERY).fetchall()
        preparer = self.identifier_preparer
        preparer.reserved_words.update(name for (name,) in rows)
        preparer._strings.clear()
