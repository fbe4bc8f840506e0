"""Refreshing the KPI tables in a warehouse: periods, values, targets, comparisons.

Each step replaces its rows in one transaction, computed by SQL inside the warehouse.
The Dagster assets are thin wrappers around these functions.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import itertools
import os
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement

from kpi.compute.changes import (
    ANOMALIES,
    COMPARISONS,
    FULL,
    READERS,
    TARGETS,
    VALUES,
    changed_since,
    cube_days_select,
    goal_fingerprints,
    mark_clean,
    mark_dirty,
    pending,
    source_days_select,
    statement_fingerprint,
    supports_incremental,
    value_fingerprints,
    whole_history_as_full,
)
from kpi.compute.compared_windows import compared_values_statement
from kpi.compute.coverage import covered_until, kpi_coverage, source_coverage
from kpi.compute.cube_upkeep import (  # noqa: F401 - CUBES and refresh_cubes re-exported
    CUBES,
    DailyStamps,
    cube_statements,
    drop_rollup_tables,
    keep_daily_cubes,
    keep_month_cubes,
    kept_daily_cubes,
    refresh_cubes,
)
from kpi.compute.period_tables import (  # noqa: F401 - the periods step, re-exported
    first_day_of_data,
    refresh_calendar,
    refresh_periods,
)
from kpi.compute.periods import Period
from kpi.compute.slice_stamps import moved_sources
from kpi.compute.tables import KpiTables
from kpi.language.catalog import Catalog
from kpi.language.models import Kpi
from kpi.publication.catalog_tables import catalog_rows, create_scorecard_view, record_changes
from kpi.status.anomalies import flag_anomalies
from kpi.status.comparisons import comparison_select
from kpi.status.targets import daily_history, phase_targets
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.locks import DDL
from kpi.warehouse.statements import Compiled, StatementCache, compile_select, run_parameter

# Days of values an anomaly of day D rests on: the 28 days before it (its band), each judged
# against the same weekday in the 4 weeks before that (kpi.status.anomalies), and a week spare.
ANOMALY_CONTEXT_DAYS = 2 * 28 + 7
# Which KPIs a run recomputes from which day follows the data: a kpi_values statement
# compiled longer ago than this goes from the cache on the first run that does not use it.
VALUES_STATEMENTS_UNUSED_FOR = dt.timedelta(days=30)
# Comparison statements run at once on DuckDB in an incremental refresh (at most one a core).
MAX_STATEMENT_WORKERS = 4


def default_as_of(catalog: Catalog, now: dt.datetime | None = None) -> dt.date:
    """Yesterday in the reporting time zone: the last day that is complete."""
    now = now or dt.datetime.now(dt.UTC)
    return now.astimezone(ZoneInfo(catalog.reporting.time_zone)).date() - dt.timedelta(days=1)


def refresh_kpi_values(
    wh: Warehouse,
    tables: KpiTables,
    kpi_ids: list[str] | None = None,
    computed_at: dt.datetime | None = None,
    full_refresh: bool = False,
) -> dict[str, int]:
    """Recompute the values of ``kpi_ids`` (default: all) in the warehouse; rows per KPI.

    Incremental (kpi.compute.changes): only the periods ending on or after the first day
    that changed in a source the KPI reads (or in the periods), the whole history of a KPI
    whose definition changed, and nothing for a KPI nothing it reads changed;
    ``full_refresh`` recomputes everything and gives the same rows.

    One transaction: with cubes, the cubes the KPIs read are brought up to date first
    (rebuilt, or rewritten from the first changed day: kpi.compute.cube_upkeep), and every KPI
    that is a function of its period's sums is a projection of the period rollups
    (kpi.compute.rollups); each other KPI is the compiler's query of all its grains and
    slices. A reader sees all of the old values or all of the new.
    """
    computed_at = computed_at or dt.datetime.now(dt.UTC)
    kpi_ids = kpi_ids or tables.catalog.evaluation_order()
    if not kpi_ids:  # a catalogue without KPIs
        return {}
    catalog, compiler, values = tables.catalog, tables.compiler, tables.values
    state, days = tables.refresh_state, tables.source_days
    incremental = supports_incremental(wh.dialect)
    if incremental:
        wh.ensure_tables([state, days, tables.compiled_statements])
    fingerprints = {k: v for k, v in value_fingerprints(catalog).items() if k in kpi_ids}
    read = {s for k in kpi_ids for s in compiler.source_names(catalog.kpis[k])}
    # The cube statements are built before the transaction starts: on PostgreSQL the cube
    # rebuild holds its tables' locks until the commit. The values statement depends on the
    # changes found inside it; a daily run takes it from the cache of compiled statements.
    cube_sources = [s for s in compiler.cubes.tables if s in read] if compiler.use_cubes else []

    @functools.cache
    def shape() -> str:  # the cubes' and the values' cached statements: ~3 ms to compute
        return statement_fingerprint(catalog, tables.layout(), wh.dialect_and_driver)

    cubes = cube_statements(wh, tables, cube_sources, incremental, fingerprint=shape)
    # The day map too: the cubes and the rollups read it in separate statements, and a
    # calendar refresh (which holds it) committing between them would split their periods.
    locks = [DDL, *cubes.tables, values, compiler.day_periods]
    kept = [state, days, tables.compiled_statements] if incremental else []
    with wh.transaction(lock=locks + kept) as conn:
        # A daily cube is kept and rewritten from its source's first changed day, read
        # from a scan of the source's day checksums; or rebuilt whole first, with its rows'
        # checksums, and the days read from it: either way the source is scanned once.
        stamps = (
            kept_daily_cubes(conn, tables, cubes.daily, whole=full_refresh)
            if incremental
            else DailyStamps({}, {}, frozenset())
        )
        Warehouse.rebuild_tables_in(
            conn, [(c.table, c.whole) for c in cubes.daily if c.source not in stamps.kept]
        )
        if cube_sources and (cubes.cache is None or cubes.cache.misses):
            drop_rollup_tables(conn, tables, cube_sources)
        todo = dict.fromkeys(kpi_ids, FULL)
        if not incremental:
            Warehouse.rebuild_tables_in(conn, [(m.table, m.whole) for m in cubes.monthly])
        else:
            if full_refresh:
                # Every step's state of these KPIs goes: they and what reads them are
                # recomputed whole, and nothing is left to read back or mark dirty.
                conn.execute(state.delete().where(state.c.kpi_id.in_(kpi_ids)))
                todo = dict.fromkeys(fingerprints, FULL)
            else:
                todo = pending(conn, state, VALUES, fingerprints)
            rebuilt = [s for s in cube_sources if s not in stamps.kept]
            scans = {
                s: (
                    cube_days_select(s, compiler.cubes.tables[s])
                    if s in rebuilt
                    else source_days_select(catalog, s, compiler.tables[s])
                )
                for s in sorted(read)
                if s in catalog.sources
            }
            until = {
                s: functools.partial(covered_until, grain=catalog.sources[s].grain) for s in scans
            }
            readers = {
                s: [k for k in catalog.kpis if s in compiler.source_names(catalog.kpis[k])]
                for s in scans
            }
            # A full refresh of every KPI that reads a source needs no first changed day
            # there (the source's days are stored all the same); one of only some of them
            # does, for the others' next refresh.
            recomputed = (
                {s for s in scans if set(readers[s]) <= set(kpi_ids)} if full_refresh else set()
            )
            changed = changed_since(conn, days, scans, rebuilt, until, whole=recomputed)
            # After the calendar and the changed days are known, before the slice stamps
            # read them: the cubes are rewritten from the first day or month that changed.
            keep_daily_cubes(conn, tables, cubes.daily, stamps, changed)
            keep_month_cubes(conn, tables, cubes.monthly, changed, whole=full_refresh)
            if cubes.cache is not None:
                cubes.cache.save(conn, computed_at)
            # A dense slice's values are reported on every period: a value that appeared or
            # went away changes the periods before the changed days too.
            for source in moved_sources(conn, state, compiler, changed):
                changed[source] = FULL
            for source, day in changed.items():
                if day is None:
                    continue
                for k in readers[source]:
                    if k in todo or k in kpi_ids:
                        todo[k] = min(todo.get(k, day), day)
                # KPIs outside this refresh keep the change for their next one.
                outside = {k: day for k in readers[source] if k not in kpi_ids}
                mark_dirty(conn, state, [VALUES], outside)
        todo = whole_history_as_full(conn, tables.periods, days, catalog, todo)
        if todo:
            groups = {
                (None if since == FULL else since): sorted(group)
                for since, group in _by_day(todo).items()
            }
            cache = None
            if incremental:
                keys = [_values_key(group, since) for since, group in groups.items()]
                cache = StatementCache.load(conn, tables.compiled_statements, VALUES, shape(), keys)
            for since, group in groups.items():
                statement = _values_statement(
                    tables, group, computed_at, since, conn.dialect, cache
                )
                where = values.c.kpi_id.in_(group)
                if since is not None:
                    where = sa.and_(where, values.c.period_end >= since)
                Warehouse.replace_from_select_in(conn, values, where, [statement])
            if cache is not None:
                cache.save(conn, computed_at, unused_for=VALUES_STATEMENTS_UNUSED_FOR)
            if incremental:
                done = {k: fingerprints[k] for k in todo}
                if full_refresh:  # their state rows were deleted above
                    mark_clean(conn, state, VALUES, done, computed_at, replacing=False)
                else:
                    mark_dirty(conn, state, READERS[VALUES], todo)
                    mark_clean(conn, state, VALUES, done, computed_at)
        count = (
            sa.select(values.c.kpi_id, sa.func.count())
            .where(values.c.kpi_id.in_(kpi_ids))
            .group_by(values.c.kpi_id)
        )
        found = dict(conn.execute(count).all())
    return {kpi_id: int(found.get(kpi_id, 0)) for kpi_id in kpi_ids}


def _values_statement(
    tables: KpiTables,
    kpi_ids: list[str],
    computed_at: dt.datetime,
    since: dt.date | None,
    dialect: Dialect,
    cache: StatementCache | None,
) -> Compiled:
    """The kpi_values rows of ``kpi_ids`` for the periods ending on or after ``since``
    (all with None), as one UNION ALL; taken from ``cache`` when it holds it. Building and
    compiling it cost ~0.35 s of a daily run; the same KPIs give the same SQL whatever the
    day (the first period and the timestamp are run parameters)."""
    kpi_ids = sorted(kpi_ids)  # the same KPIs give the same statement, and the same key
    run = {"computed_at": computed_at, **({} if since is None else {"since": since})}

    def build() -> Compiled:
        stamp = run_parameter("computed_at", computed_at, sa.TIMESTAMP(timezone=True))
        after = None if since is None else run_parameter("since", since, sa.Date())
        return compile_select(dialect, _values_select(tables, kpi_ids, stamp, after))

    if cache is None:
        return build()
    return cache.get(_values_key(kpi_ids, since), run, build)


def _values_key(kpi_ids: list[str], since: dt.date | None) -> str:
    """The cache key of the kpi_values statement of ``kpi_ids``, full or incremental."""
    mode = "full" if since is None else "since"
    # A catalogue's KPI ids joined would make keys of kilobytes.
    group = hashlib.sha256(",".join(sorted(kpi_ids)).encode()).hexdigest()[:16]
    return f"{len(kpi_ids)} KPIs|{group}|{mode}"


def _values_select(
    tables: KpiTables, kpi_ids: list[str], stamp: ColumnElement, since: ColumnElement | None
) -> sa.Select | sa.CompoundSelect:
    compiler = tables.compiler
    fused: list[str] = []
    if compiler.use_cubes:
        fused = [k for k in kpi_ids if tables.rollups.fusable(tables.catalog.kpis[k])]
    selects = [tables.rollups.values_select(fused, stamp, since)] if fused else []
    for kpi_id in kpi_ids:
        if kpi_id not in fused:
            # Row order is for people reading one query; an INSERT needs none.
            selects += [q.order_by(None) for q in compiler.compile_all(kpi_id, stamp, since)]
    return sa.union_all(*selects) if len(selects) > 1 else selects[0]


def _by_day(todo: dict[str, dt.date]) -> dict[dt.date, list[str]]:
    groups: dict[dt.date, list[str]] = {}
    for kpi_id, day in todo.items():
        groups.setdefault(day, []).append(kpi_id)
    return groups


def _todo(
    wh: Warehouse, conn, tables: KpiTables, step: str, fingerprints: dict[str, str]
) -> dict[str, dt.date]:
    """What ``step`` must recompute: per KPI, the first period end (``FULL``: all)."""
    if not supports_incremental(wh.dialect):
        return dict.fromkeys(fingerprints, FULL)
    return pending(conn, tables.refresh_state, step, fingerprints)


def refresh_targets(
    wh: Warehouse, tables: KpiTables, periods: list[Period], full_refresh: bool = False
) -> int:
    """Rewrite the ``kpi_targets`` of the periods that changed (all with ``full_refresh``).
    Seasonal phasing reads last year's daily values from ``kpi_values``, so refresh those
    first (without them it falls back to linear, and says so). Returns the rows written."""
    catalog, targets, state = tables.catalog, tables.targets, tables.refresh_state
    fingerprints = goal_fingerprints(catalog)
    if supports_incremental(wh.dialect):
        wh.ensure_tables([state])
    history = daily_history(wh, tables.values, catalog)
    with wh.transaction(lock=[targets, state]) as conn:
        if full_refresh and supports_incremental(wh.dialect):
            conn.execute(state.delete().where(state.c.step == TARGETS))
        todo = _todo(wh, conn, tables, TARGETS, fingerprints)
        if not todo:
            return 0
        first = min(todo.values())
        recent = [p for p in periods if p.period_end >= first]
        ends = {(p.grain, p.period_start): p.period_end for p in recent}
        rows = [
            r.__dict__
            for r in phase_targets(catalog, recent, history)
            if r.kpi_id in todo and ends[(r.grain, r.period_start)] >= todo[r.kpi_id]
        ]
        # Targets of KPIs no longer defined go too, as in a full rewrite.
        stale = [targets.c.kpi_id.not_in(list(catalog.kpis))]
        for since, group in _by_day(todo).items():
            stale.append(
                sa.and_(targets.c.kpi_id.in_(group), _periods_from(targets, periods, since))
            )
        conn.execute(targets.delete().where(sa.or_(*stale)))
        inserted = Warehouse.insert_rows_in(conn, targets, pd.DataFrame(rows))
        if supports_incremental(wh.dialect):
            mark_dirty(conn, state, READERS[TARGETS], todo)
            mark_clean(conn, state, TARGETS, {k: fingerprints[k] for k in todo}, _now())
    return inserted


def _periods_from(table: sa.Table, periods: list[Period], since: dt.date):
    """Rows of ``table`` (keyed by grain and period_start) whose period ends on or after
    ``since``: a grain's periods are contiguous, so those are the ones starting at or after
    the start of the first such period (or ``since``, for periods not in ``periods`` any
    more)."""
    if since == FULL:
        return sa.true()
    firsts: dict[str, dt.date] = {}
    for p in periods:
        if p.period_end >= since:
            firsts[p.grain] = min(firsts.get(p.grain, since), p.period_start)
    later = [table.c.period_start >= since]
    later += [sa.and_(table.c.grain == g, table.c.period_start >= d) for g, d in firsts.items()]
    return sa.or_(*later)


def refresh_comparisons(
    wh: Warehouse,
    tables: KpiTables,
    computed_at: dt.datetime | None = None,
    full_refresh: bool = False,
) -> int:
    """Recompute ``kpi_comparisons`` from ``kpi_values``, ``kpi_targets`` and ``kpi_changes``:
    the periods that changed since the last run (kpi.compute.changes), all with
    ``full_refresh``. Returns the rows of the table.

    Its statements are compiled once and kept in the warehouse
    (kpi.warehouse.statements) until the catalog, the kernel or the warehouse's dialect
    changes."""
    computed_at = computed_at or dt.datetime.now(dt.UTC)
    catalog, comparisons, state = tables.catalog, tables.comparisons, tables.refresh_state
    fingerprints = goal_fingerprints(catalog)
    incremental = supports_incremental(wh.dialect)
    compared = tables.compared_windows  # the run's compared windows, written first
    scratch = [tables.compared_values] if compared is not None else []
    if incremental:
        wh.ensure_tables([state, tables.compiled_statements, *scratch])
    elif scratch:
        wh.ensure_tables(scratch)
    locked = [comparisons, state, *([tables.compiled_statements] if incremental else []), *scratch]
    with wh.transaction(lock=locked) as conn:
        if full_refresh and incremental:
            conn.execute(state.delete().where(state.c.step == COMPARISONS))
        todo = whole_history_as_full(
            conn,
            tables.periods,
            tables.source_days,
            catalog,
            _todo(wh, conn, tables, COMPARISONS, fingerprints),
        )
        stale = [comparisons.c.kpi_id.not_in(list(catalog.kpis))]
        for kpi_id, since in todo.items():
            keep = comparisons.c.kpi_id == kpi_id
            stale.append(
                keep if since == FULL else sa.and_(keep, comparisons.c.period_end >= since)
            )
        cache = None
        if incremental:
            layout = tables.layout()
            fingerprint = statement_fingerprint(catalog, layout, wh.dialect_and_driver)
            cache = StatementCache.load(conn, tables.compiled_statements, COMPARISONS, fingerprint)
        workers = min(MAX_STATEMENT_WORKERS, os.cpu_count() or 1)
        concurrent = wh.dialect == "duckdb" and wh.shares_database and workers > 1
        concurrent = concurrent and FULL not in todo.values()
        if compared is not None and any(compared.covers(catalog.kpis[k]) for k in todo):
            write = compared_values_statement(compared, conn.dialect, cache)
            if write is not None and concurrent:
                # The concurrent readers see what is committed only: the scratch rows are
                # committed first, under this transaction's lock of their table.
                with wh.transaction(lock=scratch) as first:
                    Warehouse.replace_from_select_in(first, scratch[0], None, [write])
            elif write is not None:
                Warehouse.replace_from_select_in(conn, scratch[0], None, [write])
        statements = _comparison_statements(tables, todo, computed_at, conn.dialect, cache)
        if concurrent:
            # A few rows per statement: planning is the cost, and it runs on one core.
            Warehouse.replace_from_selects_concurrently_in(
                conn, comparisons, sa.or_(*stale), statements, workers
            )
        else:
            Warehouse.replace_from_selects_overlapped_in(
                conn, comparisons, sa.or_(*stale), statements
            )
        if cache is not None:
            cache.save(conn, computed_at)
        if incremental:
            mark_clean(conn, state, COMPARISONS, {k: fingerprints[k] for k in todo}, computed_at)
        return int(conn.execute(sa.select(sa.func.count()).select_from(comparisons)).scalar())


def _comparison_statements(
    tables: KpiTables,
    todo: dict[str, dt.date],
    computed_at: dt.datetime,
    dialect: Dialect,
    cache: StatementCache | None,
) -> Iterator[Compiled]:
    """Per KPI and grain to recompute: one statement of all slices on DuckDB (it plans each at
    length), one per slice elsewhere (PostgreSQL misjudges their filter together); cached.

    On DuckDB, with the cache, a full recompute runs the incremental statement from
    ``FULL`` (a day before any period): the first daily run after a full load or a backfill
    then finds every statement compiled, where it used to compile them all again (~2.5 s
    of the first day on the 425-day demo). PostgreSQL keeps a statement of its own for a
    full recompute: it plans the incremental one's period filters badly over the whole
    history (nested loops; the 425-day demo's comparisons took 268 s instead of ~20 s).
    There a full recompute compiles the incremental statements too, without running them,
    so the first daily run after it finds them (PostgreSQL's comparisons took 3.1-3.8 s on
    that day, compiling them, and 0.6-1.4 s on the next ones)."""
    from_full = cache is not None and dialect.name == "duckdb"
    for kpi_id in (k for k in tables.catalog.evaluation_order() if k in todo):
        kpi, since = tables.catalog.kpis[kpi_id], todo[kpi_id]
        if not from_full:
            since = None if since == FULL else since
        slices = tables.compiler.slices(kpi)
        groups = [slices] if dialect.name == "duckdb" else [[dims] for dims in slices]
        for grain, group in itertools.product(kpi.grains, groups):
            build = functools.partial(
                _comparison_statement, tables, kpi, str(grain), group, computed_at, dialect
            )
            if cache is None:
                yield build(since)
                continue
            together = "*" if len(group) > 1 else ",".join(group[0])
            key = f"{kpi_id}|{grain}|{together}|"
            run = {"computed_at": computed_at}
            if since is not None:
                yield cache.get(
                    key + "since", {**run, "since": since}, lambda b=build, s=since: b(s)
                )
                continue
            yield cache.get(key + "full", run, lambda b=build: b(None))
            # Compiled for the next daily run, not run now: its first day is a run parameter,
            # for which FULL stands in.
            cache.get(key + "since", {**run, "since": FULL}, lambda b=build: b(FULL))


def _comparison_statement(
    tables: KpiTables,
    kpi: Kpi,
    grain: str,
    group: list[tuple[str, ...]],
    computed_at: dt.datetime,
    dialect: Dialect,
    since: dt.date | None,
) -> Compiled:
    """The comparison rows of ``kpi`` at ``grain`` for the slices of ``group``, compiled;
    of the periods ending on or after ``since`` (all with None)."""
    select = comparison_select(
        tables.compiler,
        kpi,
        grain,
        group,
        tables.values,
        tables.targets,
        computed_at,
        changes=tables.changes,
        since=since,
        compared=tables.compared_windows,
    )
    return compile_select(dialect, select)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def refresh_catalog(wh: Warehouse, tables: KpiTables, now: dt.datetime | None = None) -> list[str]:
    """Rewrite ``kpi_catalog`` and record definition versions; return the KPIs that changed."""
    now = now or dt.datetime.now(dt.UTC)
    wh.replace_rows(tables.catalog_table, None, catalog_rows(tables.catalog))
    return record_changes(wh, tables.changes, tables.catalog, now)


def refresh_scorecard_view(wh: Warehouse, tables: KpiTables) -> str:
    return create_scorecard_view(wh, tables)


def refresh_anomalies(
    wh: Warehouse, tables: KpiTables, threshold: float = 3.0, full_refresh: bool = False
) -> pd.DataFrame:
    """Flag daily anomalies of every KPI's total row, for the days that changed since the
    last run (kpi.compute.changes; every day with ``full_refresh``); return every flagged
    row of the table."""
    catalog, anomalies, state = tables.catalog, tables.anomalies, tables.refresh_state
    incremental = supports_incremental(wh.dialect)
    fingerprints = {k: f"{fp}:{threshold}" for k, fp in value_fingerprints(catalog).items()}
    if incremental:
        wh.ensure_tables([state])
    # Days the KPI's sources have not loaded (yet) are unknown, not zero (kpi.compute.coverage).
    known = kpi_coverage(tables.compiler, source_coverage(wh, tables.compiler))
    with wh.transaction(lock=[anomalies, state]) as conn:
        if full_refresh and incremental:
            conn.execute(state.delete().where(state.c.step == ANOMALIES))
        todo = _todo(wh, conn, tables, ANOMALIES, fingerprints)
        if todo:
            flagged = _anomalies(conn, tables, threshold, todo, known)
            stale = [anomalies.c.kpi_id.not_in(list(catalog.kpis))]
            for since, group in _by_day(todo).items():
                stale.append(
                    sa.and_(anomalies.c.kpi_id.in_(group), anomalies.c.period_start >= since)
                )
            conn.execute(anomalies.delete().where(sa.or_(*stale)))
            Warehouse.insert_rows_in(conn, anomalies, flagged)
            if incremental:
                mark_clean(conn, state, ANOMALIES, {k: fingerprints[k] for k in todo}, _now())
    return wh.read(sa.select(anomalies).where(anomalies.c.is_anomaly))


def _anomalies(
    conn, tables: KpiTables, threshold: float, todo: dict[str, dt.date], known: dict
) -> pd.DataFrame:
    """The anomaly rows of the KPIs of ``todo``, from their first day to recompute on."""
    v = tables.values
    totals = [v.c[d].is_(None) for d in tables.catalog.dimensions]
    # A day is judged against the 28 days before it, each against the 4 weeks before that.
    context = min(todo.values()) - dt.timedelta(days=ANOMALY_CONTEXT_DAYS)
    # Only the total row of each KPI by day: a few hundred rows per KPI, fine in pandas.
    query = sa.select(v.c.kpi_id, v.c.period_start, v.c.value, v.c.definition_version).where(
        v.c.grain == "day", v.c.kpi_id.in_(list(todo)), v.c.period_start >= context, *totals
    )
    daily = pd.DataFrame(conn.execute(query).all(), columns=list(query.selected_columns.keys()))
    flagged = flag_anomalies(daily[["kpi_id", "period_start", "value"]], threshold, known)
    versions = dict(zip(daily["kpi_id"], daily["definition_version"], strict=False))
    flagged["definition_version"] = flagged["kpi_id"].map(versions)
    start = pd.to_datetime(flagged["period_start"]).dt.date
    since = flagged["kpi_id"].map(todo)
    return flagged[start >= since].reset_index(drop=True)
