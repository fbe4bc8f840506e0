"""One line per finished step of a run, with its counts: what `make run` and `make day`
print while the job runs (their Dagster log level stays at WARNING)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from dagster import DagsterEventType, DagsterInstance
from dagster._core.events.log import EventLogEntry


def _value(entry: Any) -> Any:
    return getattr(entry, "value", entry)


def step_line(step: str, seconds: float, metadata: dict[str, Any], materializations: int) -> str:
    """``ga4_traffic: 12,345 rows received, 12,300 loaded, 45 quarantined (3.1 s)``."""
    parts = []
    if "rows_received" in metadata:
        parts.append(
            f"{_value(metadata['rows_received']):,} rows received, "
            f"{_value(metadata['rows_loaded']):,} loaded, "
            f"{_value(metadata['rows_quarantined']):,} quarantined"
        )
    elif "dagster/row_count" in metadata:
        parts.append(f"{_value(metadata['dagster/row_count']):,} rows in the table")
    if "path" in metadata:
        parts.append(f"written to {_value(metadata['path'])}")
    if materializations > 1:
        parts.append(f"{materializations:,} partitions")
    detail = ", ".join(parts) or "done"
    return f"  {step}: {detail} ({seconds:.1f} s)"


class StepPrinter:
    """An event-log watcher printing :func:`step_line` for each step as it succeeds."""

    def __init__(self, out: TextIO = sys.stdout):
        self.out = out
        self._metadata: dict[str, dict[str, Any]] = {}
        self._materializations: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, entry: EventLogEntry, _cursor: str | None = None) -> None:
        event = entry.dagster_event
        if event is None or event.step_key is None:
            return
        step = event.step_key
        with self._lock:
            if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
                materialization = event.event_specific_data.materialization
                # Every partition's event carries the run's counts: the last one stands.
                self._metadata[step] = dict(materialization.metadata)
                self._materializations[step] = self._materializations.get(step, 0) + 1
            elif event.event_type == DagsterEventType.STEP_SUCCESS:
                seconds = event.event_specific_data.duration_ms / 1000
                line = step_line(
                    step, seconds, self._metadata.get(step, {}), self._materializations.get(step, 0)
                )
                print(line, file=self.out, flush=True)
            elif event.event_type == DagsterEventType.STEP_FAILURE:
                print(f"  {step}: FAILED (the error follows)", file=self.out, flush=True)


@contextmanager
def printing_steps(
    instance: DagsterInstance, run_id: str, out: TextIO = sys.stdout
) -> Iterator[Callable]:
    """Print a line per finished step of run ``run_id`` while the block runs."""
    printer = StepPrinter(out)
    instance.watch_event_logs(run_id, None, printer)
    try:
        yield printer
    finally:
        instance.end_watch_event_logs(run_id, printer)
