"""Where the pipeline writes the HTML scorecard report."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from kpi.publication.report import DEFAULT_REPORT_DIR


class ReportResource(ConfigurableResource):
    """The report folder: ``<folder>/scorecard-<as-of>.html``, one file per as-of date.

    The code location sets it from ``KPI_REPORT_DIR`` (default ``data/reports``); the kernel
    takes the folder as an argument and reads no environment.
    """

    folder: str = Field(
        default=DEFAULT_REPORT_DIR,
        description="Folder the HTML scorecard report is written to",
    )
