"""Where the report goes: ``<folder>/scorecard-<as-of>.html``, written whole or not at all.

The folder is the caller's (a Dagster resource in the pipeline): the kernel reads no
environment.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

# The folder the pipeline writes to unless configured (resources.reports.ReportResource).
DEFAULT_REPORT_DIR = "data/reports"


def report_path(folder: Path | str, as_of: dt.date) -> Path:
    """``<folder>/scorecard-<as-of>.html``: one file per as-of date, so reruns replace it."""
    return Path(folder) / f"scorecard-{as_of.isoformat()}.html"


def write_report(html_text: str, folder: Path | str, as_of: dt.date) -> Path:
    """Write the page to ``<folder>/scorecard-<as-of>.html``; return its path.

    Written to a temporary file and renamed, so a reader never opens half a report; the
    temporary file is the writer's own, so two runs writing the same report at once each
    rename a whole page (the last one wins) instead of one renaming the other's file away.
    """
    path = report_path(folder, as_of)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(html_text)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the page from a web server
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
