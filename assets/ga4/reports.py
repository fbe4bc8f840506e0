"""GA4 assets: one per report of ``kpi_definitions/ga4/reports.yaml``, named after its table's
source in ``sources.yaml`` (``ga4_traffic``, ``ga4_ecommerce``, ``ga4_users_weekly``, ...).

A run for the days ``first..last`` pulls, for every property, one request per period of the
report's grain (each day; each ISO week or month touched, whole), five to a BatchRunReports
call, and replaces exactly those periods of that property in the warehouse, the ``(other)``
row included, validating and writing up to ``WRITE_PERIODS`` periods at a time. Every
request is written to ``raw.ga4_load_log``.

Time zones: GA4 reports each property's days in the property's own time zone and offers no
way to ask for another. A partition ``2026-03-01`` therefore loads, for each property, its
own 1 March. A property whose zone is not the reporting zone is loaded all the same (its zone
is in the load log); the non-blocking ``ga4_flags`` check then warns, because its days are not
the reporting zone's days. Currency works the same way.

Failures: a property that fails (no permission, quota gone, retries exhausted, or a write
whose rows do not add up: received != loaded + quarantined) does not stop the other
properties; once all are done the run fails with a ``Failure`` naming each failed property,
the cause and what was and was not loaded. The periods already loaded stay loaded.
"""

import datetime as dt
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import sqlalchemy as sa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
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
from assets.quality import (
    quality_check_spec,
    run_quality_check,
    write_with_quarantine,
)
from assets.settings import catalog, source_code_version
from ingest.ga4 import GA4Error, GA4QuotaExhaustedError
from ingest.ga4_load_log import (
    STATUS_DEFERRED,
    STATUS_FAILED,
    STATUS_LOADED,
    ga4_load_log_table,
    loaded_rows,
    log_frame,
    unloaded_rows,
)
from ingest.ga4_pull import Bucket, BucketResult, buckets_for
from ingest.ga4_reports import GA4Report, TableDeclaration, load_reports
from kpi.language.catalog import Catalog, definitions_dir
from kpi.language.models import Reporting
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.schema import source_table
from quality.quarantine import Conservation, ConservationError
from resources.ga4 import GA4Resource
from resources.warehouse import WarehouseResource

# Beside the area files, not among them: the KPI catalog reads every top-level *.yaml.
REPORTS_FILE = Path("ga4") / "reports.yaml"
FLAGS_CHECK = "ga4_flags"
# Pulled periods are validated and written together up to this many periods or rows: one
# write's cost hardly depends on its size, so many small ones made a backfill slow, while
# bounding them keeps a big property's rows from piling up in memory.
WRITE_PERIODS = 35
WRITE_ROWS = 200_000
_LOG_PREVIEW_COLUMNS = [
    "property_id",
    "date",
    "status",
    "rows",
    "other_rows",
    "pages",
    "requests",
    "time_zone",
    "currency_code",
    "period_complete",
    "sampled",
    "sampling_ratio",
    "thresholded",
    "data_loss_from_other_row",
    "tokens_per_day_consumed",
    "tokens_per_day_remaining",
    "tokens_per_hour_remaining",
    "error",
]
_LOG_PREVIEW_ROWS = 100


def reports_path() -> Path:
    """``ga4/reports.yaml`` in the definitions folder (``KPI_DEFINITIONS_DIR``)."""
    return definitions_dir() / REPORTS_FILE


def table_declarations(cat: Catalog) -> dict[str, TableDeclaration]:
    """Every table ``sources.yaml`` declares, as the reports loader needs it."""
    return {
        spec.table: TableDeclaration(
            source=name,
            table=spec.table,
            time_column=spec.time.column,
            time_type=spec.time.type,
            grain=str(spec.grain),
            columns={
                column: (str(col.additivity) if col.additivity else None)
                for column, col in spec.columns.items()
            },
        )
        for name, spec in cat.sources.items()
    }


@cache
def ga4_reports() -> dict[str, GA4Report]:
    """The checked reports; a bad file raises here, so the code location fails to load."""
    cat = catalog()
    return load_reports(
        reports_path(), table_declarations(cat), week_start=cat.reporting.week_start
    )


def flags_check_spec(source: str) -> AssetCheckSpec:
    return AssetCheckSpec(
        FLAGS_CHECK,
        asset=source,
        blocking=False,
        description="Warns (never blocks) when GA4 sampled or thresholded the data, folded "
        "rows into (other), reported a day that was not over yet in the property's time zone, "
        "or when a property's time zone or currency is not the reporting one.",
    )


