"""Raw tables loaded from landing files (CSV or Parquet), one asset per declared source."""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pandas as pd
import sqlalchemy as sa
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.freshness import DAILY_FRESHNESS
from assets.metadata import metadata_table, table_metadata
from assets.partitions import daily_partitions, monthly_chunks, partition_dates
from assets.quality import (
    asset_suite,
    quality_check_spec,
    run_quality_check,
    write_with_quarantine,
)
from assets.settings import catalog, history_start, source_code_version
from ingest.files import (
    FileFormatError,
    FileLoad,
    RowProblem,
    convert_currency,
    local_dates,
    read_source,
)
from ingest.landing import LandingUnavailable
from ingest.load_registry import file_loads_table, first_loaded, record_loads
from kpi.compute.compiler import local_date
from kpi.language.models import Grain, SourceSpec
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.schema import source_table
from quality.quarantine import (
    ConservationError,
    no_partition_reason,
    require_conserved,
    row_value_problems,
)
from resources.landing import LandingResource
from resources.warehouse import WarehouseResource

FILE_SOURCES = {
    "fx_rates": "Daily exchange rates into the reporting currency.",
    "ad_spend": "Ad platform spend by day, platform and campaign, in the reporting currency.",
    "orders": "Shop orders, one row per order, by order time.",
    "survey_answers": "Customer survey answers (CSAT 1-5, NPS 0-10).",
    "donations": "Donations, one row per gift, by donation time.",
    "volunteer_hours": "Volunteer shifts and their hours, from the volunteer log.",
    "operations": "Output units and hours worked per team and working day.",
    "market": "Revenue of the whole market per month, from an industry report.",
}
PROBLEMS_SHOWN = 200
_VALUE_SHOWN = 200


def _day_of(table: sa.Table, name: str) -> sa.ColumnElement:
    spec = catalog().sources[name]
    col = table.c[spec.time.column]
    if spec.time.type == "date":
        return col
    return local_date(col, sa.literal(catalog().reporting.time_zone))


def _today(zone: str) -> dt.date:
    return dt.datetime.now(ZoneInfo(zone)).date()


def _rows_per_file(frame: pd.DataFrame, rejected: pd.DataFrame) -> dict[str, int]:
    """Rows this run received from each landing file: to load, or already rejected."""
    files = [f["_source_file"] for f in (frame, rejected) if "_source_file" in f]
    if not files:
        return {}
    counts = pd.concat(files, ignore_index=True).astype(str).value_counts()
    return {str(path): int(n) for path, n in counts.items()}


def _rates(wh: Warehouse) -> sa.Table:
    return source_table("fx_rates", catalog().sources["fx_rates"], sa.MetaData())


def _failure(name: str, error: FileFormatError) -> Failure:
    """The run failure for bad files, with every problem as a table in the UI."""
    problems: Sequence[RowProblem] = error.problems
    rows = [
        {
            "file": p.file,
            "line": "" if p.line is None else p.line,
            "field": p.field or "",
            # A value can be 5 MB; the message shows the same first characters.
            "value": "" if p.value is None else p.value[:_VALUE_SHOWN],
            "expected": p.expected,
        }
        for p in problems[:PROBLEMS_SHOWN]
    ]
    return Failure(
        description=f"{name}: {error}",
        metadata={
            "problem_count": len(problems),
            "files_with_problems": sorted({p.file for p in problems}),
            "problems": metadata_table(pd.DataFrame(rows), PROBLEMS_SHOWN),
        },
    )


def _row_days(frame: pd.DataFrame, spec: SourceSpec, zone: str) -> pd.Series:
    """Each row's reporting-zone day (NaT-safe; the frame may mix typed and bare rows)."""
    values = frame[spec.time.column] if spec.time.column in frame else pd.Series(None, frame.index)
    if spec.time.type == "date":
        return pd.to_datetime(values, errors="coerce").dt.date
    return pd.to_datetime(values, errors="coerce", utc=True).dt.tz_convert(zone).dt.date


