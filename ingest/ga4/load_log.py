"""``raw.ga4_load_log``: one row per GA4 request a run made (or meant to make).

Each row is one report, one property and one period (a day, or a week or month for the user
reports), keyed by ``(run_id, property_id, report, date)``; writing the rows of a run again
replaces them. It records what GA4 said about the data (time zone, currency, sampling,
thresholding, ``(other)`` data loss) and the quota spent, so checks and people can tell
trustworthy days from doubtful ones, and what the run could not load and why.

No Dagster here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import sqlalchemy as sa

from ingest.ga4.pull import Bucket, BucketResult
from kpi.warehouse.schema import RAW_SCHEMA

LOAD_LOG_TABLE = "ga4_load_log"

STATUS_LOADED = "loaded"
STATUS_FAILED = "failed"  # the request failed; the period keeps the rows of an earlier run
STATUS_DEFERRED = "deferred"  # not requested: the daily quota floor was reached first

LOAD_LOG_COLUMNS = [
    "run_id",
    "property_id",
    "report",
    "target_table",
    "grain",
    "date",
    "start_date",
    "end_date",
    "period_complete",
    "status",
    "error",
    "rows",
    "other_rows",
    "pages",
    "requests",
    "time_zone",
    "currency_code",
    "sampled",
    "sampling_ratio",
    "thresholded",
    "data_loss_from_other_row",
    "tokens_per_day_consumed",
    "tokens_per_day_remaining",
    "tokens_per_hour_consumed",
    "tokens_per_hour_remaining",
    "requested_at",
]


def ga4_load_log_table(metadata: sa.MetaData) -> sa.Table:
    """The load log, bound to ``metadata`` (created on first use like every raw table)."""
    key = f"{RAW_SCHEMA}.{LOAD_LOG_TABLE}"
    if key in metadata.tables:
        return metadata.tables[key]
    return sa.Table(
        LOAD_LOG_TABLE,
        metadata,
        sa.Column("run_id", sa.String, nullable=False, comment="Dagster run that made it"),
        sa.Column("property_id", sa.String, nullable=False, comment="numeric GA4 property id"),
        sa.Column("report", sa.String, nullable=False, comment="report name in reports.yaml"),
        sa.Column("target_table", sa.String, nullable=False, comment="warehouse table loaded"),
        sa.Column("grain", sa.String, nullable=False, comment="day, week or month"),
        sa.Column("date", sa.Date, nullable=False, comment="the period: day, Monday, 1st"),
        sa.Column("start_date", sa.Date, nullable=False, comment="first day requested"),
        sa.Column("end_date", sa.Date, nullable=False, comment="last day requested"),
        sa.Column(
            "period_complete",
            sa.Boolean,
            comment="the period was over in the property's time zone when requested",
        ),
        sa.Column("status", sa.String, nullable=False, comment="loaded, failed or deferred"),
        sa.Column("error", sa.String, comment="why the period was not loaded"),
        sa.Column("rows", sa.BigInteger, comment="rows loaded, (other) row included"),
        sa.Column("other_rows", sa.BigInteger, comment="(other) rows among them"),
        sa.Column("pages", sa.Integer, comment="RunReport pages"),
        sa.Column("requests", sa.Integer, comment="API calls that carried it, retries included"),
        sa.Column("time_zone", sa.String, comment="the property's time zone (GA4 metadata)"),
        sa.Column("currency_code", sa.String, comment="the property's currency"),
        sa.Column("sampled", sa.Boolean, comment="GA4 sampled the data"),
        sa.Column("sampling_ratio", sa.Double, comment="events read / events in the data"),
        sa.Column("thresholded", sa.Boolean, comment="GA4 withheld rows (thresholding)"),
        sa.Column(
            "data_loss_from_other_row",
            sa.Boolean,
            comment="some rows were folded into the (other) row",
        ),
        sa.Column("tokens_per_day_consumed", sa.BigInteger),
        sa.Column("tokens_per_day_remaining", sa.BigInteger),
        sa.Column("tokens_per_hour_consumed", sa.BigInteger),
        sa.Column("tokens_per_hour_remaining", sa.BigInteger),
        sa.Column("requested_at", sa.DateTime(timezone=True), comment="first page requested at"),
        schema=RAW_SCHEMA,
        comment="One row per GA4 report request: metadata, quota, and what was not loaded",
    )


def loaded_rows(
    run_id: str,
    report: str,
    target_table: str,
    grain: str,
    pulled: Iterable[tuple[BucketResult, int, int]],
) -> list[dict]:
    """Log rows for periods pulled and loaded: ``(result, rows loaded, other rows loaded)``."""
    out = []
    for item, rows, other_rows in pulled:
        result, bucket = item.result, item.bucket
        quota = result.quota
        out.append(
            {
                **_key(run_id, result.property_id, report, target_table, grain, bucket),
                "period_complete": _complete(bucket, result.time_zone, result.requested_at),
                "status": STATUS_LOADED,
                "error": None,
                "rows": rows,
                "other_rows": other_rows,
                "pages": result.pages,
                "requests": result.requests,
                "time_zone": result.time_zone or None,
                "currency_code": result.currency_code or None,
                "sampled": result.sampled,
                "sampling_ratio": result.sampling_ratio,
                "thresholded": result.thresholded,
                "data_loss_from_other_row": result.data_loss_from_other_row,
                **{k: quota.get(k) for k in LOAD_LOG_COLUMNS if k.startswith("tokens_")},
                "requested_at": result.requested_at,
            }
        )
    return out


def unloaded_rows(
    run_id: str,
    property_id: str,
    report: str,
    target_table: str,
    grain: str,
    buckets: Iterable[Bucket],
    status: str,
    error: str,
) -> list[dict]:
    """Log rows for periods a failure left unloaded (``failed`` or ``deferred``)."""
    return [
        {
            **dict.fromkeys(LOAD_LOG_COLUMNS),
            **_key(run_id, property_id, report, target_table, grain, bucket),
            "status": status,
            "error": error,
        }
        for bucket in buckets
    ]


def log_frame(rows: list[dict]) -> pd.DataFrame:
    """The rows as a frame with the table's columns, in order."""
    frame = pd.DataFrame(rows, columns=LOAD_LOG_COLUMNS)
    for column in ("rows", "other_rows", "pages", "requests"):
        frame[column] = frame[column].astype("Int64")
    for column in LOAD_LOG_COLUMNS:
        if column.startswith("tokens_"):
            frame[column] = frame[column].astype("Int64")
    frame["sampling_ratio"] = frame["sampling_ratio"].astype("float64")
    for column in ("period_complete", "sampled", "thresholded", "data_loss_from_other_row"):
        frame[column] = frame[column].astype("boolean")
    return frame


def _key(
    run_id: str, property_id: str, report: str, target_table: str, grain: str, bucket: Bucket
) -> dict:
    return {
        "run_id": run_id,
        "property_id": property_id,
        "report": report,
        "target_table": target_table,
        "grain": grain,
        "date": bucket.key,
        "start_date": bucket.start,
        "end_date": bucket.end,
    }


def _complete(bucket: Bucket, time_zone: str, requested_at: dt.datetime | None) -> bool | None:
    # GA4 days are days in the property's zone: a period is complete once that zone's calendar
    # has moved past its last day. West of the reporting zone "yesterday" may still be open.
    if not time_zone or requested_at is None:
        return None
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return requested_at.astimezone(zone).date() > bucket.period_end
