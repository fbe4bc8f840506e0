"""Where the pipeline writes the HTML scorecard report."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

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
        description="KPI_REPORT_DIR: folder the HTML scorecard report is written to",
    )
    base_url: str | None = Field(
        default=None,
        description="KPI_REPORT_BASE_URL: where that folder is served, e.g. "
        "https://reports.example.com/kpi/: the report link in the UI points there. "
        "Unset: a file:// link, which opens on the machine that ran the job.",
    )

    def link(self, path: Path) -> str:
        """The URL the UI links the report ``path`` to."""
        if self.base_url:
            return self.base_url.rstrip("/") + "/" + quote(path.name)
        return path.resolve().as_uri()
