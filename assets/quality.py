"""Great Expectations suites run as blocking asset checks on what was just written.

Before the write, :func:`write_with_quarantine` moves rows failing a row-level expectation
(or that could not be parsed) to the source's quarantine table, so the good rows flow on;
the raw rows and the quarantined rows of a partition are written in one transaction.
After the write, :func:`run_quality_check` validates the rows written: table-level failures
(a missing column, an empty partition, a volume drop declared with severity ``error``, as
the file sources do) fail the blocking check with severity ERROR and stop the KPIs that
read the source; warnings (e.g. the GA4 sessions volume anomaly of a tracking outage, or
stale data) fail it with severity WARN, which does not block.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from statistics import median

import pandas as pd
import sqlalchemy as sa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    MetadataValue,
    get_dagster_logger,
)
from sqlalchemy.sql.elements import ColumnElement

from assets.settings import suites_dir
from kpi.warehouse.connection import Warehouse
from quality.docs import write_data_docs_or_warn
from quality.quarantine import (
    Conservation,
    outside_window_reason,
    quarantine_frame,
    quarantine_table,
    split_rows,
)
from quality.suites import Freshness, Suite, Volume, load_suite
from quality.validate import ExpectationOutcome, validate_frame

CHECK_NAME = "quality_suite"
# Days of history a volume comparison needs before it says anything.
MIN_HISTORY_DAYS = 7


def quality_check_spec(asset_name: str) -> AssetCheckSpec:
    return AssetCheckSpec(
        CHECK_NAME,
        asset=asset_name,
        blocking=True,
        description=f"Great Expectations suite kpi_definitions/quality/{asset_name}.yaml "
        "on the rows written by this run (invalid rows are quarantined before the write); "
        "a table-level failure stops the KPIs that read them.",
    )


def asset_suite(asset_name: str) -> Suite:
    """The asset's suite, parsed once per version of its file: a GA4 backfill validates
    with it group by group."""
    path = suites_dir() / f"{asset_name}.yaml"
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
    taken inside the write's transaction, while its write locks are held. Returns (rows
    deleted, rows inserted, conservation).
    """
    suite = asset_suite(asset_name)
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
        [(table, where, good), (qtable, qwhere, quarantined)], reads
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


def volume_outcome(
    wh: Warehouse,
    table: sa.Table,
    day_expr: ColumnElement,
    exp: Volume,
    name: str,
    start: dt.date,
    end: dt.date,
) -> ExpectationOutcome:
    """Compare each day of ``start..end`` with the median of its trailing days in the table.

    With ``exp.period_days`` > 1 the values compared are totals of that many days ending on
    each day; with ``exp.same_weekday`` the median is of the same weekday only. Days with
    fewer than :data:`MIN_HISTORY_DAYS` days of history (a new source has no baseline yet)
    are not judged, and the outcome's ``note`` says so; nor are days whose median is zero.
    """
    measure = sa.func.count() if exp.column is None else sa.func.sum(table.c[exp.column])
    since = start - dt.timedelta(days=exp.lookback_days + exp.period_days - 1)
    query = (
        sa.select(day_expr.label("day"), measure.label("value"))
        .where(day_expr.between(since, end))
        .group_by(day_expr)
    )
    values = {pd.Timestamp(r.day).date(): float(r.value or 0) for r in wh.read(query).itertuples()}
    anomalies: list[str] = []
    unjudged: list[dt.date] = []
    first = min(values) if values else None

    def total(day: dt.date) -> float | None:
        # The period ending on ``day``; None while it reaches back before the first day seen.
        if first is None or (day - first).days < exp.period_days - 1:
            return None
        return sum(values.get(day - dt.timedelta(days=i), 0.0) for i in range(exp.period_days))

    if values:
        # Every day of the window, up to its end: a day without rows is a value of 0, and
        # an empty last day (an export that never came) is the case this check is for.
        day = max(start, min(values))
        while day <= end:
            current = total(day)
            back = range(1, exp.lookback_days + 1)
            history = [t for i in back if (t := total(day - dt.timedelta(days=i))) is not None]
            if current is None or len(history) < MIN_HISTORY_DAYS:
                unjudged.append(day)
            else:
                if exp.same_weekday:
                    history = [
                        t
                        for i in back
                        if i % 7 == 0 and (t := total(day - dt.timedelta(days=i))) is not None
                    ]
                base = median(history)
                if base > 0 and current < (1 - exp.max_drop) * base:
                    anomalies.append(f"{day}: {current:g} vs median {base:g}")
            day += dt.timedelta(days=1)
    note = None
    if unjudged:
        note = (
            f"{len(unjudged)} day(s) not judged ({unjudged[0]}..{unjudged[-1]}): the warehouse "
            f"holds fewer than {MIN_HISTORY_DAYS + exp.period_days - 1} days before them to "
            "compare with"
        )
    elif not values:
        note = "no rows in the window or its trailing days: nothing to compare"
    return ExpectationOutcome(
        name=name,
        gx_type="volume vs trailing median (warehouse)",
        success=not anomalies,
        severity=exp.severity,
        unexpected_count=len(anomalies),
        unexpected_percent=None,
        sample_values=anomalies[:5],
        row_level=False,
        note=note,
    )


