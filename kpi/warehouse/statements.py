"""Compiled ``INSERT ... SELECT`` statements, and a cache of them kept in the warehouse.

Why a cache: ``kpi_comparisons`` is about 85 statements on DuckDB (one per KPI and grain)
and 160 elsewhere (one per slice too). Building and compiling them in Python cost more than
the warehouse took to run them (4 of the 6 seconds of a daily run's comparisons, at 160),
and gave the same SQL every day: only the
first period to recompute and the run's timestamp change, and those are bind parameters
named ``run_*`` (``run_parameter``). ``kpi_values`` is one statement for the KPIs a run
recomputes from the same day, ~0.35 s to build and compile. The cache keeps each
statement's SQL and its other, constant, parameters in ``kpi_work.compiled_statements``
under a fingerprint of everything that shapes it (the catalog, the kernel's code, the
dialect: the caller's); a run builds and compiles only the statements it misses, and a
changed fingerprint misses them all.

Kept in the warehouse, not on a disk of the machine: every process and executor that
writes the warehouse reads the same cache, and it goes with the tables it was made for.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import decimal
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.sql.elements import BindParameter

from kpi.warehouse.locks import lock_tables
from kpi.warehouse.schema import WORK_SCHEMA

RUN_PREFIX = "run_"
# The names run_parameter gave: a bind SQLAlchemy names after a column (``run_type_1`` for
# a filter on a source column ``run_type``) starts with the prefix too, and is a constant.
_RUN_NAMES: set[str] = set()


def run_parameter(name: str, value: Any, type_: sa.types.TypeEngine) -> BindParameter:
    """A bind parameter given anew by each run (the first period to recompute, the run's
    timestamp): left out of the cached constants and filled in on every use. Several uses
    in one statement must carry the same value."""
    _RUN_NAMES.add(f"{RUN_PREFIX}{name}")
    return sa.bindparam(f"{RUN_PREFIX}{name}", value, type_=type_)


@dataclass(frozen=True)
class Compiled:
    """A compiled SELECT, the names of its columns and its parameters; ``names`` is the
    positional order of the parameters (None for a dialect with named parameters)."""

    sql: str
    columns: tuple[str, ...]
    names: tuple[str, ...] | None
    params: dict[str, Any]

    def bound(self) -> tuple[str, tuple | dict]:
        """(SQL, parameters) as the driver takes them (``Connection.exec_driver_sql``)."""
        return self.sql, self._values()

    def insert_into(self, table: sa.Table, dialect: Dialect) -> tuple[str, tuple | dict]:
        """``INSERT INTO table (columns) SELECT ...`` with its parameters, for the driver."""
        quote = dialect.identifier_preparer
        columns = ", ".join(quote.quote(c) for c in self.columns)
        return f"INSERT INTO {quote.format_table(table)} ({columns}) {self.sql}", self._values()

    def _values(self) -> tuple | dict:
        if self.names is not None:
            return tuple(self.params[n] for n in self.names)
        return dict(self.params)


def compile_select(dialect: Dialect, select: sa.Select) -> Compiled:
    """``select`` compiled for ``dialect``."""
    # Expanding IN lists rendered now: the driver gets plain parameters.
    done = select.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    order = tuple(done.positiontup) if done.positional else None
    columns = tuple(c.name for c in select.selected_columns)
    return Compiled(done.string, columns, order, dict(done.construct_params()))


def select_concurrently(
    engine: Engine, selects: Iterable[Compiled], workers: int
) -> list[tuple[tuple[str, ...], list[tuple]]]:
    """DuckDB: the columns and rows of each of ``selects``, run ``workers`` at a time on
    other connections to the same database (they see what is committed). Why: the
    statements of kpi_comparisons each cost 15-30 ms, mostly DuckDB planning them on one
    core; two at a time take 60% of the time of one after the other."""
    local = threading.local()
    opened: list[Connection] = []
    guard = threading.Lock()

    def run(compiled: Compiled):
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = engine.connect()
            with guard:
                opened.append(conn)
        rows = conn.connection.driver_connection.execute(*compiled.bound()).fetchall()
        return compiled.columns, rows

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(run, selects))
    finally:
        for conn in opened:
            conn.close()


def compiled_statements_table(metadata: sa.MetaData) -> sa.Table:
    if f"{WORK_SCHEMA}.compiled_statements" in metadata.tables:
        return metadata.tables[f"{WORK_SCHEMA}.compiled_statements"]
    return sa.Table(
        "compiled_statements",
        metadata,
        sa.Column("step", sa.String, nullable=False, comment="the step that runs it"),
        sa.Column(
            "statement_key", sa.String, nullable=False, comment="what it computes, and its mode"
        ),
        sa.Column(
            "fingerprint",
            sa.String,
            nullable=False,
            comment="catalog, kernel code and dialect it was compiled for",
        ),
        sa.Column("sql_text", sa.Text, nullable=False, comment="the compiled statement"),
        sa.Column(
            "parameters",
            sa.Text,
            nullable=False,
            comment="JSON: positional order and constant parameter values",
        ),
        sa.Column("compiled_at", sa.TIMESTAMP(timezone=True), comment="when it was compiled"),
        schema=WORK_SCHEMA,
        comment="Compiled SQL of the KPI steps, reused while nothing that shapes it changes "
        "(kpi.warehouse.statements)",
    )


class StatementCache:
    """The cached statements of one step for one fingerprint, read once per run."""

    def __init__(
        self,
        table: sa.Table,
        step: str,
        fingerprint: str,
        found: dict[str, Compiled],
        stored: Iterable[tuple[str, str, dt.datetime | None]] | None = None,
    ):
        self.table, self.step, self.fingerprint = table, step, fingerprint
        self._found = found
        # (key, fingerprint, compiled_at) of every statement of the step as loaded; None:
        # not known, so ``save`` cleans up without looking.
        self._stored = None if stored is None else list(stored)
        self._new: dict[str, Compiled] = {}
        self._used: set[str] = set()
        self.hits = 0

    @classmethod
    def load(
        cls,
        conn: Connection,
        table: sa.Table,
        step: str,
        fingerprint: str,
        keys: list[str] | None = None,
    ):
        """The step's statements of ``fingerprint`` (only ``keys``, when given), and what
        else the step has stored (without its text), for ``save`` to know whether any of
        it is stale."""
        wanted = table.c.fingerprint == fingerprint
        if keys is not None:
            wanted = sa.and_(wanted, table.c.statement_key.in_(keys))
        query = sa.select(
            table.c.statement_key,
            table.c.fingerprint,
            table.c.compiled_at,
            sa.case((wanted, table.c.sql_text)),
            sa.case((wanted, table.c.parameters)),
        ).where(table.c.step == step)
        found, stored = {}, []
        for key, fp, compiled_at, sql, parameters in conn.execute(query):
            stored.append((key, fp, compiled_at))
            if sql is None:
                continue
            values = json.loads(parameters)
            names = tuple(values["names"]) if values["names"] is not None else None
            constants = {k: _decode(v) for k, v in values["constants"].items()}
            found[key] = Compiled(sql, tuple(values["columns"]), names, constants)
        return cls(table, step, fingerprint, found, stored)

    def get(self, key: str, run: dict[str, Any], build: Callable[[], Compiled]) -> Compiled:
        """The statement ``key`` with this run's parameters ``run`` (names without the
        ``run_`` prefix); ``build`` makes it when the cache has none."""
        values = {f"{RUN_PREFIX}{k}": v for k, v in run.items()}
        self._used.add(key)
        cached = self._found.get(key)
        if cached is not None:
            self.hits += 1
            return Compiled(cached.sql, cached.columns, cached.names, {**cached.params, **values})
        compiled = build()
        variables = {k for k in compiled.params if k in _RUN_NAMES}
        if variables - set(values):
            raise ValueError(f"{key}: run parameters {sorted(variables - set(values))} not given")
        constants = {k: v for k, v in compiled.params.items() if k not in variables}
        if all(_encodable(v) for v in constants.values()):
            self._new[key] = Compiled(compiled.sql, compiled.columns, compiled.names, constants)
        return compiled

    @property
    def misses(self) -> int:
        return len(self._new)

    def save(
        self, conn: Connection, now: dt.datetime, unused_for: dt.timedelta | None = None
    ) -> None:
        """Store what this run compiled (in the caller's transaction), and drop the step's
        statements of other fingerprints: they can never be used again. With ``unused_for``,
        also those this run did not use that were compiled longer ago than that: for a step
        whose keys follow the data (which KPIs changed from which day), not only the
        catalogue, so that they do not pile up."""
        if not self._new and not self._any_stale(now, unused_for):
            return  # every statement was a hit and none is stale: nothing to write
        table = self.table
        lock_tables(conn, [table])
        other = table.c.fingerprint != self.fingerprint
        stale = [other]
        if self._new:
            stale.append(table.c.statement_key.in_(list(self._new)))
        if unused_for is not None:
            old = table.c.compiled_at < now - unused_for
            stale.append(sa.and_(old, table.c.statement_key.not_in(list(self._used) or [""])))
        conn.execute(table.delete().where(table.c.step == self.step, sa.or_(*stale)))
        if not self._new:
            return
        conn.execute(
            table.insert(),
            [
                {
                    "step": self.step,
                    "statement_key": key,
                    "fingerprint": self.fingerprint,
                    "sql_text": c.sql,
                    "parameters": json.dumps(
                        {
                            "columns": list(c.columns),
                            "names": list(c.names) if c.names is not None else None,
                            "constants": {k: _encode(v) for k, v in c.params.items()},
                        }
                    ),
                    "compiled_at": now,
                }
                for key, c in self._new.items()
            ],
        )

    def _any_stale(self, now: dt.datetime, unused_for: dt.timedelta | None) -> bool:
        """Whether ``save`` would delete a statement loaded with this cache: one of another
        fingerprint, or (``unused_for``) one this run did not use compiled longer ago. A
        statement another run stores after the load is cleaned up by the next run."""
        if self._stored is None or (unused_for is not None and now.tzinfo is None):
            return True  # not known, or a naive time: the DELETE compares in the database
        for key, fingerprint, compiled_at in self._stored:
            if fingerprint != self.fingerprint:
                return True
            if unused_for is None or key in self._used or compiled_at is None:
                continue
            if _aware(compiled_at) < now - unused_for:
                return True
        return False


def _aware(moment: dt.datetime) -> dt.datetime:
    """A driver's TIMESTAMPTZ as an aware datetime (UTC when it came back naive)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


# -- parameter values as JSON: tagged where JSON has no type of its own -------------------


def _encodable(value: Any) -> bool:
    return value is None or isinstance(
        value, bool | int | float | str | dt.date | dt.datetime | decimal.Decimal
    )


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"decimal": str(value)}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        ((kind, text),) = value.items()
        if kind == "datetime":
            return dt.datetime.fromisoformat(text)
        if kind == "date":
            return dt.date.fromisoformat(text)
        if kind == "decimal":
            return decimal.Decimal(text)
        raise ValueError(f"unknown cached parameter kind {kind!r}")
    return value
