"""Replay quarantined rows after a fix: ``python -m quality.replay SOURCE [--warehouse URL]``.

Every quarantined row of ``SOURCE`` is validated again with the current suite (say, once an
allowed value was added to the YAML). The rows that now pass move to the raw table, replacing
any raw row with the same business key so a replay never duplicates, and leave quarantine; all
in one transaction. Rows quarantined for a parse problem stay: their bad value was never
stored, so only a corrected file (reloaded by the normal run) can bring them back. Rows no
partition holds (dated in the future or before the first partition) stay too: the run of
their day takes them over; they count as still failing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from kpi.language.catalog import DEFAULT_DEFINITIONS_DIR
from kpi.language.loader import load_catalog
from kpi.warehouse.connection import DEFAULT_WAREHOUSE_URL, Warehouse
from kpi.warehouse.schema import source_table
from quality.quarantine import PARSE_PREFIX, placed_by_a_run, quarantine_table, split_rows
from quality.suites import load_suite

__all__ = ["ReplayResult", "main", "replay"]


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did."""

    replayed: int
    still_failing: int
    needs_file: int


def replay(source: str, wh: Warehouse, definitions: Path = DEFAULT_DEFINITIONS_DIR) -> ReplayResult:
    """Move the quarantined rows of ``source`` that pass its suite now into the raw table;
    ``definitions`` is the definitions folder (its ``quality/`` holds the suites)."""
    folder = Path(definitions)
    cat = load_catalog(folder)
    spec = cat.sources[source]
    if not spec.key:
        raise ValueError(
            f"{source}: replay replaces raw rows by their business key, and the source "
            "declares none; add `key:` (the columns that identify a row) to it in sources.yaml"
        )
    suite = load_suite(folder / "quality" / f"{source}.yaml")
    metadata = sa.MetaData()
    table = source_table(source, spec, metadata)
    qtable = quarantine_table(table, metadata)
    wh.ensure_tables([table, qtable])
    rows = wh.read(sa.select(qtable))
    reasons = rows["_failed_expectations"].fillna("")
    parse = reasons.str.startswith(PARSE_PREFIX)
    # A row outside every partition (in the future, before the first one, outside the window
    # that read it) is not fixed by a suite change: the run of its day takes it over, and
    # moving it to raw here would leave it in a slice no run replaces.
    undated = placed_by_a_run(reasons)
    left_to_runs = int(undated[~parse].sum())
    candidates = rows[~parse & ~undated]
    if candidates.empty:
        return ReplayResult(0, left_to_runs, int(parse.sum()))
    data = [c.name for c in table.columns if not c.name.startswith("_")]
    frame = candidates[[*data, "_source_file", "_source_line", "_quarantine_id"]]
    # No partition window: date_in_partition only refuses days after today (in the zone
    # the partitions are days of).
    good, bad, _ = split_rows(frame, suite, None, cat.reporting.time_zone)
    if not good.empty:
        loaded = good.drop(columns=["_quarantine_id"]).assign(
            _run_id=f"replay-{uuid.uuid4().hex[:12]}", _loaded_at=dt.datetime.now(dt.UTC)
        )
        # Raw rows with the same business key are replaced, so a replay never duplicates.
        with wh.transaction(lock=[table, qtable]) as conn:
            Warehouse.delete_keys_in(conn, table, list(spec.key), good)
            Warehouse.insert_rows_in(conn, table, loaded)
            Warehouse.delete_keys_in(conn, qtable, ["_quarantine_id"], good)
    return ReplayResult(len(good), len(bad) + left_to_runs, int(parse.sum()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quality.replay", description=__doc__)
    parser.add_argument("source", help="source name, e.g. ad_spend")
    parser.add_argument(
        "--warehouse",
        default=os.environ.get("WAREHOUSE_URL", DEFAULT_WAREHOUSE_URL),
        help="SQLAlchemy URL (default: $WAREHOUSE_URL or the demo DuckDB file)",
    )
    parser.add_argument(
        "--definitions",
        type=Path,
        default=Path(os.environ.get("KPI_DEFINITIONS_DIR") or DEFAULT_DEFINITIONS_DIR),
        help="definitions folder (default: $KPI_DEFINITIONS_DIR or the shipped kpi_definitions/)",
    )
    args = parser.parse_args(argv)
    wh = Warehouse(args.warehouse)
    try:
        result = replay(args.source, wh, args.definitions)
    finally:
        wh.dispose()
    print(
        f"{args.source}: {result.replayed} row(s) replayed into the raw table, "
        f"{result.still_failing} still failing, {result.needs_file} need a corrected file"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