@dataclass(frozen=True)
class _Reach:
    """The days whose rows a run reads: its window, plus the days no partition holds.

    A row dated after today (a typo, a clock in the wrong zone) or before the first
    partition would otherwise never be read by any run, so it would vanish without trace.
    The run whose window reaches the last partition (yesterday) takes the rows after today
    and those before the first partition (a file holding only such rows is taken by the next
    daily run, whichever days the run that noticed it covered); a run reaching the first
    partition takes those before it too. They are quarantined under their own day, which
    that run's quarantine replace covers: a re-run never duplicates them, and once a future
    day becomes a partition its own run takes the row over.
    """

    start: dt.date
    end: dt.date
    first_day: dt.date
    today: dt.date

    @property
    def takes_future(self) -> bool:
        return self.end >= self.today - dt.timedelta(days=1)

    @property
    def takes_past(self) -> bool:
        return self.start <= self.first_day or self.takes_future

    def in_window(self, days: pd.Series) -> pd.Series:
        return _stamps(days).between(pd.Timestamp(self.start), pd.Timestamp(self.end))

    def stray(self, days: pd.Series) -> pd.Series:
        """Rows of no partition that this run takes (a missing day is none of them)."""
        stamps = _stamps(days)
        future = stamps > pd.Timestamp(self.today) if self.takes_future else False
        past = stamps < pd.Timestamp(self.first_day) if self.takes_past else False
        return (future | past) & stamps.notna()

    def reason(self, column: str, day: dt.date) -> str:
        where = (
            f"after today ({self.today})"
            if day > self.today
            else f"before the first partition ({self.first_day})"
        )
        return no_partition_reason(column, f"{day} is {where}; no partition holds it")

    def quarantine_slice(self, q: sa.Table) -> sa.ColumnElement:
        cond = q.c._partition.between(self.start, self.end)
        if self.takes_future:
            cond = cond | (q.c._partition > self.today)
        if self.takes_past:
            cond = cond | (q.c._partition < self.first_day)
        return cond


def _period_start(day: dt.date, grain: Grain) -> dt.date:
    """The first day of the ``grain`` period holding ``day`` (weeks start on Monday)."""
    if grain == Grain.week:
        return day - dt.timedelta(days=day.weekday())
    if grain == Grain.month:
        return day.replace(day=1)
    if grain == Grain.quarter:
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    if grain == Grain.year:
        return day.replace(month=1, day=1)
    return day


def _stamps(days: pd.Series) -> pd.Series:
    """Days (dates, timestamps of Parquet dates, or missing) as datetime64, NaT when
    missing: one conversion, then every comparison over the whole batch is vectorised
    (a batch holds every row of every landing file of the source)."""
    return pd.to_datetime(days, errors="coerce")


def _as_quarantined(out: pd.DataFrame, spec: SourceSpec) -> pd.DataFrame:
    conv = spec.currency_conversion
    if conv is None:
        return out
    # The quarantine table has the raw table's columns: money as received is "original_".
    return out.rename(
        columns={conv.amount: f"original_{conv.amount}", conv.currency_column: "original_currency"}
    )


def _arrival_days(
    files: list[FileLoad], loaded: dict[str, dt.datetime], zone: str, reach: _Reach
) -> dict[str, dt.date]:
    """The partition day of each file's undated rows: the day the file first arrived (today
    for a new one), within the partitions (first partition .. yesterday). Fixed once the file
    is in the load registry, so every run puts those rows in the same day's quarantine."""
    last = reach.today - dt.timedelta(days=1)
    days = {}
    for f in files:
        at = loaded.get(f.sha256)
        day = at.astimezone(ZoneInfo(zone)).date() if at is not None else reach.today
        days[f.path] = min(max(day, reach.first_day), last)
    return days


def _rejected_between(
    rejected: pd.DataFrame,
    spec: SourceSpec,
    zone: str,
    reach: _Reach,
    arrival: dict[str, dt.date],
) -> pd.DataFrame:
    """Rows that failed parsing whose day (their own, else their file's first day, else the
    day their file arrived) is in the run's window, or is a day no partition holds that this
    run takes; named like the raw table's columns."""
    if rejected.empty:
        return rejected
    days = _row_days(rejected, spec, zone).astype(object)
    # Without a day of its own or of its file, a row takes its file's arrival day: a fixed
    # day, so one run quarantines it, not every run once more under its own window.
    days = days.where(days.notna(), rejected["_file_day"])
    days = days.where(days.notna(), rejected["_source_file"].map(arrival))
    out = rejected.assign(_partition_day=days)
    out = out[reach.in_window(days) | reach.stray(days)].reset_index(drop=True)
    return _as_quarantined(out, spec)


