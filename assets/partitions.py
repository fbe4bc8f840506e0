"""Daily partitions: one calendar day in the reporting time zone."""

from __future__ import annotations

import datetime as dt
import warnings

from dagster import AssetExecutionContext, BackfillPolicy, DailyPartitionsDefinition
from dagster._utils.warnings import BetaWarning

from assets.settings import catalog, history_start

daily_partitions = DailyPartitionsDefinition(
    start_date=history_start(),
    timezone=catalog().reporting.time_zone,
    end_offset=0,  # the last partition is yesterday: today is not over yet
)

# backfill_policy is marked beta in Dagster 1.13; we rely on it knowingly (see #4).
warnings.filterwarnings("ignore", category=BetaWarning, message=".*backfill_policy.*")

# A backfill of months runs one run per month of days, not one per day.
monthly_chunks = BackfillPolicy.multi_run(max_partitions_per_run=31)


def partition_dates(context: AssetExecutionContext) -> tuple[dt.date, dt.date]:
    """The first and last day (inclusive) of the partitions this run materializes."""
    window = context.partition_time_window
    return window.start.date(), (window.end - dt.timedelta(days=1)).date()
