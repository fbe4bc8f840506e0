"""`make day DAY=YYYY-MM-DD`: the daily schedule's run for one day, on the existing warehouse.

The run is the one ``daily_refresh_schedule`` requests on the morning after ``DAY``: the
last ``GA4_LOOKBACK_DAYS`` days' partitions (extract, validate), then the KPI tables, which
recompute only what those days changed (kpi.compute.changes), the comparisons and the
report, as of ``DAY``. ``--full-refresh`` recomputes every KPI table from scratch instead.
Prints how long each step took.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

from dagster import DagsterEventType, DagsterInstance

from assets.settings import catalog, lookback_days
from pipelines.schedules import daily_run_request


def run_day(
    day: dt.date,
    full_refresh: bool = False,
    instance: DagsterInstance | None = None,
    log_level: str = "WARNING",
):
    """Execute the schedule's run for ``day`` in this process; the Dagster result."""
    from pipelines.definitions import defs

    request = daily_run_request(day + dt.timedelta(days=1), lookback_days())
    config = {"as_of": day.isoformat(), "full_refresh": full_refresh}
    return defs.resolve_job_def("marketing_kpis_job").execute_in_process(
        instance=instance or DagsterInstance.ephemeral(),
        tags=request.tags,
        run_config={
            "ops": {"kpi_periods": {"config": config}},
            "loggers": {"console": {"config": {"log_level": log_level}}},
        },
        raise_on_error=False,
    )


def step_seconds(result) -> dict[str, float]:
    """Seconds per step of a finished run, in the order the steps ran."""
    out: dict[str, float] = {}
    for event in result.all_events:
        if event.event_type == DagsterEventType.STEP_SUCCESS:
            out[event.step_key] = event.event_specific_data.duration_ms / 1000
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day", required=True, type=dt.date.fromisoformat, help="YYYY-MM-DD")
    parser.add_argument("--full-refresh", action="store_true", help="recompute every KPI table")
    parser.add_argument("--log-level", default="WARNING", help="Dagster console log level")
    args = parser.parse_args(argv)
    began = time.monotonic()
    result = run_day(args.day, args.full_refresh, log_level=args.log_level)
    took = time.monotonic() - began
    steps = step_seconds(result)
    for step, seconds in sorted(steps.items(), key=lambda kv: -kv[1]):
        print(f"  {seconds:7.2f} s  {step}")
    zone = catalog().reporting.time_zone
    state = "done" if result.success else "FAILED (see the errors above)"
    total = sum(steps.values())
    print(f"day {args.day} ({zone}): {state} in {took:.1f} s, of which steps {total:.1f} s")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