def build_ga4_asset(report: GA4Report) -> AssetsDefinition:
    """The partitioned asset loading ``report`` into its table."""
    grain_text = {
        "day": "one request per property and day",
        "week": "one request per property and ISO week touched by the run, pulled whole",
        "month": "one request per property and month touched by the run, pulled whole",
    }[report.grain]

    @asset(
        name=report.source,
        description=(
            f"{report.description}\n\nGA4 report `{report.name}` "
            f"({report.file.name}): {grain_text}, days in the property's time zone; each run "
            f"replaces the periods it pulls in `{report.table.table}` and logs every request in "
            "`raw.ga4_load_log`."
        ),
        partitions_def=daily_partitions,
        backfill_policy=monthly_chunks,
        group_name="raw_ga4",
        owners=["team:data-engineering"],
        kinds={"ga4", "sql"},
        check_specs=[quality_check_spec(report.source), flags_check_spec(report.source)],
        tags={"source": "ga4"},
        # Steps calling the GA4 API share one concurrency pool across runs (deploy/dagster.yaml).
        pool="ga4",
        freshness_policy=DAILY_FRESHNESS,
        code_version=source_code_version(report.source),
        metadata={
            "ga4_report": report.name,
            "ga4_dimensions": ", ".join(report.spec.dimensions),
            "ga4_metrics": ", ".join(report.spec.metrics),
            "grain": report.grain,
        },
    )
    def _ga4_asset(
        context: AssetExecutionContext, ga4: GA4Resource, warehouse: WarehouseResource
    ) -> MaterializeResult:
        return load_report(context, ga4, warehouse.warehouse, report)

    return _ga4_asset


