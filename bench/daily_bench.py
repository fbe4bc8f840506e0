"""Benchmark: what one new day costs, on a short and a long history, DuckDB and PostgreSQL.

For each warehouse and history length, the demo is loaded from scratch (``demo.run``) for
``N`` days ending ``--repeat`` days before yesterday, then each following day is run as the
daily schedule runs it (``demo.day``, i.e. ``make day``): the last three days extracted from
the fake GA4 server and the landing files, validated, the KPI tables recomputed where
those days changed anything (kpi.compute.changes), comparisons, alerts and the report.
Each day runs in a fresh process, as a scheduled run does. *in process* is the job's own
time (``execute_in_process``: every step, the resources, Dagster's bookkeeping), *process*
adds the interpreter, the imports and loading the definitions.

The target (issue #14): a day costs <= 10 s in process on the 425-day DuckDB warehouse,
within 1.2x of the same on a 60-day one (cost independent of history), <= 20 s on
PostgreSQL.

    .venv/bin/python bench/daily_bench.py                       # 60 and 425 days, both
    .venv/bin/python bench/daily_bench.py --history 60 --warehouses duckdb --repeat 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DONE = re.compile(r"day (\S+) .*: (done|FAILED.*) in ([\d.]+) s, of which steps ([\d.]+) s")
STEP = re.compile(r"^\s+([\d.]+) s\s+(\S+)$")


def _pg_admin_url(url: str) -> str:
    return url.rsplit("/", 1)[0] + "/postgres"


def _unreachable(url: str) -> str | None:
    """Why the PostgreSQL server of ``url`` cannot be used, or None."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(_pg_admin_url(url))
        with engine.connect():
            pass
        engine.dispose()
    except Exception as error:  # the reason is printed, the bench goes on without it
        return type(error).__name__
    return None


def _fresh_postgres(url: str, name: str) -> str:
    """A new, empty database ``name`` on the server of ``url``; its URL."""
    import sqlalchemy as sa

    engine = sa.create_engine(_pg_admin_url(url), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return url.rsplit("/", 1)[0] + f"/{name}"


def _env(folder: Path, warehouse_url: str, start: dt.date, end: dt.date) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update(
        KPI_DEMO="1",
        LOG_LEVEL="WARNING",
        WAREHOUSE_URL=warehouse_url,
        LANDING_ROOT=str(folder / "landing"),
        KPI_REPORT_DIR=str(folder / "reports"),
        KPI_QUALITY_DIR=str(folder / "quality"),
        KPI_PARSE_CACHE_DIR=str(folder / "parsed"),
        DEMO_START=start.isoformat(),
        DEMO_END=end.isoformat(),
    )
    return env


def _run(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    began = time.monotonic()
    done = subprocess.run(
        [PYTHON, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    took = time.monotonic() - began
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return took, done.stdout


def bench(kind: str, history: int, repeat: int, pg_url: str, root: Path) -> list[dict]:
    yesterday = dt.date.today() - dt.timedelta(days=1)
    end = yesterday - dt.timedelta(days=repeat)
    start = end - dt.timedelta(days=history - 1)
    folder = root / f"{kind}_{history}"
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "duckdb":
        url = f"duckdb:///{folder / 'warehouse.duckdb'}"
    else:
        url = _fresh_postgres(pg_url, f"bench_daily_{history}")
    load_s, _ = _run(["demo.run"], _env(folder, url, start, end))
    print(f"{kind:10} {history:4} days: demo loaded in {load_s:.1f} s ({start} .. {end})")
    results = []
    for i in range(1, repeat + 1):
        day = end + dt.timedelta(days=i)
        process_s, out = _run(["demo.day", "--day", day.isoformat()], _env(folder, url, start, day))
        found = DONE.search(out)
        if not found:
            sys.exit(f"no summary line in the output of demo.day:\n{out}")
        steps = {m.group(2): float(m.group(1)) for m in map(STEP.match, out.splitlines()) if m}
        top = ", ".join(f"{k} {v:.2f}" for k, v in list(steps.items())[:5])
        in_process = float(found.group(3))
        times = f"{in_process:6.2f} s in process, {process_s:6.2f} s process"
        print(f"{'':21}{day}: {times}; {top}")
        results.append(
            {
                "kind": kind,
                "history": history,
                "day": day,
                "in_process": in_process,
                "process": process_s,
                "steps": steps,
            }
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", default="60,425", help="history lengths in days")
    parser.add_argument("--warehouses", default="duckdb,postgresql")
    parser.add_argument("--repeat", type=int, default=3, help="new days run after the load")
    parser.add_argument(
        "--pg-url",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="a PostgreSQL server (a database per history length is created on it)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the warehouses and files")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="daily_bench_"))
    results = []
    try:
        for kind in args.warehouses.split(","):
            if kind == "postgresql" and (reason := _unreachable(args.pg_url)):
                print(f"postgresql: skipped, {args.pg_url} does not answer ({reason})")
                continue
            for history in [int(h) for h in args.history.split(",")]:
                results += bench(kind, history, args.repeat, args.pg_url, root)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print("\nmedian of the new days (fastest in brackets):")
    print(f"{'warehouse':12}{'history':>8}{'in process s':>16}{'process s':>14}")
    for kind in args.warehouses.split(","):
        for history in [int(h) for h in args.history.split(",")]:
            mine = [r for r in results if r["kind"] == kind and r["history"] == history]
            if not mine:
                continue
            inp = [r["in_process"] for r in mine]
            proc = [r["process"] for r in mine]
            print(
                f"{kind:12}{history:>8}{statistics.median(inp):>9.2f} ({min(inp):.2f})"
                f"{statistics.median(proc):>8.2f} ({min(proc):.2f})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
