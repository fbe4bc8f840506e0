"""The load of one window of a file source into the warehouse (no Dagster here).

:func:`load_window` reads every landing file of the source, places each row in the run's
window or in the quarantine (rows of no partition, rows that could not be parsed, rows
without an exchange rate, rows failing the source's suite), writes the window's rows and
quarantine in one transaction, records every file in the load registry and requires that
every row received is loaded or quarantined. The file assets call it and shape its result
into Dagster metadata.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from ingest.files.currency import convert_currency, reject_fx
from ingest.files.dates import row_days
from ingest.files.deliveries import FileLoad, read_source
from ingest.files.parse_cache import ParseCache
from ingest.files.problems import RowProblem
from ingest.files.reach import (
    Reach,
    arrival_days,
    as_quarantined,
    period_start,
    rejected_between,
    rows_per_file,
    split_strays,
    today_in,
)
from ingest.landing import Landing
from ingest.load_registry import file_loads_table, first_loaded, record_loads
from kpi.compute.source_sql import local_date
from kpi.language.catalog import Catalog
from kpi.language.models import SourceSpec
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.schema import source_table
from quality.quarantine import (
    Conservation,
    ConservationError,
    require_conserved,
    row_value_problems,
)
from quality.writes import SHIPPED_SUITES, asset_suite, write_with_quarantine

# The source of the daily exchange rates the sources with ``currency_conversion`` read.
FX_RATES = "fx_rates"


class Log(Protocol):
    def info(self, msg: str) -> None: ...

    def warning(self, msg: str) -> None: ...


class LoadNotConserved(ConservationError):
    """Rows received that were neither loaded nor quarantined; the counts are recorded in
    ``raw.file_loads`` before this is raised."""

    def __init__(self, message: str, conservation: Conservation):
        super().__init__(message)
        self.conservation = conservation


def file_sources(catalog: Catalog) -> dict[str, SourceSpec]:
    """The sources loaded from landing files: those declaring a ``landing`` folder."""
    return {name: spec for name, spec in catalog.sources.items() if spec.landing is not None}


def day_expression(table: sa.Table, spec: SourceSpec, zone: str) -> ColumnElement:
    """Each row's partition day in SQL: its date, or its timestamp's day in ``zone``."""
    col = table.c[spec.time.column]
    if spec.time.type == "date":
        return col
    return local_date(col, sa.literal(zone))


@dataclass(frozen=True)
class WindowLoad:
    """What :func:`load_window` did: the window, every file and the rows' counts."""

    source: str
    table: sa.Table
    first_partition: dt.date
    start: dt.date  # the rows' window: the whole periods the partitions touch
    end: dt.date
    files: list[FileLoad]
    rows_superseded: int
    conservation: Conservation
    deleted: int
    inserted: int

    @property
    def read(self) -> list[FileLoad]:
        return [f for f in self.files if f.status != "duplicate"]

    def summary(self) -> dict:
        """The load's facts as plain values, in the order the asset shows them."""
        return {
            "window": f"{self.first_partition}..{self.end}",
            "rows_window": f"{self.start}..{self.end}",
            "files_found": len(self.files),
            "files_read": len(self.read),
            "duplicate_files": [f.path for f in self.files if f.status == "duplicate"],
            "empty_files": [f.path for f in self.files if f.status == "empty"],
            "rows_superseded": self.rows_superseded,
            **self.conservation.to_metadata(),
            "rows_replaced": self.deleted,
        }


