"""Schedules."""

from __future__ import annotations

import datetime as dt

from dagster import RunRequest, ScheduleEvaluationContext, schedule
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from assets.partitions import daily_partitions
from assets.settings import catalog, lookback_days
from pipelines.jobs import marketing_kpis_job
from resources.settings import settings


def lookback_range(scheduled: dt.datetime, days: int) -> tuple[str, str]:
    """Partition keys of the last ``days`` complete days before ``scheduled``."""
    last = scheduled.date() - dt.timedelta(days=1)
    first = last - dt.timedelta(days=days - 1)
    return first.isoformat(), last.isoformat()


def daily_run_request(scheduled: dt.datetime | dt.date, days: int) -> RunRequest:
    """The run the schedule requests at ``scheduled``: the last ``days`` complete days."""
    if not isinstance(scheduled, dt.datetime):
        scheduled = dt.datetime.combine(scheduled, dt.time(settings().daily_run_hour))
    first, last = lookback_range(scheduled, days)
    first = max(first, daily_partitions.start.date().isoformat())
    return RunRequest(
        run_key=f"daily-{last}",
        tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
    )


@schedule(
    job=marketing_kpis_job,
    cron_schedule=f"0 {settings().daily_run_hour} * * *",
    execution_timezone=catalog().reporting.time_zone,
    description="Every morning: re-pull the last GA4_LOOKBACK_DAYS days (GA4 revises recent "
    "days for up to 48 h), reload files for those days, and recompute the KPIs.",
)
def daily_refresh_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    return daily_run_request(context.scheduled_execution_time, lookback_days())
