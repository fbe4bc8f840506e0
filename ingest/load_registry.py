"""The load registry ``raw.file_loads``: which landing file, by content, each run loaded.

Files are identified by the SHA-256 of their bytes. The registry is append-only: every load
appends one row per landing file of the source (read, empty or duplicate), and no row is
ever updated. That keeps partition runs that execute side by side (a PostgreSQL backfill)
from racing on the same row, and it answers "which run loaded which file into which days".

The first time a content hash was loaded is its delivery time: when two files hold the same
business key, the later delivery wins (see ``ingest.files.delivery_order``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import pandas as pd
import sqlalchemy as sa

from ingest.files.deliveries import FileLoad
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.schema import RAW_SCHEMA

TABLE_NAME = "file_loads"


def file_loads_table(metadata: sa.MetaData) -> sa.Table:
    """The registry table (created on first use, in the raw schema)."""
    key = f"{RAW_SCHEMA}.{TABLE_NAME}"
    if key in metadata.tables:
        return metadata.tables[key]
    return sa.Table(
        TABLE_NAME,
        metadata,
        sa.Column("source", sa.String, nullable=False, comment="declared file source"),
        sa.Column("file_path", sa.String, nullable=False, comment="path or URL of the file"),
        sa.Column("content_sha256", sa.String, nullable=False, comment="SHA-256 of its bytes"),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String, nullable=False, comment="read, empty or duplicate"),
        sa.Column("duplicate_of", sa.String, comment="file with the same bytes that was read"),
        sa.Column("rows_in_file", sa.BigInteger, nullable=False),
        sa.Column("rows_loaded", sa.BigInteger, nullable=False, comment="rows this run wrote"),
        # Nullable: registries written before these were recorded have none.
        sa.Column(
            "rows_received",
            sa.BigInteger,
            comment="rows of the file in the run's window (after supersession): loaded + "
            "quarantined",
        ),
        sa.Column("rows_quarantined", sa.BigInteger, comment="rows this run quarantined"),
        sa.Column(
            "rows_superseded",
            sa.BigInteger,
            nullable=False,
            comment="rows whose key a later delivery replaced",
        ),
        sa.Column("first_date", sa.Date, comment="first reporting-zone day in the file"),
        sa.Column("last_date", sa.Date, comment="last reporting-zone day in the file"),
        sa.Column("window_start", sa.Date, nullable=False, comment="first day of the run"),
        sa.Column("window_end", sa.Date, nullable=False, comment="last day of the run"),
        sa.Column("file_format", sa.String, comment="how it was read (dialect)"),
        sa.Column("note", sa.String, comment="why it has no rows, or which file it duplicates"),
        sa.Column("run_id", sa.String, nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        schema=RAW_SCHEMA,
        comment="Every landing file each load saw, by content hash (append-only)",
    )


def first_loaded(wh: Warehouse, source: str) -> dict[str, dt.datetime]:
    """When each content hash of ``source`` was first loaded (UTC)."""
    table = file_loads_table(sa.MetaData())
    query = (
        sa.select(table.c.content_sha256, sa.func.min(table.c.loaded_at).label("first"))
        .where(table.c.source == source)
        .group_by(table.c.content_sha256)
    )
    frame = wh.read(query)
    return {str(r.content_sha256): _utc(r.first) for r in frame.itertuples(index=False)}


def record_loads(
    wh: Warehouse,
    source: str,
    files: Sequence[FileLoad],
    rows_loaded: Mapping[str, int],
    window: tuple[dt.date, dt.date],
    run_id: str,
    loaded_at: dt.datetime,
    rows_received: Mapping[str, int] | None = None,
    rows_quarantined: Mapping[str, int] | None = None,
) -> int:
    """Append one registry row per file; returns the rows appended. ``rows_received`` and
    ``rows_quarantined`` (per file path) record the file's row conservation."""
    if not files:
        return 0
    table = file_loads_table(sa.MetaData())
    frame = pd.DataFrame(
        [
            {
                "source": source,
                "file_path": f.path,
                "content_sha256": f.sha256,
                "size_bytes": f.size,
                "status": f.status,
                "duplicate_of": f.duplicate_of,
                "rows_in_file": f.rows,
                "rows_loaded": int(rows_loaded.get(f.path, 0)),
                "rows_received": _count(rows_received, f.path),
                "rows_quarantined": _count(rows_quarantined, f.path),
                "rows_superseded": f.rows_superseded,
                "first_date": f.first_date,
                "last_date": f.last_date,
                "window_start": window[0],
                "window_end": window[1],
                "file_format": f.format,
                "note": f.note or None,
                "run_id": run_id,
                "loaded_at": loaded_at,
            }
            for f in files
        ]
    )
    # replace_rows with a condition that matches nothing is an append in one transaction.
    _, inserted = wh.replace_rows(table, sa.false(), frame)
    return inserted


def _count(counts: Mapping[str, int] | None, path: str) -> int | None:
    return None if counts is None else int(counts.get(path, 0))


def _utc(value) -> dt.datetime:
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()