def _split_strays(
    frame: pd.DataFrame,
    spec: SourceSpec,
    zone: str,
    reach: _Reach,
    arrival: dict[str, dt.date],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows of the window, rows of no partition this run takes, as rejected rows)."""
    if frame.empty:
        return frame, pd.DataFrame()
    days = _stamps(pd.Series(list(local_dates(frame, spec, zone)), index=frame.index))
    stray = reach.stray(days)
    strays = frame[stray].assign(_partition_day=days[stray].dt.date)
    strays["_problem"] = [reach.reason(spec.time.column, d) for d in strays["_partition_day"]]
    # A row without a date would be in no window and dropped without trace: the run of the
    # day its file arrived quarantines it.
    held = frame["_source_file"].map(arrival)
    undated = days.isna() & reach.in_window(held)
    if undated.any():
        nodate = frame[undated].assign(_partition_day=held[undated])
        nodate["_problem"] = no_partition_reason(
            spec.time.column, "the row has no date; held by the day its file arrived"
        )
        strays = pd.concat([strays, nodate], ignore_index=True)
    inside = frame[reach.in_window(days)].reset_index(drop=True)
    return inside, _as_quarantined(strays.reset_index(drop=True), spec)


def _file_summary(files: list[FileLoad]) -> MetadataValue:
    """One row per landing file, as a table: a file name holding ``|`` stays one cell."""
    rows = [
        {
            "file": f.path,
            "status": f.status,
            "rows": f.rows,
            "dates": f"{f.first_date or ''}..{f.last_date or ''}",
            "superseded": f.rows_superseded,
            "format": f.format,
            "note": f.note,
        }
        for f in files
    ]
    columns = ["file", "status", "rows", "dates", "superseded", "format", "note"]
    return metadata_table(pd.DataFrame(rows, columns=columns), max_rows=len(rows))


def _reject_fx(
    frame: pd.DataFrame,
    rejected: pd.DataFrame,
    problems: list[RowProblem],
    spec: SourceSpec,
    zone: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Move rows without an exchange rate from ``frame`` to ``rejected``."""
    reasons = {(p.file, p.line): f"parse: {p}" for p in problems}
    keys = list(zip(frame["_source_file"], frame["_source_line"], strict=True))
    mask = pd.Series([k in reasons for k in keys], index=frame.index)
    bad = frame[mask].copy()
    bad["_problem"] = [reasons[k] for k, m in zip(keys, mask, strict=True) if m]
    bad["_partition_day"] = _row_days(bad, spec, zone)
    bad = bad.drop(columns=["fx_rate"], errors="ignore")
    moved = pd.concat([rejected, bad], ignore_index=True) if not rejected.empty else bad
    return frame[~mask].reset_index(drop=True), moved.reset_index(drop=True)


