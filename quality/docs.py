"""Self-contained HTML data docs for one validation (GX-style: summary plus every outcome).

GX's own Data Docs need a file-backed context and site builders; one static page per
validation, linked from the check's metadata, shows the same facts without that machinery.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from quality.validate import ValidationReport

__all__ = ["DEFAULT_QUALITY_DIR", "write_data_docs", "write_data_docs_or_warn"]


# Where pages go unless told: the code location passes KPI_QUALITY_DIR (QualityResource).
DEFAULT_QUALITY_DIR = Path("data/quality")


def _cell(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def write_data_docs(
    report: ValidationReport,
    source: str,
    run_id: str,
    facts: dict[str, Any] | None = None,
    folder: Path | str = DEFAULT_QUALITY_DIR,
) -> Path:
    """Write ``<folder>/<source>-<run_id>.html`` and return its absolute path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    safe_run = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)
    path = (folder / f"{source}-{safe_run}.html").resolve()
    rows = "\n".join(
        "<tr class='{cls}'><td>{name}</td><td>{gx}</td><td>{sev}</td><td>{ok}</td>"
        "<td>{count}</td><td>{pct}</td><td>{samples}</td></tr>".format(
            cls="ok" if o.success else ("warn" if o.severity == "warn" else "fail"),
            name=_cell(o.name),
            gx=_cell(o.gx_type),
            sev=_cell(o.severity),
            ok="passed" if o.success else "FAILED",
            count=_cell(o.unexpected_count),
            pct=_cell(None if o.unexpected_percent is None else f"{o.unexpected_percent:.2f}%"),
            samples=_cell(
                "; ".join(t for t in (o.error or ", ".join(map(str, o.sample_values)), o.note) if t)
            ),
        )
        for o in report.outcomes
    )
    fact_rows = "\n".join(
        f"<tr><th>{_cell(k)}</th><td>{_cell(v)}</td></tr>" for k, v in (facts or {}).items()
    )
    status = "passed" if report.success else "FAILED"
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{_cell(source)} validation {_cell(run_id)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}.fail{{background:#fdd}}
.warn{{background:#ffd}}.ok{{background:#efe}}</style></head><body>
<h1>Suite {_cell(report.suite)}: {status}</h1>
<p>Source <b>{_cell(source)}</b>, run <code>{_cell(run_id)}</code>, {report.row_count} rows,
{report.success_percent:.1f}% of {len(report.outcomes)} expectations passed.</p>
<table>{fact_rows}</table>
<h2>Expectations</h2>
<table><tr><th>expectation</th><th>GX type</th><th>severity</th><th>result</th>
<th>unexpected</th><th>unexpected %</th><th>samples / error</th></tr>
{rows}
</table></body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path


def write_data_docs_or_warn(
    report: ValidationReport,
    source: str,
    run_id: str,
    facts: dict[str, Any] | None = None,
    folder: Path | str = DEFAULT_QUALITY_DIR,
) -> tuple[Path | None, str | None]:
    """Like :func:`write_data_docs`, but a page that cannot be written is a problem to report,
    not an error: ``(path, None)`` or ``(None, message naming the folder)``.

    The page is written after the rows it describes are committed; failing the step then would
    show as failed a step whose data is loaded, and block the KPIs that read it.
    """
    try:
        return write_data_docs(report, source, run_id, facts, folder), None
    except OSError as error:
        reason = error.strerror or str(error)
        return None, (
            f"the data-docs page of {source} could not be written: folder {folder} "
            f"(KPI_QUALITY_DIR) is not writable ({type(error).__name__}: {reason}); the rows "
            "are loaded and the check result stands. Point KPI_QUALITY_DIR at a writable folder."
        )
