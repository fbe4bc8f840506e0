"""Loading a declared GA4 report into its warehouse table, property by property.

A load for the days ``first..last`` pulls, for every property, one request per period of the
report's grain (each day; each ISO week or month touched, whole), five to a BatchRunReports
call, and replaces exactly those periods of that property in the warehouse, the ``(other)``
row included, validating and writing up to ``WRITE_PERIODS`` periods at a time. Every
request is written to ``raw.ga4_load_log``.

Failures: a property that fails (no permission, quota gone, retries exhausted, or a write
whose rows do not add up: received != loaded + quarantined) does not stop the other
properties; once all are done the load raises :class:`GA4LoadError` naming each failed
property, the cause and what was and was not loaded. The periods already loaded stay loaded.

No Dagster here: messages go to the logger passed in (the asset passes its run's log).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

import pandas as pd
import sqlalchemy as sa

from ingest.ga4.errors import GA4Error, GA4QuotaExhaustedError
from ingest.ga4.load_log import (
    STATUS_DEFERRED,
    STATUS_FAILED,
    ga4_load_log_table,
    loaded_rows,
    log_frame,
    unloaded_rows,
)
from ingest.ga4.pull import Bucket, BucketResult, buckets_for
from ingest.ga4.reports import GA4Report
from ingest.ga4.spec import ReportSpec
from kpi.language.models import SourceSpec
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.schema import source_table
from quality.quarantine import Conservation, ConservationError
from quality.writes import SHIPPED_SUITES, write_with_quarantine

logger = logging.getLogger(__name__)

# Pulled periods are validated and written together up to this many periods or rows: one
# write's cost hardly depends on its size, so many small ones made a backfill slow, while
# bounding them keeps a big property's rows from piling up in memory.
WRITE_PERIODS = 35
WRITE_ROWS = 200_000

# Per failed property: the error text, the periods loaded, the periods not loaded.
Failures = dict[str, tuple[str, list[Bucket], list[Bucket]]]


class ReportPuller(Protocol):
    """Where the rows come from: the GA4 resource, or anything pulling like it."""

    @property
    def property_ids(self) -> Sequence[str]: ...

    def pull(
        self, property_id: str, spec: ReportSpec, buckets: Sequence[Bucket]
    ) -> Iterable[list[BucketResult]]: ...


class GA4LoadError(Exception):
    """Some properties of a load failed (the others loaded).

    ``description`` names each failed property, the cause and what was and was not loaded;
    ``log`` is the load's ``raw.ga4_load_log`` rows (already written), ``run_id`` the run's.
    """

    def __init__(
        self, description: str, *, log: pd.DataFrame, run_id: str, failures: Failures
    ) -> None:
        super().__init__(description)
        self.description = description
        self.log = log
        self.run_id = run_id
        self.failures = failures


@dataclass
class ReportLoad:
    """What a load wrote: the report's ``table``, the ``buckets`` (periods) pulled, the
    load-log rows of every request (``log``) and the rows' ``conservation`` counts."""

    table: sa.Table
    buckets: list[Bucket]
    log: pd.DataFrame
    conservation: Conservation


