"""`make backfill FROM=... TO=...`: a Dagster asset backfill of days, in the instance's queue.

The same backfill the UI launches (select partitions, Materialize): every raw asset for
the days FROM..TO, in runs of at most 31 days each (the raw assets' ``BackfillPolicy``),
then the KPI tables once. It is submitted to the Dagster instance at ``DAGSTER_HOME`` and
carried out by its daemon (``dg dev`` / ``make dev`` runs one; production runs
``dagster-daemon run``); runs queue on the instance's pools, so a backfill never collides
with a UI materialization or the daily schedule on a DuckDB warehouse.

``dagster job backfill`` is not the way: it makes one run per day (a job backfill ignores
the assets' backfill policy).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

from dagster import AssetKey, DagsterInstance
from dagster._core.definitions.assets.graph.asset_graph import AssetGraph
from dagster._core.execution.backfill import PartitionBackfill
from dagster._core.utils import make_new_backfill_id

from assets.partitions import daily_partitions
from pipelines.assets_list import all_assets


def partition_keys(first: dt.date, last: dt.date) -> list[str]:
    """The daily partition keys from ``first`` to ``last``; a day outside the partitions
    (before the first, or not over yet) is an error naming the partitions' bounds."""
    if last < first:
        raise ValueError(f"--to {last} is before --from {first}")
    keys = daily_partitions.get_partition_keys()
    missing = [d for d in (first, last) if d.isoformat() not in keys]
    if missing:
        bounds = f"{keys[0]}..{keys[-1]}" if keys else "none yet"
        raise ValueError(
            f"{missing[0]} is not a daily partition (partitions: {bounds}; KPI_HISTORY_START "
            "sets the first day, the last is yesterday in the reporting time zone)"
        )
    return [k for k in keys if first.isoformat() <= k <= last.isoformat()]


def submit_backfill(
    instance: DagsterInstance, first: dt.date, last: dt.date, title: str | None = None
) -> str:
    """Submit the asset backfill of every asset for ``first..last``; returns its id."""
    graph = AssetGraph.from_assets(all_assets)
    selection: list[AssetKey] = sorted(graph.get_all_asset_keys())
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=make_new_backfill_id(),
        asset_graph=graph,
        partition_names=partition_keys(first, last),
        asset_selection=selection,
        backfill_timestamp=time.time(),
        tags={},
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=title or f"days {first}..{last}",
        description="make backfill (pipelines.backfill)",
        run_config=None,
    )
    instance.add_backfill(backfill)
    return backfill.backfill_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="first", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--to", dest="last", required=True, type=dt.date.fromisoformat)
    args = parser.parse_args(argv)
    instance = DagsterInstance.get()
    try:
        backfill_id = submit_backfill(instance, args.first, args.last)
    except ValueError as error:
        print(f"backfill: {error}", file=sys.stderr)
        return 2
    days = (args.last - args.first).days + 1
    print(
        f"backfill {backfill_id} submitted: {days} days in runs of at most 31 days; the "
        "daemon (make dev, or dagster-daemon run) carries it out: see Overview > Backfills"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
