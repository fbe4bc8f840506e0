"""Raw tables loaded from landing files (CSV or Parquet), one asset per declared source."""

import datetime as dt
from collections.abc import Sequence

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
from assets.metadata import markdown_table, table_metadata
from assets.partitions import daily_partitions, monthly_chunks, partition_dates
from assets.quality import quality_check_spec, run_quality_check, write_with_quarantine
from assets.settings import catalog, source_code_version
from ingest.files import (
    FileFormatError,
    FileLoad,
    RowProblem,
    convert_currency,
    read_source,
    rows_between,
)
from ingest.load_registry import file_loads_table, first_loaded, record_loads
from kpi.compiler import local_date
from kpi.models import SourceSpec
from kpi.schema import source_table
from kpi.warehouse import Warehouse
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


def _day_of(table: sa.Table, name: str) -> sa.ColumnElement:
    spec = catalog().sources[name]
    col = table.c[spec.time.column]
    if spec.time.type == "date":
        return col
    return local_date(col, sa.literal(catalog().reporting.time_zone))


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
            "value": "" if p.value is None else p.value,
            "expected": p.expected,
        }
        for p in problems[:PROBLEMS_SHOWN]
    ]
    return Failure(
        description=f"{name}: {error}",
        metadata={
            "problem_count": len(problems),
            "files_with_problems": sorted({p.file for p in problems}),
            "problems": MetadataValue.md(markdown_table(pd.DataFrame(rows), PROBLEMS_SHOWN)),
        },
    )


def _row_days(frame: pd.DataFrame, spec: SourceSpec, zone: str) -> pd.Series:
    """Each row's reporting-zone day (NaT-safe; the frame may mix typed and bare rows)."""
    values = frame[spec.time.column] if spec.time.column in frame else pd.Series(None, frame.index)
    if spec.time.type == "date":
        return pd.to_datetime(values, errors="coerce").dt.date
    return pd.to_datetime(values, errors="coerce", utc=True).dt.tz_convert(zone).dt.date


def _rejected_between(
    rejected: pd.DataFrame, spec: SourceSpec, zone: str, start: dt.date, end: dt.date
) -> pd.DataFrame:
    """Rows that failed parsing whose day (their own, else their file's first day, else the
    window start) is in ``start..end``; named like the raw table's columns."""
    if rejected.empty:
        return rejected
    days = _row_days(rejected, spec, zone).astype(object)
    days = days.where(days.notna(), rejected["_file_day"]).where(lambda d: d.notna(), start)
    out = rejected.assign(_partition_day=days)
    out = out[(days >= start) & (days <= end)].reset_index(drop=True)
    conv = spec.currency_conversion
    if conv is not None:
        # The quarantine table has the raw table's columns: money as received is "original_".
        out = out.rename(
            columns={
                conv.amount: f"original_{conv.amount}",
                conv.currency_column: "original_currency",
            }
        )
    return out


def _file_summary(files: list[FileLoad]) -> str:
    rows = [
        f"| {f.path} | {f.status} | {f.rows} | {f.first_date or ''}..{f.last_date or ''} | "
        f"{f.rows_superseded} | {f.format} | {f.note} |"
        for f in files
    ]
    head = "| file | status | rows | dates | superseded | format | note |\n" + "|---" * 7 + "|"
    return "\n".join([head, *rows]) if rows else "_no files_"


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
        "A business key found in several files takes the row of the latest delivery; a file "
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
        start, end = partition_dates(context)
        try:
            # Bad rows are quarantined below; only a file that cannot be read fails the run.
            batch = read_source(landing.landing(), spec, zone, first_loaded(wh, name), strict=False)
        except FileFormatError as exc:
            raise _failure(name, exc) from exc
        frame = rows_between(batch.frame, spec, zone, start, end)
        rejected = _rejected_between(batch.rejected, spec, zone, start, end)
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
        window = _day_of(table, name).between(start, end)
        deleted, inserted, conservation = write_with_quarantine(
            wh,
            table,
            window,
            frame,
            name,
            context.run.run_id,
            lambda rows: _row_days(rows, spec, zone),
            lambda q: q.c._partition.between(start, end),
            rejected,
            (start, end),
        )
        if conservation.quarantined:
            context.log.warning(
                f"{name}: {conservation.quarantined} row(s) quarantined in "
                f"{table.fullname}__quarantine"
            )
        per_file = frame["_source_file"].value_counts().to_dict() if not frame.empty else {}
        record_loads(wh, name, batch.files, per_file, (start, end), context.run.run_id, loaded_at)
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
        )
        return MaterializeResult(
            metadata={
                **table_metadata(wh, table, window),
                "window": f"{start}..{end}",
                "files_found": len(batch.files),
                "files_read": len(read),
                "duplicate_files": [f.path for f in batch.files if f.status == "duplicate"],
                "empty_files": [f.path for f in batch.files if f.status == "empty"],
                "rows_superseded": batch.rows_superseded,
                **conservation.to_metadata(),
                "rows_replaced": deleted,
                "files": MetadataValue.md(_file_summary(batch.files)),
            },
            check_results=[check],
        )

    return _load


file_assets = [build_file_asset(name, text) for name, text in FILE_SOURCES.items()]