def load_window(
    wh: Warehouse,
    folder: Landing,
    catalog: Catalog,
    name: str,
    first_partition: dt.date,
    end: dt.date,
    run_id: str,
    history_start: dt.date,
    log: Log,
    suites: Path = SHIPPED_SUITES,
    parse_cache: Path | None = None,
) -> WindowLoad:
    """Load the rows of source ``name`` for the partitions ``first_partition..end``.

    Raises ``LandingUnavailable`` (before any delete) when the source's folder is missing,
    ``FileFormatError`` when a file cannot be read at all, and :class:`LoadNotConserved`
    when a row received was neither loaded nor quarantined. ``parse_cache`` is the folder
    where parsed files are kept between runs (ingest.files.parse_cache; None: parse all).
    """
    spec = catalog.sources[name]
    zone = catalog.reporting.time_zone
    table = source_table(name, spec, sa.MetaData())
    loads_table = file_loads_table(sa.MetaData())
    wh.ensure_tables([table, loads_table])
    # A row of a month source is dated by its month's first day, which the run's first
    # partition may lie after (a window from the 5th): the run reaches the whole periods
    # its partitions touch, reads and replaces them, else that row would be in no window.
    start = period_start(first_partition, spec.grain)
    # Before any delete: a missing folder lists no files, and loading "no files" would
    # replace the loaded days with nothing.
    folder.require(spec.landing)
    # Bad rows are quarantined below; only a file that cannot be read fails the run.
    loaded_first = first_loaded(wh, name)
    # A row the suite quarantines never supersedes the good row of its key.
    batch = read_source(
        folder,
        spec,
        zone,
        loaded_first,
        strict=False,
        row_problems=lambda rows: row_value_problems(
            as_quarantined(rows, spec), asset_suite(name, suites)
        ),
        cache=ParseCache(parse_cache, name, spec) if parse_cache is not None else None,
    )
    first_day = period_start(history_start, spec.grain)
    reach = Reach(start, end, first_day, today_in(zone))
    arrival = arrival_days(batch.files, loaded_first, zone, reach)
    frame, strays = split_strays(batch.frame, spec, zone, reach, arrival)
    rejected = rejected_between(batch.rejected, spec, zone, reach, arrival)
    if not strays.empty:
        rejected = pd.concat([rejected, strays], ignore_index=True)
    if spec.currency_conversion is not None:
        rates_table = source_table(FX_RATES, catalog.sources[FX_RATES], sa.MetaData())
        rates = wh.read(sa.select(rates_table).where(rates_table.c.date.between(start, end)))
        fx_problems: list[RowProblem] = []
        frame = convert_currency(
            frame, spec, rates, catalog.reporting.currency, zone, problems_out=fx_problems
        )
        if fx_problems:
            frame, rejected = reject_fx(frame, rejected, fx_problems, spec, zone)
    for f in batch.files:
        if f.note:
            log.info(f"{name}: {f.path}: {f.note}")
    if batch.rows_superseded:
        log.info(
            f"{name}: {batch.rows_superseded} row(s) replaced by later deliveries of the same key"
        )
    loaded_at = dt.datetime.now(dt.UTC)
    frame = frame.assign(_run_id=run_id, _loaded_at=loaded_at)
    received_per_file = rows_per_file(frame, rejected)
    window = day_expression(table, spec, zone).between(start, end)
    # Rows loaded and quarantined per landing file, counted in the write's transaction.
    per_file: dict[str, int] = {}
    held: dict[str, int] = {}
    deleted, inserted, conservation = write_with_quarantine(
        wh,
        table,
        window,
        frame,
        name,
        run_id,
        lambda rows: row_days(rows, spec, zone),
        reach.quarantine_slice,
        rejected,
        (start, end),
        zone,
        per_file_out=(per_file, held),
        suites=suites,
        key=spec.key or (),
    )
    if conservation.quarantined:
        log.warning(
            f"{name}: {conservation.quarantined} row(s) quarantined in {table.fullname}__quarantine"
        )
    record_loads(
        wh, name, batch.files, per_file, (start, end), run_id, loaded_at, received_per_file, held
    )
    try:
        # Recorded first, so raw.file_loads shows the counts that did not add up.
        require_conserved(name, conservation, received_per_file, per_file, held)
    except ConservationError as exc:
        raise LoadNotConserved(str(exc), conservation) from exc
    result = WindowLoad(
        name,
        table,
        first_partition,
        start,
        end,
        batch.files,
        batch.rows_superseded,
        conservation,
        deleted,
        inserted,
    )
    log.info(
        f"{name}: {inserted} rows for {start}..{end} from {len(result.read)} file(s) "
        f"({len(batch.files) - len(result.read)} duplicate(s) skipped)"
    )
    return result
