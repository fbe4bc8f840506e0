"""`make dev`: the Dagster UI (``dg dev``) on the living demo.

1. the dev instance: ``deploy/dagster.dev.yaml`` copied to ``$DAGSTER_HOME/dagster.yaml``
   (SQLite in ``data/dagster_home``, the run queue, the DuckDB writer pool);
2. the daily partitions start at the demo's first day (``KPI_HISTORY_START``), not 2024;
3. the demo's landing files for the window;
4. the first time (no materialization of ``kpi_comparisons`` in the instance yet, or no
   warehouse file), the demo job runs through the dev instance, so the UI opens with every
   asset materialized, its partitions, checks and metadata (a few minutes, once);
5. ``dg dev`` on ``HOST:PORT`` (``make dev PORT=3001``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from dagster import AssetKey, DagsterInstance

from demo.window import parse_window

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEV_INSTANCE_YAML = PROJECT_ROOT / "deploy" / "dagster.dev.yaml"


def prepare_instance(home: Path) -> None:
    """The dev instance's config, rewritten on every start so an old folder gets the pools."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEV_INSTANCE_YAML, home / "dagster.yaml")


def has_history(instance: DagsterInstance, warehouse_file: Path | None) -> bool:
    """Whether the instance already recorded the demo (and its warehouse still exists)."""
    if warehouse_file is not None and not warehouse_file.exists():
        return False
    return instance.get_latest_materialization_event(AssetKey("kpi_comparisons")) is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument(
        "--no-ui", action="store_true", help="prepare the instance and the demo, start no UI"
    )
    args = parser.parse_args(argv)

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / "data/dagster_home")))
    prepare_instance(home)
    start, end = parse_window(os.environ.get("DEMO_START"), os.environ.get("DEMO_END"))
    os.environ["KPI_DEMO"] = "1"
    os.environ.setdefault("LOG_LEVEL", "WARNING")  # the progress lines say what happens
    os.environ.setdefault("DEMO_START", start.isoformat())
    os.environ.setdefault("DEMO_END", end.isoformat())
    # The partitions begin where the demo's data does, so none shows as missing for ever.
    os.environ.setdefault("KPI_HISTORY_START", start.isoformat())

    from kpi.warehouse.connection import DEFAULT_WAREHOUSE_URL
    from resources.settings import settings

    url = os.environ.get("WAREHOUSE_URL", DEFAULT_WAREHOUSE_URL)
    warehouse_file = Path(url.split(":///", 1)[1]) if url.startswith("duckdb:///") else None
    del settings  # the settings are read by the processes below, from the environment

    print(f"daily partitions from {os.environ['KPI_HISTORY_START']} (the demo's first day)")
    with DagsterInstance.get() as instance:
        recorded = has_history(instance, warehouse_file)
    if recorded:
        print(f"dev instance {home}: the demo's history is recorded; `make clean` starts over")
    else:
        print(f"dev instance {home}: recording the demo's first run (once, a few minutes)")
        from demo.run import main as run_demo

        if run_demo([]) != 0:
            return 1
    if args.no_ui:
        return 0
    dg = Path(sys.executable).with_name("dg")
    command = [str(dg), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml")]
    command += ["-h", args.host, "-p", str(args.port)]
    print(f"Dagster UI on http://{args.host}:{args.port} (schedule and sensor are off: README)")
    sys.stdout.flush()
    os.execv(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
