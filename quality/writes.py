"""Writes of a source's rows with their quarantine, in one transaction.

Before the write, :func:`write_with_quarantine` moves rows failing a row-level expectation
(or that could not be parsed) to the source's quarantine table, so the good rows flow on;
the raw rows and the quarantined rows of a partition are written in one transaction.
No Dagster here: the assets (file sources, GA4) call it and shape the metadata.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from kpi.language.catalog import DEFAULT_DEFINITIONS_DIR
from kpi.warehouse.connection import Warehouse
from quality.quarantine import (
    Conservation,
    outside_window_reason,
    quarantine_frame,
    quarantine_table,
    split_rows,
)
from quality.suites import Suite, load_suite

# The suites shipped with the project: ``quality/`` of the shipped definitions folder. The
# code location passes the folder of the definitions it loaded (KPI_DEFINITIONS_DIR).
SHIPPED_SUITES = DEFAULT_DEFINITIONS_DIR / "quality"


def asset_suite(asset_name: str, suites: Path = SHIPPED_SUITES) -> Suite:
    """The asset's suite in the folder ``suites``, parsed once per version of its file: a GA4
    backfill validates with it group by group."""
    path = Path(suites) / f"{asset_name}.yaml"
    if not path.exists():
        return load_suite(path)  # its own error, naming the file
    return _parsed_suite(path, path.stat().st_mtime_ns)


@lru_cache(maxsize=64)
def _parsed_suite(path: Path, version: int) -> Suite:
    return load_suite(path)


def _inside(day: object, partition: tuple[dt.date, dt.date]) -> bool:
    # No day (NaT, None) is outside too: no partition's replace would ever remove the row.
    if day is None or pd.isna(day):
        return False
    if isinstance(day, dt.datetime):
        day = day.date()
    return isinstance(day, dt.date) and partition[0] <= day <= partition[1]


def write_with_quarantine(
    wh: Warehouse,
    table: sa.Table,
    where: ColumnElement | None,
    frame: pd.DataFrame,
    asset_name: str,
    run_id: str,
    day_of: Callable[[pd.DataFrame], pd.Series],
    quarantine_where: Callable[[sa.Table], ColumnElement],
    rejected: pd.DataFrame | None = None,
    partition: tuple[dt.date, dt.date] | None = None,
    time_zone: str | None = None,
    per_file_out: tuple[dict[str, int], dict[str, int]] | None = None,
    suites: Path = SHIPPED_SUITES,
    key: Sequence[str] = (),
) -> tuple[int, int, Conservation]:
    """Split ``frame`` with the asset's suite, write good rows over ``where`` and bad rows
    (plus already ``rejected`` ones, carrying ``_problem``) over ``quarantine_where``.

    Both writes are one transaction: if either fails, neither table changes, so a partition
    never has raw rows without their quarantine (or the reverse), and re-running it replaces
    both. ``day_of`` gives each row's partition day; ``partition`` bounds
    ``date_in_partition`` (timestamps by their day in ``time_zone``), and a row outside it
    is quarantined even if the suite does not declare ``date_in_partition``: ``where`` would
    not replace it on a re-run, so it would be loaded twice. ``per_file_out``: two dicts
    filled with the rows loaded and the rows quarantined per ``_source_file``. Every count is
    taken inside the write's transaction, while its write locks are held. ``suites`` is the
    folder of the quality suites; ``key``, the source's business key: a good row whose key
    is held by a row outside ``where`` (a row re-delivered with another day) replaces it.
    Returns (rows deleted, rows inserted, conservation).
    """
    suite = asset_suite(asset_name, suites)
    good, bad, _ = split_rows(frame, suite, partition, time_zone)
    if partition is not None and not good.empty:
        days = pd.Series(list(day_of(good)), index=good.index, dtype=object)
        outside = ~days.map(lambda day: _inside(day, partition))
        if outside.any():
            strays = good[outside].assign(_failed_expectations=outside_window_reason(*partition))
            good = good[~outside].reset_index(drop=True)
            bad = pd.concat([bad, strays], ignore_index=True)
    qtable = quarantine_table(table, sa.MetaData())
    wh.ensure_tables([qtable])
    at = dt.datetime.now(dt.UTC)
    parts = [quarantine_frame(bad, qtable, run_id, day_of(bad) if len(bad) else None, at)]
    if rejected is not None and not rejected.empty:
        rejected = rejected.rename(columns={"_problem": "_failed_expectations"})
        parts.append(quarantine_frame(rejected, qtable, run_id, rejected["_partition_day"], at))
    quarantined = pd.concat([p for p in parts if not p.empty] or [parts[0]], ignore_index=True)
    qwhere = quarantine_where(qtable)
    # Counted in the warehouse after the write, not from the frames written: a write that
    # lost or doubled rows shows as received != loaded + quarantined. Counted in the write's
    # transaction, before its commit: a writer of the same table waiting for the lock would
    # otherwise change the counts between the commit and the count.
    reads = [_count_query(table, where), _count_query(qtable, qwhere)]
    if per_file_out is not None:
        reads += [_per_file_query(table, where), _per_file_query(qtable, qwhere)]
    ((deleted, inserted), _), results = wh.replace_rows_then_read(
        [(table, where, good), (qtable, qwhere, quarantined)], reads, [list(key) or None, None]
    )
    received = len(frame) + (0 if rejected is None else len(rejected))
    loaded, held = (int(rows[0][0] or 0) for rows in results[:2])
    if per_file_out is not None:
        for out, rows in zip(per_file_out, results[2:], strict=True):
            out.update({str(file): int(n) for file, n in rows})
    return deleted, inserted, Conservation(received, loaded, held)


def _count_query(table: sa.Table, where: ColumnElement | None) -> sa.Select:
    query = sa.select(sa.func.count()).select_from(table)
    return query if where is None else query.where(where)


def _per_file_query(table: sa.Table, where: ColumnElement | None) -> sa.Select:
    query = sa.select(table.c._source_file, sa.func.count()).group_by(table.c._source_file)
    return query if where is None else query.where(where)