def _freshness(
    latest: dt.date | None, exp: Freshness, name: str, end: dt.date
) -> ExpectationOutcome:
    fresh = latest is not None and latest >= end - dt.timedelta(days=exp.max_lag_days)
    return ExpectationOutcome(
        name=name,
        gx_type="latest date vs partition end (warehouse)",
        success=fresh,
        severity=exp.severity,
        unexpected_count=0 if fresh else 1,
        unexpected_percent=None,
        sample_values=[] if fresh else [f"latest {latest} for a window ending {end}"],
        row_level=False,
    )


def freshness_outcome(
    frame: pd.DataFrame, exp: Freshness, name: str, end: dt.date
) -> ExpectationOutcome:
    """The latest date of ``frame`` is no more than ``max_lag_days`` before the window's end."""
    values = pd.to_datetime(frame[exp.column], errors="coerce", utc=True).dropna()
    return _freshness(values.max().date() if not values.empty else None, exp, name, end)


def warehouse_freshness_outcome(
    wh: Warehouse, day_expr: ColumnElement, exp: Freshness, name: str, end: dt.date
) -> ExpectationOutcome:
    """The latest day loaded up to ``end`` is no more than ``max_lag_days`` before it.

    Read from the table, not from the window's rows: a window that is legitimately empty
    (a Sunday of a working-day source) is fresh if the last working day is loaded.
    """
    latest = wh.scalar(sa.select(sa.func.max(day_expr)).where(day_expr <= end))
    return _freshness(None if latest is None else pd.Timestamp(latest).date(), exp, name, end)


def run_quality_check(
    wh: Warehouse,
    table,
    where: ColumnElement | None,
    asset_name: str,
    conservation: Conservation | None = None,
    day_expr: ColumnElement | None = None,
    window: tuple[dt.date, dt.date] | None = None,
    run_id: str = "run",
    time_zone: str | None = None,
) -> AssetCheckResult:
    """Validate the rows of ``table`` selected by ``where`` with the asset's suite.

    ``day_expr`` (each row's partition day) and ``window`` enable the suite's ``volume``
    and ``freshness`` expectations; ``time_zone`` is the zone whose days timestamps are
    judged by. A broken ``conservation`` (rows neither loaded nor quarantined) fails the
    check.
    """
    suite = asset_suite(asset_name)
    query = sa.select(table)
    if where is not None:
        query = query.where(where)
    frame = wh.read(query)
    report = validate_frame(frame, suite, window, time_zone)
    if day_expr is not None and window is not None:
        for exp, name in zip(suite.expectations, suite.names(), strict=True):
            if isinstance(exp, Volume):
                report.outcomes.append(
                    volume_outcome(wh, table, day_expr, exp, name, window[0], window[1])
                )
            elif isinstance(exp, Freshness):
                report.outcomes.append(
                    warehouse_freshness_outcome(wh, day_expr, exp, name, window[1])
                )
        report.success = all(o.success for o in report.outcomes if o.severity == "error")
    conserved = conservation is None or conservation.holds
    failed_error = [o for o in report.failed if o.severity == "error"] or ([] if conserved else [1])
    metadata = {
        "rows_checked": report.row_count,
        "expectations": len(report.outcomes),
        "failed_expectations": len(report.failed),
        "success_percent": float(report.success_percent),
        "failures": MetadataValue.md(report.markdown() or "_none_"),
        **(conservation.to_metadata() if conservation is not None else {}),
    }
    anomalies = [
        s for o in report.failed if o.gx_type.startswith("volume") for s in o.sample_values
    ]
    if anomalies:
        metadata["volume_anomalies"] = anomalies
    docs, docs_problem = write_data_docs_or_warn(
        report,
        asset_name,
        run_id,
        {k: v for k, v in metadata.items() if not isinstance(v, MetadataValue)},
    )
    if docs is not None:
        metadata["data_docs"] = MetadataValue.path(str(docs))
    else:
        # The rows are committed by now: a missing page is a warning, not a failed step.
        get_dagster_logger().warning(docs_problem)
        metadata["data_docs_error"] = MetadataValue.text(docs_problem or "")
    return AssetCheckResult(
        check_name=CHECK_NAME,
        asset_key=asset_name,
        # A warning fails the check visibly but with severity WARN, which Dagster does not
        # let block the downstream assets; only ERROR stops the KPIs.
        passed=not report.failed and conserved,
        severity=AssetCheckSeverity.ERROR if failed_error else AssetCheckSeverity.WARN,
        metadata=metadata,
    )