def build_file_asset(name: str, description: str) -> AssetsDefinition:
    spec = catalog().sources[name]
    deps = ["fx_rates"] if spec.currency_conversion else []

    @asset(
        name=name,
        description=f"{description}\n\nLoaded from `{spec.landing}/` in the landing folder; "
        "each run replaces the days of its partitions, so reloading never duplicates rows. "
        "A business key found in several files takes the row of the latest valid delivery (a "
        "quarantined row never replaces a good one); a file "
        "with the same bytes as another is read once. Every file is logged in "
        "`raw.file_loads`.",
        partitions_def=daily_partitions,
        backfill_policy=monthly_chunks,
        group_name="raw_files",
        owners=["team:data-engineering"],
        kinds={"csv", "sql"},
        deps=deps,
        check_specs=[quality_check_spec(name)],
        freshness_policy=DAILY_FRESHNESS,
        code_version=source_code_version(name),
    )
    def _load(
        context: AssetExecutionContext, landing: LandingResource, warehouse: WarehouseResource
    ) -> MaterializeResult:
        cat = catalog()
        zone = cat.reporting.time_zone
        table = source_table(name, spec, sa.MetaData())
        loads_table = file_loads_table(sa.MetaData())
        wh = warehouse.warehouse
        wh.ensure_tables([table, loads_table])
        first_partition, end = partition_dates(context)
        # A row of a month source is dated by its month's first day, which the run's first
        # partition may lie after (a window from the 5th): the run reaches the whole periods
        # its partitions touch, reads and replaces them, else that row would be in no window.
        start = _period_start(first_partition, spec.grain)
        folder = landing.landing()
        try:
            # Before any delete: a missing folder lists no files, and loading "no files"
            # would replace the loaded days with nothing.
            folder.require(spec.landing)
        except LandingUnavailable as exc:
            raise Failure(description=f"{name}: {exc}; nothing was loaded or deleted") from exc
        try:
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
                    _as_quarantined(rows, spec), asset_suite(name)
                ),
            )
        except FileFormatError as exc:
            raise _failure(name, exc) from exc
        first_day = _period_start(dt.date.fromisoformat(history_start()), spec.grain)
        reach = _Reach(start, end, first_day, _today(zone))
        arrival = _arrival_days(batch.files, loaded_first, zone, reach)
        frame, strays = _split_strays(batch.frame, spec, zone, reach, arrival)
        rejected = _rejected_between(batch.rejected, spec, zone, reach, arrival)
        if not strays.empty:
            rejected = pd.concat([rejected, strays], ignore_index=True)
        if spec.currency_conversion is not None:
            rates_table = _rates(wh)
            rates = wh.read(sa.select(rates_table).where(rates_table.c.date.between(start, end)))
            fx_problems: list[RowProblem] = []
            frame = convert_currency(
                frame, spec, rates, cat.reporting.currency, zone, problems_out=fx_problems
            )
            if fx_problems:
                frame, rejected = _reject_fx(frame, rejected, fx_problems, spec, zone)
        for f in batch.files:
            if f.note:
                context.log.info(f"{name}: {f.path}: {f.note}")
        if batch.rows_superseded:
            context.log.info(
                f"{name}: {batch.rows_superseded} row(s) replaced by later deliveries of the "
                "same key"
            )
        loaded_at = dt.datetime.now(dt.UTC)
        frame = frame.assign(_run_id=context.run.run_id, _loaded_at=loaded_at)
        received_per_file = _rows_per_file(frame, rejected)
        window = _day_of(table, name).between(start, end)
        # Rows loaded and quarantined per landing file, counted in the write's transaction.
        per_file: dict[str, int] = {}
        held: dict[str, int] = {}
        deleted, inserted, conservation = write_with_quarantine(
            wh,
            table,
            window,
            frame,
            name,
            context.run.run_id,
            lambda rows: _row_days(rows, spec, zone),
            reach.quarantine_slice,
            rejected,
            (start, end),
            zone,
            per_file_out=(per_file, held),
        )
        if conservation.quarantined:
            context.log.warning(
                f"{name}: {conservation.quarantined} row(s) quarantined in "
                f"{table.fullname}__quarantine"
            )
        record_loads(
            wh,
            name,
            batch.files,
            per_file,
            (start, end),
            context.run.run_id,
            loaded_at,
            received_per_file,
            held,
        )
        try:
            # Recorded first, so raw.file_loads shows the counts that did not add up.
            require_conserved(name, conservation, received_per_file, per_file, held)
        except ConservationError as exc:
            raise Failure(description=str(exc), metadata=conservation.to_metadata()) from exc
        read = [f for f in batch.files if f.status != "duplicate"]
        context.log.info(
            f"{name}: {inserted} rows for {start}..{end} from {len(read)} file(s) "
            f"({len(batch.files) - len(read)} duplicate(s) skipped)"
        )
        check = run_quality_check(
            wh,
            table,
            window,
            name,
            conservation,
            _day_of(table, name),
            (start, end),
            context.run.run_id,
            zone,
        )
        return MaterializeResult(
            metadata={
                **table_metadata(wh, table, window),
                "window": f"{first_partition}..{end}",
                "rows_window": f"{start}..{end}",
                "files_found": len(batch.files),
                "files_read": len(read),
                "duplicate_files": [f.path for f in batch.files if f.status == "duplicate"],
                "empty_files": [f.path for f in batch.files if f.status == "empty"],
                "rows_superseded": batch.rows_superseded,
                **conservation.to_metadata(),
                "rows_replaced": deleted,
                "files": _file_summary(batch.files),
            },
            check_results=[check],
        )

    return _load


file_assets = [build_file_asset(name, text) for name, text in FILE_SOURCES.items()]