def load_report(
    context: AssetExecutionContext, ga4: GA4Resource, wh: Warehouse, report: GA4Report
) -> MaterializeResult:
    """Pull ``report`` for the run's partitions and every property; see the module docstring."""
    cat = catalog()
    spec = cat.sources[report.source]
    metadata = sa.MetaData()
    table = source_table(report.source, spec, metadata)
    log_table = ga4_load_log_table(metadata)
    wh.ensure_tables([table, log_table])
    time_column = table.c[spec.time.column]

    first, last = partition_dates(context)
    yesterday = dt.datetime.now(ZoneInfo(cat.reporting.time_zone)).date() - dt.timedelta(days=1)
    buckets = buckets_for(report.grain, first, last, latest=yesterday)
    run_id = context.run.run_id
    loaded_at = dt.datetime.now(dt.UTC)

    log: list[dict] = []
    received = loaded = quarantined = 0
    failures: dict[str, tuple[str, list[Bucket], list[Bucket]]] = {}

    def write(
        property_id: str, items: list[BucketResult], problems: list[ConservationError]
    ) -> list[Bucket]:
        """Replace ``items``' periods of ``property_id``; the periods written. Rows not
        conserved (received != loaded + quarantined) are appended to ``problems``: the
        periods were written all the same, and are logged with the counts as their error."""
        nonlocal received, loaded, quarantined, log
        frame, counts = _group_rows(context, report, table, property_id, items)
        frame = frame.assign(_run_id=run_id, _loaded_at=loaded_at)
        keys = [item.bucket.key for item in items]
        where = (table.c.property_id == property_id) & time_column.in_(keys)
        # Rows failing a row-level expectation are quarantined; the rest load.
        prefix = f"ga4:properties/{property_id}/{report.name}/"
        _, _, kept = write_with_quarantine(
            wh,
            table,
            where,
            frame,
            report.source,
            run_id,
            lambda rows: rows[spec.time.column],
            lambda q, keys=keys, prefix=prefix: (
                q.c._partition.in_(keys) & q.c._source_file.startswith(prefix)
            ),
            partition=(min(keys), max(keys)),
        )
        received += kept.received
        loaded += kept.loaded
        quarantined += kept.quarantined
        rows = loaded_rows(
            run_id,
            report.name,
            report.table.table,
            report.grain,
            [(item, *count) for item, count in zip(items, counts, strict=True)],
        )
        try:
            # Fails the step once every property is done (like a GA4 error), naming the
            # property, the periods and the three counts; the load log records them first.
            kept.require(f"{report.source}: GA4 property {property_id}, {min(keys)}..{max(keys)}")
        except ConservationError as exc:
            problems.append(exc)
            rows = [{**row, "error": str(exc)} for row in rows]
        log += rows
        return [item.bucket for item in items]

    for property_id in ga4.property_ids:
        done: list[Bucket] = []
        pending: list[BucketResult] = []
        error: GA4Error | None = None
        # A write whose rows are not conserved stops the property, like a GA4 error.
        problems: list[ConservationError] = []
        try:
            for batch in ga4.pull(property_id, report.spec, buckets):
                pending += batch
                if (
                    len(pending) >= WRITE_PERIODS
                    or sum(len(item.result.rows) for item in pending) >= WRITE_ROWS
                ):
                    group, pending = pending, []
                    done += write(property_id, group, problems)
                    if problems:
                        break
        except GA4Error as exc:
            error = exc
        if pending:  # complete pulls, also when a later batch failed: they load
            try:
                done += write(property_id, pending, problems)
            except Exception as write_error:
                if error is None:
                    raise
                # The API's error stays visible, as the cause: the write failed while
                # loading what had been pulled before it.
                raise write_error from error
        if error is not None or problems:
            rest = [b for b in buckets if b not in done]
            status = STATUS_DEFERRED if isinstance(error, GA4QuotaExhaustedError) else STATUS_FAILED
            message = "; ".join(str(e) for e in [*problems, error] if e is not None)
            unloaded = str(error) if error is not None else f"not pulled: {message}"
            log += unloaded_rows(
                run_id,
                property_id,
                report.name,
                report.table.table,
                report.grain,
                rest,
                status,
                unloaded,
            )
            failures[property_id] = (message, done, rest)
            context.log.error(f"GA4 property {property_id}, report {report.name}: {message}")
            continue
        rows = sum(r["rows"] for r in log if r["property_id"] == property_id)
        context.log.info(
            f"GA4 property {property_id}: {rows} rows of report {report.name} for "
            f"{len(done)} {report.grain}(s) {first}..{last}"
        )

    frame = log_frame(log)
    _write_log(wh, log_table, frame, run_id, report)
    log_markdown = _log_markdown(frame)
    if failures:
        raise Failure(
            description=_failure_text(report, failures, len(ga4.property_ids)),
            metadata={"ga4_load_log": MetadataValue.md(log_markdown), "run_id": run_id},
            # The client already retried what is worth retrying; another step attempt would
            # only spend more quota on a permission or quota problem.
            allow_retries=False,
        )

    keys = [b.key for b in buckets]
    window = time_column.between(min(keys), max(keys))
    conservation = Conservation(received, loaded, quarantined)
    conservation.require(f"{report.source}: GA4 report {report.name}, {first}..{last}")
    check = run_quality_check(
        wh,
        table,
        window,
        report.source,
        conservation,
        time_column,
        (min(keys), max(keys)),
        run_id,
    )
    return MaterializeResult(
        metadata={
            **table_metadata(wh, table, window, order_by=[time_column]),
            "window": f"{first}..{last}",
            "periods": f"{len(buckets)} {report.grain}(s) {buckets[0].start}..{buckets[-1].end}",
            "properties": list(ga4.property_ids),
            **conservation.to_metadata(),
            "ga4_load_log": MetadataValue.md(log_markdown),
        },
        check_results=[check, flags_result(report, frame, cat.reporting)],
    )


def _group_rows(
    context: AssetExecutionContext,
    report: GA4Report,
    table: sa.Table,
    property_id: str,
    batch: Sequence[BucketResult],
) -> tuple[pd.DataFrame, list[tuple[int, int]]]:
    """The warehouse rows of a group of pulled periods, and (rows, other rows) per period."""
    frames: list[pd.DataFrame] = []
    counts: list[tuple[int, int]] = []
    for item in batch:
        rows = item.result.rows
        other = rows["is_other_row"]
        if other.any() and not report.keeps_other_rows:
            # Only tables that declare is_other_row can hold it; say so rather than load it
            # into a table whose readers do not expect it.
            context.log.warning(
                f"GA4 property {property_id}, report {report.name}, {item.bucket.label}: "
                f"dropped {int(other.sum())} (other) row(s); declare is_other_row in "
                f"sources.yaml for {report.table.table} to keep them"
            )
            rows = rows[~other]
        rows = rows.rename(columns=dict(report.columns)).reset_index(drop=True)
        rows["property_id"] = property_id
        rows["_source_file"] = f"ga4:properties/{property_id}/{report.name}/{item.bucket.label}"
        rows["_source_line"] = pd.Series(range(1, len(rows) + 1), dtype="int64")
        counts.append((len(rows), int(rows["is_other_row"].sum())))
        frames.append(rows)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return frame[[c.name for c in table.columns if c.name in frame.columns]], counts


