"""Great Expectations' state in a process: the module, imported on first use; one
ephemeral context; one data source whose batches are the frames validated; the lock that
serialises validations.

GX's context and data-source registry are not documented as thread-safe, and Dagster's
in-process executor can run steps on threads: one validation at a time per process
(``VALIDATION_LOCK``), and the context and data source are made under it.
"""

from __future__ import annotations

import gc
import sys
import threading
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING

from quality.gx_import import deferred, hidden

if TYPE_CHECKING:
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.data_context import AbstractDataContext
    from great_expectations.datasource.fluent.interfaces import Batch

VALIDATION_LOCK = threading.Lock()
# The one GX data source of a process: every validation's frame is a batch of its asset.
FRAME_SOURCE = "quality-frames"

_IMPORT = threading.Lock()


@cache
def great_expectations() -> ModuleType:
    """``great_expectations``, imported on first use.

    Lazily: the import costs seconds, and Dagster imports the validation module whenever it
    loads the code location, not only when validating. It makes ~300,000 objects that live
    as long as the process: it runs without the cyclic collector (which would rescan the
    whole heap each time it grows by a quarter), and then everything alive is frozen, out of
    the collector's sight (pipelines.definitions says why), with the import's ~2,000 objects
    of cyclic garbage (collecting them first would cost 0.1 s).
    """
    with _IMPORT:  # one import, and one thread switching the collector off and on
        if "great_expectations" in sys.modules:  # imported by someone else: leave it be
            import great_expectations

            return great_expectations
        enabled = gc.isenabled()
        gc.disable()
        try:
            # Not GX's import of every SQL warehouse's client, and scipy.stats and altair
            # only if used (gx_import).
            with hidden(), deferred():
                import great_expectations
                import great_expectations.data_context.types.base  # for gx_context
        finally:
            gc.freeze()
            if enabled:
                gc.enable()
        return great_expectations


@cache
def gx_context() -> AbstractDataContext:
    """The process's ephemeral GX context, without progress bars."""
    gx = great_expectations()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # Otherwise every run writes a tqdm "Calculating Metrics" bar to stderr.
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


@cache
def frame_batches() -> BatchDefinition:
    """The batch definition every validation gets its batch from, its frame passed as the
    batch's parameter. Made once per process, under ``VALIDATION_LOCK``: adding a data
    source, its asset and batch definition and deleting them again cost ~8 ms of each
    validation, a tenth of a small frame's."""
    source = gx_context().data_sources.add_pandas(name=FRAME_SOURCE)
    try:
        asset = source.add_dataframe_asset(name="frame")
        return asset.add_batch_definition_whole_dataframe("whole_frame")
    except BaseException:  # not cached: the next call starts again from no data source
        gx_context().data_sources.delete(FRAME_SOURCE)
        raise


def forget_frames(batch: Batch) -> None:
    """Drop what the data source's execution engine keeps of a validated ``batch``: its
    frame, and every metric resolved on it (the full-length boolean Series of each
    row-level expectation, the unexpected values and rows). The engine lives as long as the
    data source, and each call's metrics are keyed by their arguments (a partition's bounds
    among them), so it would keep them all. GX reads the cache only for a metric's inputs
    missing from the validation's own, which never happens; under ``VALIDATION_LOCK``."""
    engine = batch.data.execution_engine
    engine.batch_manager.reset_batch_cache()
    engine.batch_manager.batch_data_cache.clear()
    metrics = getattr(engine, "_metric_cache", None)  # GX 1.x's; tests/quality checks it
    if isinstance(metrics, dict):
        metrics.clear()
