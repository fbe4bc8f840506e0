"""The cache of compiled statements (kpi.warehouse.statements) and the comparisons it serves.

The cache rests on one claim: a comparison statement, and the kpi_values statement of a set
of KPIs, is the same SQL with the same constant parameters whatever the first period it
recomputes (``since``) and the run's timestamp, which are its only run parameters. The first
tests hold every statement of the shipped catalogue to it; the others run the steps on both
warehouses and compare a run served from the cache with a recompute of everything compiled
afresh.
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import shutil

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from kpi import refresh
from kpi.compute import changes
from kpi.compute.changes import (
    COMPARISONS,
    VALUES,
    catalog_fingerprint,
    statement_fingerprint,
)
from kpi.compute.tables import KpiTables
from kpi.language.loader import load_catalog
from kpi.refresh import (
    CUBES,
    _values_key,
    _values_statement,
    refresh_comparisons,
    refresh_kpi_values,
)
from kpi.status.comparisons import comparison_select
from kpi.warehouse.connection import Warehouse, make_engine
from kpi.warehouse.statements import (
    RUN_PREFIX,
    Compiled,
    StatementCache,
    _decode,
    _encode,
    compile_select,
    compiled_statements_table,
    run_parameter,
)
from tests.kpi.compute.test_changes import (
    AS_OF,
    T1,
    T2,
    _loaded,
    _reads_traffic,
    _run,
    _same_rows,
)

D = dt.date


@pytest.fixture
def tables() -> KpiTables:
    return KpiTables.for_catalog(load_catalog(), use_cubes=True)


def _dialects():
    # The drivers the warehouses run: DuckDB's, and psycopg 3 (it renders ``::TYPE`` casts).
    return [make_engine("duckdb:///:memory:").dialect, postgresql.psycopg.dialect()]


def _compiled(tables: KpiTables, dialect, kpi, grain, group, since, at) -> Compiled:
    select = comparison_select(
        tables.compiler,
        kpi,
        str(grain),
        group,
        tables.values,
        tables.targets,
        at,
        changes=tables.changes,
        since=since,
    )
    return compile_select(dialect, select)


def test_every_comparison_statement_depends_on_the_run_only_through_its_run_parameters(tables):
    checked = 0
    for dialect in _dialects():
        for kpi in tables.catalog.kpis.values():
            # The statement of all slices (DuckDB's) and one per slice (PostgreSQL's).
            slices = tables.compiler.slices(kpi)
            groups = [slices, *([[dims] for dims in slices] if len(slices) > 1 else [])]
            for grain, group in itertools.product(kpi.grains, groups):
                a = _compiled(tables, dialect, kpi, grain, group, D(2026, 3, 1), T1)
                b = _compiled(tables, dialect, kpi, grain, group, D(2025, 7, 9), T2)
                assert a.sql == b.sql, (kpi.id, grain, group)
                assert a.names == b.names and a.columns == b.columns
                constants = {k: v for k, v in a.params.items() if not k.startswith(RUN_PREFIX)}
                others = {k: v for k, v in b.params.items() if not k.startswith(RUN_PREFIX)}
                assert constants == others, (kpi.id, grain, group)
                assert a.params[f"{RUN_PREFIX}since"] == D(2026, 3, 1)
                assert b.params[f"{RUN_PREFIX}computed_at"] == T2
                checked += 1
    # Both forms of every KPI and grain (its slices together, and each alone where it has
    # several: 56 of 84 with 161 slices in all), on both dialects.
    assert checked == 2 * (84 + 161 - 28)


def test_every_values_statement_depends_on_the_run_only_through_its_run_parameters(tables):
    kpis = list(tables.catalog.kpis)
    fused = [k for k in kpis if tables.rollups.fusable(tables.catalog.kpis[k])]
    assert fused and len(fused) < len(kpis)  # both kinds of KPI query are in the statement
    checked = 0
    for dialect in _dialects():
        for group in (kpis, kpis[:3], [kpis[-1]]):
            for since in (D(2026, 3, 1), None):
                a = _values_statement(tables, group, T1, since, dialect, None)
                # The same KPIs in another order are the same statement, under one key.
                assert _values_key(group, since) == _values_key(group[::-1], since)
                other = None if since is None else D(2025, 7, 9)
                b = _values_statement(tables, group[::-1], T2, other, dialect, None)
                assert a.sql == b.sql and a.names == b.names and a.columns == b.columns
                constants = {k: v for k, v in a.params.items() if not k.startswith(RUN_PREFIX)}
                others = {k: v for k, v in b.params.items() if not k.startswith(RUN_PREFIX)}
                assert constants == others, group
                assert b.params[f"{RUN_PREFIX}computed_at"] == T2
                if since is not None:
                    assert a.params[f"{RUN_PREFIX}since"] == since
                else:
                    assert f"{RUN_PREFIX}since" not in a.params
                checked += 1
    assert checked == 12


def test_the_kernel_digest_follows_its_source(monkeypatch, tmp_path):
    """Any edit of the kernel's code compiles everything again; a kernel installed without
    its sources (simulated: KERNEL_DIR pointed at a copy, then at an empty folder, since
    this checkout has its sources) reuses nothing across processes."""
    kernel = tmp_path / "kpi"
    shutil.copytree(changes.KERNEL_DIR, kernel, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(changes, "KERNEL_DIR", kernel)
    changes.kernel_code_digest.cache_clear()
    try:
        before = changes.kernel_code_digest()
        changes.kernel_code_digest.cache_clear()
        assert changes.kernel_code_digest() == before  # stable while nothing changes
        module = kernel / "status" / "comparisons.py"
        module.write_text(module.read_text() + "\n# an edit\n")
        changes.kernel_code_digest.cache_clear()
        assert changes.kernel_code_digest() != before

        monkeypatch.setattr(changes, "KERNEL_DIR", tmp_path / "bytecode_only")
        changes.kernel_code_digest.cache_clear()
        one = changes.kernel_code_digest()
        changes.kernel_code_digest.cache_clear()
        assert changes.kernel_code_digest() != one
    finally:
        changes.kernel_code_digest.cache_clear()


def test_parameter_values_come_back_from_the_cache_with_their_types():
    values = [
        None,
        True,
        7,
        0.25,
        float("inf"),
        "Paid Search",
        D(2026, 2, 28),
        dt.datetime(2026, 3, 1, 6, 30, tzinfo=dt.UTC),
        decimal.Decimal("1234.56789"),
    ]
    for value in values:
        back = _decode(_encode(value))
        assert back == value and type(back) is type(value)


def test_a_bind_named_after_a_column_that_starts_like_a_run_parameter_is_a_constant():
    # A filter on a source column ``run_type`` binds ``run_type_1``: not a run parameter.
    select = sa.select(sa.literal(1, sa.Integer).label("one")).where(
        sa.column("run_type").in_(["a", "b"]),
        sa.column("day") >= run_parameter("since", D(2026, 3, 1), sa.Date()),
    )
    cache = StatementCache(sa.table("t"), "test", "fp", {})
    dialect = make_engine("duckdb:///:memory:").dialect
    build = lambda: compile_select(dialect, select)  # noqa: E731
    compiled = cache.get("k|since", {"since": D(2026, 3, 1)}, build)
    kept = cache._new["k|since"].params
    assert f"{RUN_PREFIX}since" not in kept
    assert sorted(v for k, v in kept.items() if k.startswith("run_type")) == ["a", "b"]
    assert compiled.params[f"{RUN_PREFIX}since"] == D(2026, 3, 1)
    with pytest.raises(ValueError, match="run_since"):  # a run parameter left out is refused
        StatementCache(sa.table("t"), "test", "fp", {}).get("k|since", {}, build)


def test_old_statements_this_run_did_not_use_go_and_a_run_loads_only_its_own(tmp_path):
    wh = Warehouse(f"duckdb:///{tmp_path / 'cache.duckdb'}")
    table = compiled_statements_table(sa.MetaData())
    wh.ensure_tables([table])
    dialect = wh.engine.dialect

    def statement(n: int) -> Compiled:
        return compile_select(dialect, sa.select(sa.literal(n, sa.Integer).label("n")))

    def run(keys: list[str], used: list[str], at: dt.datetime) -> StatementCache:
        with wh.transaction() as conn:
            cache = StatementCache.load(conn, table, VALUES, "fp", keys)
            for i, key in enumerate(used):
                cache.get(key, {}, lambda i=i: statement(i))
            cache.save(conn, at, unused_for=dt.timedelta(days=30))
        return cache

    day0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    run(["daily", "monday"], ["daily", "monday"], day0)
    run(["weekly"], ["weekly"], day0 + dt.timedelta(days=25))
    later = run(["daily", "weekly"], ["daily"], day0 + dt.timedelta(days=40))
    assert set(later._found) == {"daily", "weekly"} and later.hits == 1  # only those asked
    kept = wh.read(sa.select(table.c.statement_key, table.c.compiled_at))
    # Compiled 40 days ago and unused today: gone. Used today: kept, however old. Compiled
    # 15 days ago: kept.
    assert sorted(kept["statement_key"]) == ["daily", "weekly"]
    wh.dispose()


def test_a_run_of_hits_writes_nothing_and_a_statement_of_another_fingerprint_still_goes(
    tmp_path,
):
    wh = Warehouse(f"duckdb:///{tmp_path / 'cache.duckdb'}")
    table = compiled_statements_table(sa.MetaData())
    wh.ensure_tables([table])
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    sent: list[str] = []
    sa.event.listen(wh.engine, "before_cursor_execute", lambda *a: sent.append(a[2]))

    def run(fingerprint: str) -> list[str]:
        sent.clear()
        with wh.transaction() as conn:
            cache = StatementCache.load(conn, table, VALUES, fingerprint, ["k"])
            build = lambda: compile_select(  # noqa: E731
                wh.engine.dialect, sa.select(sa.literal(1, sa.Integer).label("one"))
            )
            cache.get("k", {}, build)
            cache.save(conn, at, unused_for=dt.timedelta(days=30))
        return [s.split()[0].upper() for s in sent if not s.lstrip().upper().startswith("SELECT")]

    assert run("fp") == ["DELETE", "INSERT"]  # compiled: stored
    assert run("fp") == []  # a hit, nothing stale: no write at all
    run("fp2")  # the catalogue changed: stored for fp2, fp's statement dropped
    assert sorted(wh.rows(sa.select(table.c.fingerprint))) == [("fp2",)]
    with wh.transaction() as conn:  # a statement of another version, stored by hand
        conn.execute(
            table.insert().values(
                step=VALUES,
                statement_key="k",
                fingerprint="old",
                sql_text="SELECT 1",
                parameters="{}",
                compiled_at=at,
            )
        )
    assert run("fp2") == ["DELETE"]  # a hit, but something stale to drop
    assert sorted(wh.rows(sa.select(table.c.fingerprint))) == [("fp2",)]
    wh.dispose()


def test_a_naive_run_time_cleans_up_in_the_database(tmp_path):
    # computed_at= without a time zone: the age of stored statements is compared by the
    # DELETE, as before the Python check that skips it (which needs an aware time).
    wh = Warehouse(f"duckdb:///{tmp_path / 'cache.duckdb'}")
    table = compiled_statements_table(sa.MetaData())
    wh.ensure_tables([table])
    select = sa.select(sa.literal(1, sa.Integer).label("one"))
    for keys, day in ((["a"], 1), (["b"], 2), (["b"], 3)):
        with wh.transaction() as conn:
            cache = StatementCache.load(conn, table, VALUES, "fp", keys)
            for key in keys:
                cache.get(key, {}, lambda: compile_select(wh.engine.dialect, select))
            cache.save(conn, dt.datetime(2026, 1, day), unused_for=dt.timedelta(days=30))
    assert sorted(wh.rows(sa.select(table.c.statement_key))) == [("a",), ("b",)]
    wh.dispose()


def _cache_rows(wh, tables, step: str = COMPARISONS) -> pd.DataFrame:
    t = tables.compiled_statements
    columns = (t.c.statement_key, t.c.fingerprint, t.c.compiled_at)
    return wh.read(sa.select(*columns).where(t.c.step == step))


def _revise(wh, tables, day: dt.date, more: int) -> None:
    raw = tables.raw_tables["ga4_traffic"]
    with wh.transaction() as conn:
        conn.execute(raw.update().where(raw.c.date == day).values(sessions=raw.c.sessions + more))


def test_a_run_served_from_the_cache_equals_a_recompute_compiled_afresh(warehouse_url, tables):
    wh = _loaded(warehouse_url, tables)
    # The full load compiled the comparison statements: one per KPI and grain on DuckDB (all
    # its slices together), one per grain and slice on PostgreSQL.
    loaded = _cache_rows(wh, tables)
    together = wh.dialect == "duckdb"
    per_kpi = {
        k.id: len(k.grains) * (1 if together else len(tables.compiler.slices(k)))
        for k in tables.catalog.kpis.values()
    }
    # On DuckDB they are the statements incremental runs use (run from FULL); PostgreSQL
    # runs full ones of its own, and compiles the incremental ones beside them
    # (kpi.refresh._comparison_statements).
    modes = ["|since"] if together else ["|full", "|since"]
    # Beside them, the one statement of the compared windows (kpi.compute.compared_windows),
    # the same for a full recompute and a daily run.
    assert len(loaded) == sum(per_kpi.values()) * len(modes) + 1
    assert (loaded["statement_key"] == "compared_values").sum() == 1
    for mode in modes:
        assert loaded["statement_key"].str.endswith(mode).sum() == sum(per_kpi.values())
    sliced = sum(
        len(k.grains) for k in tables.catalog.kpis.values() if len(tables.compiler.slices(k)) > 1
    )
    fused = loaded["statement_key"].str.contains(r"\|\*\|").sum()
    assert sliced > 0 and fused == (sliced * len(modes) if together else 0)
    # And those of the daily cubes, one per source (the shipped catalogue has no monthly
    # cube; the period rollups are CTEs of the kpi_values statement).
    loaded_cubes = _cache_rows(wh, tables, CUBES)
    assert sorted(loaded_cubes["statement_key"]) == sorted(
        f"cube|{source}" for source in tables.compiler.cubes.tables
    )
    # A first incremental run compiles no comparison statement, on either warehouse.
    _revise(wh, tables, D(2026, 2, 20), 5)
    _run(wh, tables, AS_OF, T2)
    kept = _cache_rows(wh, tables)
    kept_values = _cache_rows(wh, tables, VALUES)
    pd.testing.assert_frame_equal(
        loaded.sort_values("statement_key", ignore_index=True),
        kept.sort_values("statement_key", ignore_index=True),
    )
    assert kept["fingerprint"].nunique() == 1
    # kpi_values: one statement for the KPIs the day changed, beside the full load's.
    assert sorted(k.rsplit("|", 1)[1] for k in kept_values["statement_key"]) == ["full", "since"]
    assert set(kept_values["fingerprint"]) == set(kept["fingerprint"])
    # The cubes: the GA4 cube kept, rewritten from the revised day by a statement of its
    # own (kpi.compute.cube_upkeep), compiled the first time it is needed.
    kept_cubes = _cache_rows(wh, tables, CUBES)
    new_cubes = set(kept_cubes["statement_key"]) - set(loaded_cubes["statement_key"])
    assert new_cubes == {"cube_since|ga4_traffic"}

    # The next one takes every statement from the cache: none is compiled again.
    _revise(wh, tables, D(2026, 2, 10), 3)
    t3 = dt.datetime(2026, 3, 3, 6, tzinfo=dt.UTC)
    _run(wh, tables, AS_OF, t3)
    for step, before in ((COMPARISONS, kept), (VALUES, kept_values), (CUBES, kept_cubes)):
        pd.testing.assert_frame_equal(
            before.sort_values("statement_key", ignore_index=True),
            _cache_rows(wh, tables, step).sort_values("statement_key", ignore_index=True),
        )
    values = wh.read(sa.select(tables.values))
    stamped = pd.to_datetime(values["computed_at"], utc=True)
    ends = pd.to_datetime(values["period_end"]).dt.date
    traffic = values["kpi_id"].map(lambda k: _reads_traffic(tables, k))
    assert ((stamped == pd.Timestamp(t3)) == (traffic & (ends >= D(2026, 2, 10)))).all()
    comparisons = wh.read(sa.select(tables.comparisons))
    stamped = pd.to_datetime(comparisons["computed_at"], utc=True)
    # The run parameters were this run's: its timestamp on the periods it recomputed.
    ends = pd.to_datetime(comparisons["period_end"]).dt.date
    traffic = comparisons["kpi_id"].map(lambda k: _reads_traffic(tables, k))
    assert ((stamped == pd.Timestamp(t3)) == (traffic & (ends >= D(2026, 2, 10)))).all()

    # A recompute of everything, compiled afresh (cache emptied), gives the same rows.
    with wh.transaction() as conn:
        conn.execute(tables.compiled_statements.delete())
    refresh_kpi_values(wh, tables, computed_at=t3, full_refresh=True)
    _same_rows(values, wh.read(sa.select(tables.values)), tables.values)
    refresh_comparisons(wh, tables, computed_at=t3, full_refresh=True)
    _same_rows(comparisons, wh.read(sa.select(tables.comparisons)), tables.comparisons)
    wh.dispose()


def _fingerprint(wh: Warehouse, tables: KpiTables) -> str:
    return statement_fingerprint(tables.catalog, tables.layout(), wh.dialect_and_driver)


def test_the_fingerprint_follows_the_cube_columns_not_only_the_definitions():
    # Cube and rollup columns are numbered in the order KPIs are read: the same definitions
    # in another order (a renamed definitions file) give columns other meanings, and a
    # statement compiled for the old numbering would read the wrong measure.
    catalog = load_catalog()
    reordered = load_catalog()
    reordered.kpis = dict(reversed(list(reordered.kpis.items())))
    assert catalog_fingerprint(catalog) == catalog_fingerprint(reordered)
    tables = KpiTables.for_catalog(catalog, use_cubes=True)
    other = KpiTables.for_catalog(reordered, use_cubes=True)
    assert tables.compiler.cubes.stored != other.compiler.cubes.stored
    raw = KpiTables.for_catalog(catalog, use_cubes=False)  # reads raw tables, not cubes

    def fingerprint(t: KpiTables, driver: str = "duckdb+duckdb_engine") -> str:
        return statement_fingerprint(t.catalog, t.layout(), driver)

    assert fingerprint(tables) == fingerprint(KpiTables.for_catalog(load_catalog(), True))
    assert fingerprint(tables) != fingerprint(other)
    assert fingerprint(tables) != fingerprint(raw)
    assert fingerprint(tables) != fingerprint(tables, "postgresql+psycopg")


def test_a_changed_catalog_compiles_again_and_drops_the_old_statements(warehouse_url, tables):
    wh = _loaded(warehouse_url, tables)
    before = _cache_rows(wh, tables)
    assert set(before["fingerprint"]) == {_fingerprint(wh, tables)}

    # A display name is not part of any definition version, but it is in every row.
    catalog = load_catalog()
    catalog.kpis["sessions"] = catalog.kpis["sessions"].model_copy(update={"name": "Visits"})
    renamed = KpiTables.for_catalog(catalog, use_cubes=True)
    refresh_comparisons(wh, renamed, computed_at=T2, full_refresh=True)

    after = _cache_rows(wh, renamed)
    assert set(after["fingerprint"]) == {_fingerprint(wh, renamed)}
    assert set(after["fingerprint"]) != set(before["fingerprint"])
    names = wh.read(
        sa.select(renamed.comparisons.c.kpi_name)
        .where(renamed.comparisons.c.kpi_id == "sessions")
        .distinct()
    )
    assert names["kpi_name"].tolist() == ["Visits"]
    wh.dispose()


def test_a_full_recompute_keeps_the_comparison_statements_incremental_runs_use(
    warehouse_url, tables
):
    """On DuckDB a full recompute of the comparisons runs the incremental statements from a
    day before any period, so it leaves them in the cache for the next daily run; on
    PostgreSQL (which plans their period filters badly over the whole history) a full
    recompute runs statements of its own, and compiles the incremental ones for the next
    daily run without running them. The values statement of a full recompute is a
    different statement everywhere (the KPIs of an incremental one follow the data)."""
    wh = _loaded(warehouse_url, tables)
    keys = set(_cache_rows(wh, tables, COMPARISONS)["statement_key"])
    since = {k for k in keys if k.endswith("|since")}
    full = {k for k in keys if k.endswith("|full")}
    # And the compared windows' one statement, the same in a full and a daily run.
    assert since and since | full | {"compared_values"} == keys
    # PostgreSQL: the full statements it ran, and the incremental ones for the next run.
    expected = set() if wh.dialect == "duckdb" else {k[: -len("since")] + "full" for k in since}
    assert full == expected
    keys = set(_cache_rows(wh, tables, VALUES)["statement_key"])
    assert keys and all(k.endswith("|full") for k in keys)
    row = wh.read(
        sa.select(tables.compiled_statements).where(
            tables.compiled_statements.c.step == COMPARISONS
        )
    ).iloc[0]
    assert "kpi_comparisons" not in row["sql_text"]  # a SELECT: the step inserts its rows
    wh.dispose()


def test_a_full_recompute_from_full_gives_the_rows_of_one_without_a_period_filter(
    duckdb_url, tables, monkeypatch
):
    """The statement a full recompute runs on DuckDB (the incremental one, from ``FULL``)
    against the one a warehouse without incremental refreshes runs (no period filter at
    all). PostgreSQL runs the latter for a full recompute itself."""
    wh = _loaded(duckdb_url, tables)
    from_full = wh.read(sa.select(tables.comparisons))
    # Not a mock: the real refresh, on the path of a warehouse without incremental runs.
    monkeypatch.setattr(refresh, "supports_incremental", lambda dialect: False)
    refresh_comparisons(wh, tables, computed_at=T2, full_refresh=True)
    unfiltered = wh.read(sa.select(tables.comparisons))
    assert len(unfiltered) > 1000
    _same_rows(from_full, unfiltered, tables.comparisons)
    wh.dispose()


def test_an_in_memory_duckdb_warehouse_runs_its_comparisons_on_its_own_connection(tables):
    """Each connection to DuckDB's ``:memory:`` is a database of its own: the statements
    of an incremental refresh cannot run on other connections there."""
    wh = _loaded("duckdb:///:memory:", tables)
    assert not wh.shares_database
    _revise(wh, tables, D(2026, 2, 20), 5)
    _run(wh, tables, AS_OF, T2)
    comparisons = wh.read(sa.select(tables.comparisons))
    recomputed = pd.to_datetime(comparisons["computed_at"], utc=True) == pd.Timestamp(T2)
    assert recomputed.any()
    wh.dispose()