def load_report(
    wh: Warehouse,
    ga4: ReportPuller,
    report: GA4Report,
    spec: SourceSpec,
    first: dt.date,
    last: dt.date,
    *,
    run_id: str,
    time_zone: str,
    log: logging.Logger = logger,
    suites: Path = SHIPPED_SUITES,
) -> ReportLoad:
    """Pull ``report`` (whose table ``spec`` declares) for the days ``first..last`` and every
    property, up to yesterday in ``time_zone`` (the reporting zone); see the module docstring.

    Raises :class:`GA4LoadError` when a property failed, after the load log is written, and
    :class:`ConservationError` when the rows of the whole load do not add up.
    """
    metadata = sa.MetaData()
    table = source_table(report.source, spec, metadata)
    log_table = ga4_load_log_table(metadata)
    wh.ensure_tables([table, log_table])
    time_column = table.c[spec.time.column]

    yesterday = dt.datetime.now(ZoneInfo(time_zone)).date() - dt.timedelta(days=1)
    buckets = buckets_for(report.grain, first, last, latest=yesterday)
    loaded_at = dt.datetime.now(dt.UTC)

    log_rows: list[dict] = []
    received = loaded = quarantined = 0
    failures: Failures = {}

    def write(
        property_id: str, items: list[BucketResult], problems: list[ConservationError]
    ) -> list[Bucket]:
        """Replace ``items``' periods of ``property_id``; the periods written. Rows not
        conserved (received != loaded + quarantined) are appended to ``problems``: the
        periods were written all the same, and are logged with the counts as their error."""
        nonlocal received, loaded, quarantined, log_rows
        frame, counts = _group_rows(log, report, table, property_id, items)
        frame = frame.assign(_run_id=run_id, _loaded_at=loaded_at)
        keys = [item.bucket.key for item in items]
        where = (table.c.property_id == property_id) & time_column.in_(keys)
        # Rows failing a row-level expectation are quarantined; the rest load.
        prefix = f"ga4:properties/{property_id}/{report.name}/"
        _, _, kept = write_with_quarantine(
            wh,
            table,
            where,
            frame,
            report.source,
            run_id,
            lambda rows: rows[spec.time.column],
            lambda q, keys=keys, prefix=prefix: (
                q.c._partition.in_(keys) & q.c._source_file.startswith(prefix)
            ),
            partition=(min(keys), max(keys)),
            suites=suites,
        )
        received += kept.received
        loaded += kept.loaded
        quarantined += kept.quarantined
        rows = loaded_rows(
            run_id,
            report.name,
            report.table.table,
            report.grain,
            [(item, *count) for item, count in zip(items, counts, strict=True)],
        )
        try:
            # Fails the load once every property is done (like a GA4 error), naming the
            # property, the periods and the three counts; the load log records them first.
            kept.require(f"{report.source}: GA4 property {property_id}, {min(keys)}..{max(keys)}")
        except ConservationError as exc:
            problems.append(exc)
            rows = [{**row, "error": str(exc)} for row in rows]
        log_rows += rows
        return [item.bucket for item in items]

    for property_id in ga4.property_ids:
        done: list[Bucket] = []
        pending: list[BucketResult] = []
        error: GA4Error | None = None
        # A write whose rows are not conserved stops the property, like a GA4 error.
        problems: list[ConservationError] = []
        try:
            for batch in ga4.pull(property_id, report.spec, buckets):
                pending += batch
                if (
                    len(pending) >= WRITE_PERIODS
                    or sum(len(item.result.rows) for item in pending) >= WRITE_ROWS
                ):
                    group, pending = pending, []
                    done += write(property_id, group, problems)
                    if problems:
                        break
        except GA4Error as exc:
            error = exc
        if pending:  # complete pulls, also when a later batch failed: they load
            try:
                done += write(property_id, pending, problems)
            except Exception as write_error:
                if error is None:
                    raise
                # The API's error stays visible, as the cause: the write failed while
                # loading what had been pulled before it.
                raise write_error from error
        if error is not None or problems:
            rest = [b for b in buckets if b not in done]
            status = STATUS_DEFERRED if isinstance(error, GA4QuotaExhaustedError) else STATUS_FAILED
            message = "; ".join(str(e) for e in [*problems, error] if e is not None)
            unloaded = str(error) if error is not None else f"not pulled: {message}"
            log_rows += unloaded_rows(
                run_id,
                property_id,
                report.name,
                report.table.table,
                report.grain,
                rest,
                status,
                unloaded,
            )
            failures[property_id] = (message, done, rest)
            log.error(f"GA4 property {property_id}, report {report.name}: {message}")
            continue
        rows = sum(r["rows"] for r in log_rows if r["property_id"] == property_id)
        log.info(
            f"GA4 property {property_id}: {rows} rows of report {report.name} for "
            f"{len(done)} {report.grain}(s) {first}..{last}"
        )

    frame = log_frame(log_rows)
    write_log(wh, log_table, frame, run_id, report)
    if failures:
        raise GA4LoadError(
            _failure_text(report, failures, len(ga4.property_ids)),
            log=frame,
            run_id=run_id,
            failures=failures,
        )
    conservation = Conservation(received, loaded, quarantined)
    conservation.require(f"{report.source}: GA4 report {report.name}, {first}..{last}")
    return ReportLoad(table, buckets, frame, conservation)


def _group_rows(
    log: logging.Logger,
    report: GA4Report,
    table: sa.Table,
    property_id: str,
    batch: Sequence[BucketResult],
) -> tuple[pd.DataFrame, list[tuple[int, int]]]:
    """The warehouse rows of a group of pulled periods, and (rows, other rows) per period."""
    frames: list[pd.DataFrame] = []
    counts: list[tuple[int, int]] = []
    for item in batch:
        rows = item.result.rows
        other = rows["is_other_row"]
        if other.any() and not report.keeps_other_rows:
            # Only tables that declare is_other_row can hold it; say so rather than load it
            # into a table whose readers do not expect it.
            log.warning(
                f"GA4 property {property_id}, report {report.name}, {item.bucket.label}: "
                f"dropped {int(other.sum())} (other) row(s); declare is_other_row in "
                f"sources.yaml for {report.table.table} to keep them"
            )
            rows = rows[~other]
        rows = rows.rename(columns=dict(report.columns)).reset_index(drop=True)
        rows["property_id"] = property_id
        rows["_source_file"] = f"ga4:properties/{property_id}/{report.name}/{item.bucket.label}"
        rows["_source_line"] = pd.Series(range(1, len(rows) + 1), dtype="int64")
        counts.append((len(rows), int(rows["is_other_row"].sum())))
        frames.append(rows)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return frame[[c.name for c in table.columns if c.name in frame.columns]], counts


def write_log(
    wh: Warehouse, log_table: sa.Table, frame: pd.DataFrame, run_id: str, report: GA4Report
) -> None:
    """Write a load's rows of ``raw.ga4_load_log``, replacing those of the same run."""
    if frame.empty:
        return
    # Idempotent per (run, property, report, period): a retried step rewrites its own rows.
    where = sa.and_(
        log_table.c.run_id == run_id,
        log_table.c.report == report.name,
        sa.or_(
            *[
                sa.and_(log_table.c.property_id == p, log_table.c.date.in_(list(g["date"])))
                for p, g in frame.groupby("property_id")
            ]
        ),
    )
    wh.replace_rows(log_table, where, frame)


def _failure_text(report: GA4Report, failures: Failures, properties: int) -> str:
    lines = [
        f"GA4 report `{report.name}` ({report.table.table}) failed for {len(failures)} of "
        f"{properties} propert{'y' if properties == 1 else 'ies'}:"
    ]
    for property_id, (error, done, rest) in failures.items():
        lines.append(f"- property {property_id}: {error}")
        loaded = ", ".join(b.label for b in done) or "nothing"
        lines.append(
            f"  loaded: {loaded}; not loaded: {', '.join(b.label for b in rest) or 'nothing'}"
        )
    if len(failures) < properties:
        lines.append("The other properties were loaded.")
    lines.append("Every request of this run is in raw.ga4_load_log.")
    return "\n".join(lines)
