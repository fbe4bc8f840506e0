"""`make day DAY=YYYY-MM-DD` on the demo: the daily run for one day, demo data through it.

Writes the demo landing files through ``DAY`` (the files of earlier days come out the same
bytes), serves the demo's GA4 data through ``DAY`` from the local fake server, then runs
what the daily schedule runs (``pipelines.day``) on the existing warehouse.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

from demo.landing import write_demo_landing
from demo.window import parse_window


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    day = dt.date.fromisoformat(argv[argv.index("--day") + 1])
    start, _ = parse_window(os.environ.get("DEMO_START"), None)
    start = min(start, day)
    os.environ["KPI_DEMO"] = "1"
    os.environ.setdefault("DEMO_START", start.isoformat())
    os.environ["DEMO_END"] = day.isoformat()
    landing = Path(os.environ.setdefault("LANDING_ROOT", "data/landing"))
    write_demo_landing(landing, start, day)

    from pipelines.day import main as run_day  # reads the environment set above

    return run_day(argv)


if __name__ == "__main__":
    sys.exit(main())
