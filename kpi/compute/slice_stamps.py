"""Which sources' dense slices gained or lost a value: their KPIs are recomputed whole.

A dense slice (kpi.language.catalog.Catalog.is_sparse says which are not) is reported for
every value combination it has anywhere in the history, on every period, zero-filled: a
channel first seen today has rows on every past day too, and a channel whose last rows were
revised away has none left. The day checksums (kpi.compute.changes.changed_since) say only
which days changed, so an incremental run wrote the new channel's rows from the changed day
on and left the periods before it without them: not the rows a full refresh writes.

So a refresh that finds a source changed also stamps, per dense slice some KPI reads from
it, the set of the slice's value combinations in that source (how many, and the sum of
their hashes). When a stamp moves, every KPI reading the source is recomputed whole, as
after a definition change. A new channel or device is rare; its refresh costs what a full
one of those KPIs does. The stamps are ``refresh_state`` rows (step ``slices``, ``kpi_id``
``<source>|<dimensions>``), read and written in the values transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kpi.compute.checksums import row_checksum
from kpi.compute.compiler import KpiCompiler
from kpi.compute.source_sql import source_names

STEP = "slices"


def stamp_keys(compiler: KpiCompiler, sources: Collection[str]) -> dict[str, tuple[str, tuple]]:
    """``<source>|<dimensions>`` -> (source, dimensions) for every dense slice some KPI of
    the catalogue reads from one of ``sources``."""
    catalog = compiler.catalog
    keys: dict[str, tuple[str, tuple]] = {}
    for kpi in catalog.kpis.values():
        for dims in kpi.slice_dimensions:
            if not dims or catalog.is_sparse(dims):
                continue
            for name in source_names(catalog, kpi):
                src = catalog.sources.get(name)
                if name in sources and src is not None and all(d in src.dimensions for d in dims):
                    ordered = tuple(sorted(dims))
                    keys[f"{name}|{','.join(ordered)}"] = (name, ordered)
    return dict(sorted(keys.items()))


def stamps_select(compiler: KpiCompiler, keys: dict[str, tuple[str, tuple]]) -> sa.Select:
    """(key, count, checksum) per stamp key: the distinct value combinations of the slice
    in its source, read from the cube that keeps them (the daily one, else the monthly
    one) or else from the raw rows."""
    selects = []
    for key, (source, dims) in keys.items():
        seen = _seen(compiler, source, dims).subquery()
        selects.append(
            sa.select(
                sa.literal(key, sa.String).label("key"),
                sa.func.count().label("n"),
                sa.cast(sa.func.sum(row_checksum(*[seen.c[d] for d in dims])), sa.BigInteger).label(
                    "checksum"
                ),
            ).select_from(seen)
        )
    return sa.union_all(*selects) if len(selects) > 1 else selects[0]


def _seen(compiler: KpiCompiler, source: str, dims: tuple) -> sa.Select:
    cubes = compiler.cubes
    if compiler.use_cubes and source in cubes.tables:
        if cubes.covers(source, dims):
            cube = cubes.tables[source]
        elif all(d in (cubes.month_dims.get(source) or []) for d in dims):
            cube = cubes.month_tables[source]
        else:
            cube = None
        if cube is not None:
            return sa.select(*[cube.c[d] for d in dims]).distinct()
    return compiler.raw_values(source, dims)


def moved_sources(
    conn: Connection,
    state: sa.Table,
    compiler: KpiCompiler,
    changed: Mapping[str, dt.date | None],
) -> set[str]:
    """The sources of ``changed`` (source -> first changed day, None: unchanged) one of
    whose dense slices gained or lost a value since the last refresh; stores the new
    stamps. Inside the caller's transaction, after the cubes are rebuilt.

    Only a source with a changed day can have other values (they are in the checksummed
    columns), so the others cost one read of the stored stamps. A stamp not stored yet (a
    new slice, a warehouse of older code) is stored; it moves its source when the source
    also changed in this run, since nothing says whether the change brought a value."""
    keys = stamp_keys(compiler, changed)
    if not keys:
        return set()
    stored = dict(
        conn.execute(
            sa.select(state.c.kpi_id, state.c.fingerprint).where(
                state.c.step == STEP, state.c.kpi_id.in_(list(keys))
            )
        ).all()
    )
    due = {k: v for k, v in keys.items() if changed[v[0]] is not None or k not in stored}
    if not due:  # a run with no news reads the stamps and writes nothing
        return set()
    fresh = {
        key: f"{n}:{checksum}" for key, n, checksum in conn.execute(stamps_select(compiler, due))
    }
    moved = {
        due[k][0]
        for k, stamp in fresh.items()
        if (stored[k] != stamp if k in stored else changed[due[k][0]] is not None)
    }
    written = [k for k, stamp in fresh.items() if stored.get(k) != stamp]
    if written:
        conn.execute(state.delete().where(state.c.step == STEP, state.c.kpi_id.in_(written)))
        conn.execute(
            state.insert(), [{"step": STEP, "kpi_id": k, "fingerprint": fresh[k]} for k in written]
        )
    return moved