def _write_log(
    wh: Warehouse, log_table: sa.Table, frame: pd.DataFrame, run_id: str, report: GA4Report
) -> None:
    if frame.empty:
        return
    # Idempotent per (run, property, report, period): a retried step rewrites its own rows.
    where = sa.and_(
        log_table.c.run_id == run_id,
        log_table.c.report == report.name,
        sa.or_(
            *[
                sa.and_(log_table.c.property_id == p, log_table.c.date.in_(list(g["date"])))
                for p, g in frame.groupby("property_id")
            ]
        ),
    )
    wh.replace_rows(log_table, where, frame)


def _log_markdown(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_no requests_"
    shown = frame[_LOG_PREVIEW_COLUMNS].copy()
    shown["error"] = shown["error"].map(lambda e: e if e is None else str(e)[:120])
    text = markdown_table(shown, max_rows=_LOG_PREVIEW_ROWS)
    if len(frame) > _LOG_PREVIEW_ROWS:
        text += f"\n\n_{len(frame) - _LOG_PREVIEW_ROWS} more rows in raw.ga4_load_log_"
    return text


def _failure_text(
    report: GA4Report,
    failures: dict[str, tuple[str, list[Bucket], list[Bucket]]],
    properties: int,
) -> str:
    lines = [
        f"GA4 report `{report.name}` ({report.table.table}) failed for {len(failures)} of "
        f"{properties} propert{'y' if properties == 1 else 'ies'}:"
    ]
    for property_id, (error, done, rest) in failures.items():
        lines.append(f"- property {property_id}: {error}")
        loaded = ", ".join(b.label for b in done) or "nothing"
        lines.append(
            f"  loaded: {loaded}; not loaded: {', '.join(b.label for b in rest) or 'nothing'}"
        )
    if len(failures) < properties:
        lines.append("The other properties were loaded.")
    lines.append("Every request of this run is in raw.ga4_load_log.")
    return "\n".join(lines)


def flags_result(report: GA4Report, log: pd.DataFrame, reporting: Reporting) -> AssetCheckResult:
    """WARN when the loaded data is doubtful, or not in the reporting zone or currency."""
    loaded = log[log["status"] == STATUS_LOADED]
    issues: list[str] = []
    for property_id, rows in loaded.groupby("property_id", sort=True):
        zones = sorted({z for z in rows["time_zone"] if isinstance(z, str)})
        if zones and zones != [reporting.time_zone]:
            issues.append(
                f"property {property_id} reports in {', '.join(zones)}, not the reporting zone "
                f"{reporting.time_zone}: its dates are its own calendar days"
            )
        currencies = sorted({c for c in rows["currency_code"] if isinstance(c, str)})
        if currencies and currencies != [reporting.currency]:
            issues.append(
                f"property {property_id} reports money in {', '.join(currencies)}, not "
                f"{reporting.currency}: revenue columns are not converted"
            )
        for column, what in (
            ("sampled", "sampled"),
            ("thresholded", "thresholded (rows withheld for privacy)"),
            ("data_loss_from_other_row", "partly folded into the (other) row"),
        ):
            dates = [str(d) for d in rows.loc[rows[column].fillna(False).astype(bool), "date"]]
            if dates:
                issues.append(f"property {property_id}: {what} on {_dates_text(dates)}")
        if report.grain == "day":
            open_days = [str(d) for d in rows.loc[rows["period_complete"].eq(False), "date"]]
            if open_days:
                issues.append(
                    f"property {property_id}: {_dates_text(open_days)} not over yet in "
                    f"{', '.join(zones)} when pulled; the next run's lookback re-pulls it"
                )
    return AssetCheckResult(
        check_name=FLAGS_CHECK,
        asset_key=report.source,
        passed=not issues,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "issues": MetadataValue.md("\n".join(f"- {i}" for i in issues) or "_none_"),
            "issue_count": len(issues),
        },
    )


def _dates_text(dates: list[str]) -> str:
    shown = ", ".join(dates[:5])
    return shown + (f" and {len(dates) - 5} more" if len(dates) > 5 else "")


ga4_assets: list[AssetsDefinition] = [build_ga4_asset(r) for r in ga4_reports().values()]
GA4_ASSETS: dict[str, AssetsDefinition] = {a.key.to_user_string(): a for a in ga4_assets}
