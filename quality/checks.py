"""The outcome of a source's quality suite on the rows a run wrote (no Dagster here).

:func:`check_written_rows` validates the rows written: table-level failures (a missing
column, an empty partition, a volume drop declared with severity ``error``, as the file
sources do) are blocking and stop the KPIs that read the source; warnings (e.g. the GA4
sessions volume anomaly of a tracking outage, or stale data) fail the check without
blocking. ``assets.quality`` turns the outcome into a Dagster asset check result.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import median

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from kpi.warehouse.connection import Warehouse
from quality.docs import DEFAULT_QUALITY_DIR, write_data_docs_or_warn
from quality.quarantine import Conservation
from quality.suites import Freshness, Volume
from quality.validate import ExpectationOutcome, validate_frame
from quality.writes import SHIPPED_SUITES, asset_suite

# Days of history a volume comparison needs before it says anything.
MIN_HISTORY_DAYS = 7


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


@dataclass(frozen=True)
class CheckOutcome:
    """A suite's verdict on the rows written, with what the check result shows."""

    passed: bool
    # A failure of severity ``error`` (or rows not conserved): blocks the KPIs downstream.
    blocking: bool
    rows_checked: int
    expectations: int
    failed_expectations: int
    success_percent: float
    failures_markdown: str
    conservation: Conservation | None
    volume_anomalies: list[str]
    docs_path: Path | None
    docs_problem: str | None

    def facts(self) -> dict:
        """The counts, as plain values (what the data-docs page records too)."""
        facts = {
            "rows_checked": self.rows_checked,
            "expectations": self.expectations,
            "failed_expectations": self.failed_expectations,
            "success_percent": self.success_percent,
            **(self.conservation.to_metadata() if self.conservation is not None else {}),
        }
        if self.volume_anomalies:
            facts["volume_anomalies"] = self.volume_anomalies
        return facts


def check_written_rows(
    wh: Warehouse,
    table,
    where: ColumnElement | None,
    asset_name: str,
    conservation: Conservation | None = None,
    day_expr: ColumnElement | None = None,
    window: tuple[dt.date, dt.date] | None = None,
    run_id: str = "run",
    time_zone: str | None = None,
    suites: Path = SHIPPED_SUITES,
    docs_folder: Path | str = DEFAULT_QUALITY_DIR,
) -> CheckOutcome:
    """Validate the rows of ``table`` selected by ``where`` with the asset's suite.

    ``day_expr`` (each row's partition day) and ``window`` enable the suite's ``volume``
    and ``freshness`` expectations; ``time_zone`` is the zone whose days timestamps are
    judged by. A broken ``conservation`` (rows neither loaded nor quarantined) fails the
    check. The data-docs page is written here; a page that cannot be written is
    ``docs_problem``, not an error (the rows are committed by now).
    """
    suite = asset_suite(asset_name, suites)
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
    anomalies = [
        s for o in report.failed if o.gx_type.startswith("volume") for s in o.sample_values
    ]
    outcome = CheckOutcome(
        passed=not report.failed and conserved,
        blocking=bool(failed_error),
        rows_checked=report.row_count,
        expectations=len(report.outcomes),
        failed_expectations=len(report.failed),
        success_percent=float(report.success_percent),
        failures_markdown=report.markdown() or "_none_",
        conservation=conservation,
        volume_anomalies=anomalies,
        docs_path=None,
        docs_problem=None,
    )
    docs, docs_problem = write_data_docs_or_warn(
        report, asset_name, run_id, outcome.facts(), docs_folder
    )
    return replace(outcome, docs_path=docs, docs_problem=docs_problem)
