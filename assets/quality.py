"""Great Expectations suites run as blocking asset checks on what was just written.

Before the write, :func:`write_with_quarantine` moves rows failing a row-level expectation
(or that could not be parsed) to the source's quarantine table, so the good rows flow on.
After the write, :func:`run_quality_check` validates the rows written: table-level failures
(a missing column, an empty partition, a volume drop declared with severity ``error``) fail
the blocking check with severity ERROR and stop the KPIs that read the source; warnings
(e.g. the GA4 sessions volume anomaly of a tracking outage) pass with severity WARN.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from statistics import median

import pandas as pd
import sqlalchemy as sa
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, MetadataValue
from sqlalchemy.sql.elements import ColumnElement

from assets.settings import suites_dir
from kpi.warehouse import Warehouse
from quality.docs import write_data_docs
from quality.quarantine import Conservation, quarantine_frame, quarantine_table, split_rows
from quality.suites import Freshness, Volume, load_suite
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
) -> tuple[int, int, Conservation]:
    """Split ``frame`` with the asset's suite, write good rows over ``where`` and bad rows
    (plus already ``rejected`` ones, carrying ``_problem``) over ``quarantine_where``.

    ``day_of`` gives each row's partition day; ``partition`` bounds ``date_in_partition``.
    Returns (rows deleted, rows inserted,
    conservation).
    """
    suite = load_suite(suites_dir() / f"{asset_name}.yaml")
    good, bad, _ = split_rows(frame, suite, partition)
    qtable = quarantine_table(table, sa.MetaData())
    wh.ensure_tables([qtable])
    at = dt.datetime.now(dt.UTC)
    parts = [quarantine_frame(bad, qtable, run_id, day_of(bad) if len(bad) else None, at)]
    if rejected is not None and not rejected.empty:
        rejected = rejected.rename(columns={"_problem": "_failed_expectations"})
        parts.append(quarantine_frame(rejected, qtable, run_id, rejected["_partition_day"], at))
    quarantined = pd.concat([p for p in parts if not p.empty] or [parts[0]], ignore_index=True)
    deleted, inserted = wh.replace_rows(table, where, good)
    wh.replace_rows(qtable, quarantine_where(qtable), quarantined)
    received = len(frame) + (0 if rejected is None else len(rejected))
    return deleted, inserted, Conservation(received, inserted, len(quarantined))


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

    Days with fewer than :data:`MIN_HISTORY_DAYS` days of history, or a zero median, are not
    judged: a new source has no baseline yet.
    """
    measure = sa.func.count() if exp.column is None else sa.func.sum(table.c[exp.column])
    since = start - dt.timedelta(days=exp.lookback_days)
    query = (
        sa.select(day_expr.label("day"), measure.label("value"))
        .where(day_expr.between(since, end))
        .group_by(day_expr)
    )
    values = {pd.Timestamp(r.day).date(): float(r.value or 0) for r in wh.read(query).itertuples()}
    anomalies = []
    if values:
        first = min(values)
        day = max(start, first)
        while day <= min(end, max(values)):
            history = [
                values.get(first + dt.timedelta(days=i), 0.0)
                for i in range((day - first).days)
                if (day - (first + dt.timedelta(days=i))).days <= exp.lookback_days
            ]
            if len(history) >= MIN_HISTORY_DAYS:
                base = median(history)
                value = values.get(day, 0.0)
                if base > 0 and value < (1 - exp.max_drop) * base:
                    anomalies.append(f"{day}: {value:g} vs median {base:g}")
            day += dt.timedelta(days=1)
    return ExpectationOutcome(
        name=name,
        gx_type="volume vs trailing median (warehouse)",
        success=not anomalies,
        severity=exp.severity,
        unexpected_count=len(anomalies),
        unexpected_percent=None,
        sample_values=anomalies[:5],
        row_level=False,
    )


def freshness_outcome(
    frame: pd.DataFrame, exp: Freshness, name: str, end: dt.date
) -> ExpectationOutcome:
    """The latest date loaded is no more than ``max_lag_days`` before the window's end."""
    values = pd.to_datetime(frame[exp.column], errors="coerce", utc=True).dropna()
    latest = values.max().date() if not values.empty else None
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


def run_quality_check(
    wh: Warehouse,
    table,
    where: ColumnElement | None,
    asset_name: str,
    conservation: Conservation | None = None,
    day_expr: ColumnElement | None = None,
    window: tuple[dt.date, dt.date] | None = None,
    run_id: str = "run",
) -> AssetCheckResult:
    """Validate the rows of ``table`` selected by ``where`` with the asset's suite.

    ``day_expr`` and ``window`` enable the suite's ``volume`` expectations; a broken
    ``conservation`` (rows neither loaded nor quarantined) fails the check.
    """
    suite = load_suite(suites_dir() / f"{asset_name}.yaml")
    query = sa.select(table)
    if where is not None:
        query = query.where(where)
    frame = wh.read(query)
    report = validate_frame(frame, suite, window)
    if day_expr is not None and window is not None:
        for exp, name in zip(suite.expectations, suite.names(), strict=True):
            if isinstance(exp, Volume):
                report.outcomes.append(
                    volume_outcome(wh, table, day_expr, exp, name, window[0], window[1])
                )
            elif isinstance(exp, Freshness):
                report.outcomes.append(freshness_outcome(frame, exp, name, window[1]))
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
    docs = write_data_docs(
        report,
        asset_name,
        run_id,
        {k: v for k, v in metadata.items() if not isinstance(v, MetadataValue)},
    )
    metadata["data_docs"] = MetadataValue.path(str(docs))
    return AssetCheckResult(
        check_name=CHECK_NAME,
        asset_key=asset_name,
        # A warning fails the check visibly but with severity WARN, which Dagster does not
        # let block the downstream assets; only ERROR stops the KPIs.
        passed=not report.failed and conserved,
        severity=AssetCheckSeverity.ERROR if failed_error else AssetCheckSeverity.WARN,
        metadata=metadata,
    )
