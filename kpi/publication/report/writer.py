"""Where the report goes: ``<folder>/scorecard-<as-of>.html``, written whole or not at all.

The folder is the caller's (a Dagster resource in the pipeline): the kernel reads no
environment.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

# The folder the pipeline writes to unless configured (resources.reports.ReportResource).
DEFAULT_REPORT_DIR = "data/reports"


def report_path(folder: Path | str, as_of: dt.date) -> Path:
    """``<folder>/scorecard-<as-of>.html``: one file per as-of date, so reruns replace it."""
    return Path(folder) / f"scorecard-{as_of.isoformat()}.html"


def write_report(html_text: str, folder: Path | str, as_of: dt.date) -> Path:
    """Write the page to ``<folder>/scorecard-<as-of>.html``; return its path.

    Written to a temporary file and renamed, so a reader never opens half a report.
    """
    path = report_path(folder, as_of)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(html_text, encoding="utf-8")
    tmp.replace(path)
    return path
