"""Sensors."""

from __future__ import annotations

import datetime as dt

from dagster import RunRequest, SensorEvaluationContext, SensorResult, sensor
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from assets.partitions import daily_partitions
from assets.settings import catalog
from ingest.files.loading import file_sources
from ingest.landing_changes import LandingState, contiguous_ranges, scan_landing
from pipelines.jobs import marketing_kpis_job
from resources.landing import LandingResource


def partition_bounds() -> tuple[dt.date, dt.date] | None:
    """The first and last day that have a daily partition now (None before the first)."""
    first = daily_partitions.get_first_partition_key()
    last = daily_partitions.get_last_partition_key()
    if first is None or last is None:
        return None
    return dt.date.fromisoformat(first), dt.date.fromisoformat(last)


@sensor(
    job=marketing_kpis_job,
    minimum_interval_seconds=60,
    description="Watches the landing folder (LANDING_ROOT) and, when a file is new or its "
    "bytes changed, runs the job for the days the file covers (and the days its previous "
    "version covered): one run per contiguous range of days. A copy of a file already seen "
    "triggers nothing. The cursor remembers every file by path, size, modification time "
    "and content hash. Days not yet partitioned (today) are left to the daily schedule.",
)
def landing_files_sensor(
    context: SensorEvaluationContext, landing: LandingResource
) -> SensorResult:
    state = LandingState.from_json(context.cursor)
    sources = file_sources(catalog())
    scan = scan_landing(landing.landing(), sources, state, catalog().reporting.time_zone)
    for message in scan.messages:
        context.log.info(message)
    for warning in scan.warnings:
        context.log.warning(warning)
    for change in scan.changes:
        note = f"; {change.problems} problem(s), the run will list them" if change.problems else ""
        context.log.info(
            f"{change.source}: {change.reason} file {change.path} covers "
            f"{change.first}..{change.last}{note}"
        )
    bounds = partition_bounds()
    for change in scan.changes:
        if bounds and change.last < bounds[0]:
            context.log.warning(
                f"{change.source}: {change.path} holds only days before the first partition "
                f"({bounds[0]}); no run for it here, the next daily run quarantines its rows"
            )
    ranges = contiguous_ranges(scan.changes, *bounds) if bounds else []
    requests = [
        RunRequest(
            run_key=r.run_key,
            tags={
                ASSET_PARTITION_RANGE_START_TAG: r.first.isoformat(),
                ASSET_PARTITION_RANGE_END_TAG: r.last.isoformat(),
            },
        )
        for r in ranges
    ]
    cursor = scan.state.to_json()
    if not requests:
        reason = "no new or changed landing files"
        if scan.changes:
            reason = "new or changed landing files cover no partitioned day yet"
        return SensorResult(skip_reason=reason, cursor=cursor)
    return SensorResult(run_requests=requests, cursor=cursor)
