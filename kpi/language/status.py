"""The one status vocabulary: what ``kpi_comparisons.status`` holds and every reader shows.

A KPI's status compares its value with its target (and thresholds) knowing whether higher
or lower is better; how each status is shown (a label, a mark, a colour) is the business of
``kpi.publication.formatting``, not of the modules that decide it.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """A KPI row's status; the values are what the warehouse stores."""

    on_track = "on_track"
    at_risk = "at_risk"
    off_track = "off_track"
    insufficient_data = "insufficient_data"  # no value, or fewer answers than min_sample_size
    no_target = "no_target"  # nothing to judge against at this grain


# Worst first: how a scorecard or a report orders its rows.
STATUS_ORDER: tuple[Status, ...] = (
    Status.off_track,
    Status.at_risk,
    Status.on_track,
    Status.insufficient_data,
    Status.no_target,
)
