"""The cubes a values refresh reads, kept current: rewritten from the first day that changed.

A cube holds no history: it is the raw rows of a source summed per local day (the daily
cube) or per month (the monthly cube: the slices only month-grained KPIs read, such as
campaign by month). Rebuilt whole on every run, they were most of an incremental run on
large sources: on the peer bench's month x channel x campaign shape the monthly cube was
~65 of a daily run's ~110 ms (a daily run cost more than a full refresh of the same KPIs),
and the 10M-row bench's GA4 cube is one grouped scan of every row. So an incremental run
rewrites a cube only from the first day that can have changed:

- a daily cube from its source's first changed day (kpi.compute.changes finds it from the
  day checksums of a scan of the source, which then no longer has to group and sum every
  row). Only for a source whose time column is a date: a timestamp source's local day is a
  time-zone conversion of every row, which a filter on it would pay again; such a cube,
  like a cube without its stamp, is rebuilt with its checksums, as every full refresh does;
- a monthly cube (``month_cube_start``) from the month holding that day, or the first day
  the calendar put in another month than before: the days after the as-of date are in no
  month (each is a row of its own day) and join one when the as-of date passes them. A
  month's row holds the first day of data in the month, so deleting the rows from the
  first day of that month on removes every row of the months from it and none before;
- a stamp per cube in ``refresh_state`` (steps ``day_cube`` and ``month_cube``) records
  what it was made with: a hash of its statement (SQL and constants), and for a monthly
  cube the first and last days the calendar put in a month. Another statement, another
  first day, no stamp, a change before the calendar's first day, a cube table dropped by
  hand, or a full refresh rebuild the cube whole.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from kpi.compute.changes import statement_fingerprint, supports_incremental
from kpi.compute.tables import KpiTables
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.locks import DDL
from kpi.warehouse.statements import Compiled, StatementCache, compile_select, run_parameter
from kpi.warehouse.upgrades import existing_columns

# The compiled statements of the daily and monthly cubes (kpi_work).
CUBES = "cubes"
# refresh_state rows stamping what each daily and monthly cube was made with.
DAY_STEP, MONTH_STEP = "day_cube", "month_cube"

Statement = sa.Select | Compiled


@dataclass(frozen=True)
class Cube:
    """A cube: its table, the statement of all its rows, and that of its rows from a
    given day on (for a monthly cube, the first day of a month)."""

    source: str
    table: sa.Table
    whole: Statement
    since: Callable[[dt.date], Statement]


@dataclass(frozen=True)
class CubeStatements:
    daily: list[Cube]
    monthly: list[Cube]
    cache: StatementCache | None  # where they came from (None: built for this run)

    @property
    def tables(self) -> list[sa.Table]:
        return [c.table for c in self.daily + self.monthly]


def refresh_cubes(wh: Warehouse, tables: KpiTables) -> dict[str, int]:
    """Rebuild every daily cube (one scan of each raw table) and monthly cube, in one
    transaction; rows per daily cube. ``refresh_kpi_values`` keeps the cubes it reads
    itself; the tests call this to query the cubes on their own."""
    names = list(tables.compiler.cubes.tables)
    incremental = supports_incremental(wh.dialect)
    made = cube_statements(wh, tables, names, incremental, cached=False)
    whole = [(c.table, c.whole) for c in made.daily + made.monthly]
    state = tables.refresh_state
    if incremental:
        wh.ensure_tables([state])
    with wh.transaction(lock=[DDL, *made.tables, *([state] if incremental else [])]) as conn:
        counts = Warehouse.rebuild_tables_in(conn, whole)
        if incremental:  # made from rows whose days no stamp records as checked
            conn.execute(state.delete().where(state.c.step.in_([DAY_STEP, MONTH_STEP])))
    return {s: counts[tables.compiler.cubes.tables[s].name] for s in names}


def cube_statements(
    wh: Warehouse,
    tables: KpiTables,
    names: list[str],
    incremental: bool,
    cached: bool = True,
    fingerprint: Callable[[], str] | None = None,
) -> CubeStatements:
    """The daily and monthly cube statements of ``names`` (the daily ones with their rows'
    checksums where runs are ``incremental``).

    Built before the refresh's transaction: on PostgreSQL a cube's rebuild holds its
    tables' locks until the commit. Where runs are incremental they are compiled once
    and kept (kpi.warehouse.statements): building and compiling the demo's 18 cube and
    rollup statements took 60-100 ms of each daily run (~0.25 s in a process that had
    compiled nothing yet), for the same SQL every day (the channel rules are a CASE of
    hundreds of conditions). The rollups are CTEs of the kpi_values statement now.
    ``fingerprint``: the statements' fingerprint (kpi.compute.changes.statement_fingerprint),
    when the caller computes it for its own statements too."""
    cubes, day_periods = tables.compiler.cubes, tables.compiler.day_periods
    monthly = [s for s in names if s in cubes.month_tables]
    if not (incremental and cached and names and wh.shares_database):

        def since(source: str, by_month: bool) -> Callable[[dt.date], Statement]:
            def select(day: dt.date) -> Statement:
                start = sa.bindparam("cube_since", day, type_=sa.Date())
                if by_month:
                    return cubes.month_select(source, day_periods, start)
                return cubes.select(source, incremental, start)

            return select

        return CubeStatements(
            [
                Cube(s, cubes.tables[s], cubes.select(s, incremental), since(s, False))
                for s in names
            ],
            [
                Cube(s, cubes.month_tables[s], cubes.month_select(s, day_periods), since(s, True))
                for s in monthly
            ],
            None,
        )
    shape = (
        fingerprint()
        if fingerprint is not None
        else statement_fingerprint(tables.catalog, tables.layout(), wh.dialect_and_driver)
    )
    wh.ensure_tables([tables.compiled_statements])
    with wh.engine.connect() as conn:
        cache = StatementCache.load(conn, tables.compiled_statements, CUBES, shape)
    dialect = wh.engine.dialect

    def from_cache(key: str, build: Callable[[], sa.Select], run: dict | None = None) -> Compiled:
        return cache.get(key, run or {}, lambda: compile_select(dialect, build()))

    def since_cached(source: str, by_month: bool) -> Callable[[dt.date], Statement]:
        def build(day: dt.date) -> sa.Select:
            start = run_parameter("since", day, sa.Date())
            if by_month:
                return cubes.month_select(source, day_periods, start)
            return cubes.select(source, True, start)

        kind = "month_cube" if by_month else "cube"
        return lambda day: from_cache(f"{kind}_since|{source}", lambda: build(day), {"since": day})

    return CubeStatements(
        [
            Cube(
                s,
                cubes.tables[s],
                from_cache(f"cube|{s}", lambda s=s: cubes.select(s, True)),
                since_cached(s, False),
            )
            for s in names
        ],
        [
            Cube(
                s,
                cubes.month_tables[s],
                from_cache(f"month_cube|{s}", lambda s=s: cubes.month_select(s, day_periods)),
                since_cached(s, True),
            )
            for s in monthly
        ],
        cache,
    )


def drop_rollup_tables(conn: Connection, tables: KpiTables, names: list[str]) -> None:
    """Drop the period rollup tables of ``names`` a warehouse made by an older version has
    (``kpi_work.rollup_<source>``, or ``kpi.rollup_<source>`` before that): the rollups
    are CTEs now. Called when the cube statements were compiled again, which the first
    run of a new version does."""
    for source in names:
        for schema in (tables.compiler.cubes.schema, tables.values.schema):
            left = sa.Table(f"rollup_{source}", sa.MetaData(), schema=schema)
            conn.execute(sa.schema.DropTable(left, if_exists=True))


@dataclass(frozen=True)
class DailyStamps:
    """What each daily cube of a run is made with now (``made``), what its stamp said
    (``stored``), and which cubes the run keeps."""

    made: dict[str, str]
    stored: dict[str, str]
    kept: frozenset[str]


def kept_daily_cubes(
    conn: Connection, tables: KpiTables, daily: list[Cube], whole: bool
) -> DailyStamps:
    """The daily cubes this run keeps, to rewrite them from the changed days on once those
    are known: those of a date-typed source stamped with the statement they would be
    rebuilt with now, whose table is there. None with ``whole``."""
    made = {c.source: _statement_hash(c.whole, conn.dialect) for c in daily}
    if whole or not daily:  # every stamp is written again
        return DailyStamps(made, {}, frozenset())
    stored = _stored(conn, tables.refresh_state, DAY_STEP, list(made))
    dated = {s for s in made if tables.catalog.sources[s].time.type == "date"}
    kept = {s for s in dated if stored.get(s) == made[s]}
    if kept:  # a cube dropped by hand, its stamp left: made again, not written in part
        there = _present(conn, [c.table for c in daily if c.source in kept])
        kept = {c.source for c in daily if c.source in kept and c.table.fullname in there}
    return DailyStamps(made, stored, frozenset(kept))


def keep_daily_cubes(
    conn: Connection,
    tables: KpiTables,
    daily: list[Cube],
    stamps: DailyStamps,
    changed: Mapping[str, dt.date | None],
) -> dict[str, int | None]:
    """Rewrite each daily cube the run keeps (``kept_daily_cubes``) from its source's first
    changed day (``changed``: source -> day, None: unchanged) on, and stamp every daily
    cube, inside the caller's transaction; the others were rebuilt whole before the
    changes were read from them. Per source, the rows written (None: rebuilt whole)."""
    written: dict[str, int | None] = {}
    for cube in daily:
        day = changed.get(cube.source)
        if cube.source not in stamps.kept:
            written[cube.source] = None
        elif day is None:
            written[cube.source] = 0
        else:
            where = cube.table.c.day >= day
            _, written[cube.source] = Warehouse.replace_from_select_in(
                conn, cube.table, where, [cube.since(day)]
            )
    _store(conn, tables.refresh_state, DAY_STEP, stamps.made, stamps.stored)
    return written


def keep_month_cubes(
    conn: Connection,
    tables: KpiTables,
    monthly: list[Cube],
    changed: Mapping[str, dt.date | None],
    whole: bool,
) -> dict[str, int | None]:
    """Bring the monthly cubes up to date inside the caller's transaction, after the
    calendar and the day changes of their sources (``changed``: source -> first changed
    day, None: unchanged) are known; rebuild all of them with ``whole``. Per source, the
    rows written (None: rebuilt whole; 0: nothing to do)."""
    if not monthly:
        return {}
    state, day_periods = tables.refresh_state, tables.compiler.day_periods
    in_month = day_periods.c.grain == "month"
    first, last = conn.execute(
        sa.select(sa.func.min(day_periods.c.day), sa.func.max(day_periods.c.day)).where(in_month)
    ).one()
    stored = _stored(conn, state, MONTH_STEP, [m.source for m in monthly])
    there = set() if whole else _present(conn, [m.table for m in monthly])
    stamps, rebuild, written = {}, [], {}
    for cube in monthly:
        stamp = MonthCubeStamp(_statement_hash(cube.whole, conn.dialect), first, last)
        stamps[cube.source] = stamp.encode()
        old = None if whole else MonthCubeStamp.decode(stored.get(cube.source))
        if cube.table.fullname not in there:  # dropped by hand: nothing to keep a part of
            old = None
        start = month_cube_start(old, stamp, changed.get(cube.source), _month_of(conn, tables))
        if start is REBUILD:
            rebuild.append((cube.table, cube.whole))
            written[cube.source] = None
        elif start is None:
            written[cube.source] = 0
        else:
            where = cube.table.c.day >= start
            _, n = Warehouse.replace_from_select_in(conn, cube.table, where, [cube.since(start)])
            written[cube.source] = n
    if rebuild:
        Warehouse.rebuild_tables_in(conn, rebuild)
    _store(conn, state, MONTH_STEP, stamps, stored)
    return written


def _present(conn: Connection, cubes: list[sa.Table]) -> set[str]:
    """The full names of ``cubes`` whose table the warehouse has (one catalogue query)."""
    if not cubes:
        return set()
    default = conn.dialect.default_schema_name
    found = existing_columns(conn, sorted({c.schema or default for c in cubes}))
    return {c.fullname for c in cubes if (c.schema or default, c.name) in found}


def _stored(conn: Connection, state: sa.Table, step: str, sources: list[str]) -> dict[str, str]:
    found = sa.select(state.c.kpi_id, state.c.fingerprint).where(
        state.c.step == step, state.c.kpi_id.in_(sources)
    )
    return dict(conn.execute(found).all())


def _store(
    conn: Connection,
    state: sa.Table,
    step: str,
    stamps: Mapping[str, str],
    stored: Mapping[str, str],
) -> None:
    """Write the ``stamps`` that differ from those ``stored`` (a run with no news: none)."""
    moved = [s for s, stamp in stamps.items() if stored.get(s) != stamp]
    if moved:
        conn.execute(state.delete().where(state.c.step == step, state.c.kpi_id.in_(moved)))
        conn.execute(
            state.insert(), [{"step": step, "kpi_id": s, "fingerprint": stamps[s]} for s in moved]
        )


@dataclass(frozen=True)
class MonthCubeStamp:
    """What a monthly cube was made with: its statement's hash, and the first and last
    days the calendar put in a month (None: the calendar had none)."""

    statement: str
    first: dt.date | None
    last: dt.date | None

    def encode(self) -> str:
        return json.dumps([self.statement, _iso(self.first), _iso(self.last)])

    @classmethod
    def decode(cls, text: str | None) -> MonthCubeStamp | None:
        try:
            statement, first, last = json.loads(text or "")
            return cls(statement, _date(first), _date(last))
        except (TypeError, ValueError):  # none stored, or written by other code
            return None


class _Rebuild:
    def __repr__(self) -> str:
        return "REBUILD"


REBUILD = _Rebuild()


def month_cube_start(
    old: MonthCubeStamp | None,
    new: MonthCubeStamp,
    changed: dt.date | None,
    month_of: Callable[[dt.date], dt.date | None],
) -> dt.date | _Rebuild | None:
    """The first day from which a monthly cube stamped ``old`` must be computed again now
    (``new``), its source's first changed day being ``changed``: the first day of a month,
    a day after the calendar, REBUILD (all of it), or None (nothing changed).
    ``month_of`` gives the first day of a day's month in the calendar (None: in none)."""
    if old is None or old.statement != new.statement or old.first != new.first:
        return REBUILD
    if new.first is None or new.last is None or old.last is None:
        return REBUILD  # no calendar, then or now: nothing to keep a part of
    starts = []
    if old.last != new.last:
        # The days after the earlier as-of date, up to the later one, joined a month or
        # left it. Their month's row changes: it starts on the day after that as-of date
        # when a month starts there, else it holds that as-of date, which both calendars
        # put in a month.
        kept = min(old.last, new.last)
        after = kept + dt.timedelta(days=1)
        starts.append(after if after.day == 1 else month_of(kept))
    if changed is not None:
        if changed < new.first:
            return REBUILD
        # After the calendar, a day's rows are a row of its own; in it, of its month.
        starts.append(changed if changed > new.last else month_of(changed))
    if not starts:
        return None
    if any(start is None for start in starts):
        return REBUILD  # a day the calendar should hold but does not: start afresh
    return min(starts)


def _month_of(conn: Connection, tables: KpiTables) -> Callable[[dt.date], dt.date | None]:
    day_periods = tables.compiler.day_periods

    def month_of(day: dt.date) -> dt.date | None:
        found = sa.select(day_periods.c.period_start).where(
            day_periods.c.grain == "month", day_periods.c.day == day
        )
        return conn.execute(found).scalar()

    return month_of


def _statement_hash(statement: Statement, dialect: Dialect) -> str:
    if not isinstance(statement, Compiled):
        statement = compile_select(dialect, statement)
    made = json.dumps([statement.sql, statement.params], sort_keys=True, default=str)
    return hashlib.sha256(made.encode()).hexdigest()[:16]


def _iso(day: dt.date | None) -> str | None:
    return None if day is None else day.isoformat()


def _date(text: str | None) -> dt.date | None:
    return None if text is None else dt.date.fromisoformat(text)
