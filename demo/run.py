"""`make run`: the main job on the embedded default, on demo data, then the scorecard.

1. writes the deterministic demo landing files (ad spend, orders, survey, rates);
2. runs ``marketing_kpis_job`` over the whole demo window: GA4 is extracted with the real
   client from a local fake GA4 server, files are loaded, validated, and the KPI tables are
   computed in the warehouse (DuckDB at ``data/warehouse.duckdb`` unless WAREHOUSE_URL);
3. prints the scorecard read back from the warehouse.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

from dagster import DagsterInstance
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from dagster._core.utils import make_new_run_id

from demo.landing import write_demo_landing
from demo.window import parse_window
from pipelines.progress import printing_steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=None, help="only the last N days")
    args = parser.parse_args(argv)

    # DEMO_START / DEMO_END narrow the window (README); the GA4 fake serves the same one.
    start, end = parse_window(os.environ.get("DEMO_START"), os.environ.get("DEMO_END"))
    if args.days:
        start = max(start, end - dt.timedelta(days=args.days - 1))
    os.environ["KPI_DEMO"] = "1"  # the demo switch: pipelines.definitions picks the demo GA4
    os.environ.setdefault("DEMO_START", start.isoformat())
    os.environ.setdefault("DEMO_END", end.isoformat())
    landing = Path(os.environ.setdefault("LANDING_ROOT", "data/landing"))

    began = time.monotonic()
    written = write_demo_landing(landing, start, end)
    files = sum(len(v) for v in written.values())
    print(f"demo data: {start} .. {end}, {files} landing files in {landing}/")

    # Imported late: the definitions read the environment set above.
    from pipelines.definitions import defs

    job = defs.resolve_job_def("marketing_kpis_job")
    instance = DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else None
    instance = instance or DagsterInstance.ephemeral()
    run_id = make_new_run_id()
    print("running marketing_kpis_job; one line per finished step:")
    with printing_steps(instance, run_id):
        result = _execute(job, instance, run_id, start, end)
    if not result.success:
        print("the run failed; see the errors above", file=sys.stderr)
        return 1
    return _scorecard(result, began)


def _execute(job, instance: DagsterInstance, run_id: str, start: dt.date, end: dt.date):
    return job.execute_in_process(
        instance=instance,
        run_id=run_id,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: start.isoformat(),
            ASSET_PARTITION_RANGE_END_TAG: end.isoformat(),
        },
        run_config={
            "ops": {"kpi_periods": {"config": {"as_of": end.isoformat()}}},
            "loggers": {"console": {"config": {"log_level": os.environ.get("LOG_LEVEL", "INFO")}}},
        },
        raise_on_error=False,
    )


def _scorecard(result, began: float) -> int:
    from assets.settings import catalog
    from kpi.compute.tables import KpiTables
    from kpi.publication.scorecard import latest_scorecard, render
    from kpi.warehouse.connection import Warehouse, redact_url
    from resources.settings import settings

    wh = Warehouse(settings().warehouse_url)
    tables = KpiTables.for_catalog(catalog())
    card = latest_scorecard(wh, tables.comparisons, tables.catalog.dimensions)
    print()
    print(f"Scorecard: latest complete month, warehouse {redact_url(wh.url)}")
    print(render(card, tables.catalog))
    reports = result.asset_materializations_for_node("kpi_report")
    if reports:
        print(f"\nreport: {reports[-1].metadata['path'].value}")
    print(f"\nrun {result.run_id} took {time.monotonic() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
