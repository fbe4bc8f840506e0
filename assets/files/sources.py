"""Raw tables loaded from landing files (CSV or Parquet), one asset per file source.

The file sources are those of ``sources.yaml`` that declare a ``landing`` folder; the load
itself is ``ingest.files.loading`` (no Dagster there). Here it becomes an asset: its
partitions, its blocking quality check and the metadata shown in the UI.
"""

import datetime as dt
from collections.abc import Sequence

import pandas as pd
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
from assets.quality import check_result, quality_check_spec
from assets.settings import (
    catalog,
    history_start,
    source_code_version,
    suites_dir,
    warehouse_kind,
    warehouse_pool,
)
from ingest.files import FileFormatError, FileLoad, RowProblem
from ingest.files.loading import (
    FX_RATES,
    LoadNotConserved,
    day_expression,
    file_sources,
    load_window,
)
from ingest.landing import LandingUnavailable
from kpi.language.catalog import Catalog
from quality.checks import check_written_rows
from resources.landing import LandingResource
from resources.quality import QualityResource
from resources.warehouse import WarehouseResource

PROBLEMS_SHOWN = 200
_VALUE_SHOWN = 200


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


def build_file_asset(name: str, description: str, cat: Catalog | None = None) -> AssetsDefinition:
    """The asset of file source ``name`` of ``cat`` (default: the catalog of the definitions
    folder)."""
    cat = cat or catalog()
    spec = cat.sources[name]
    deps = [FX_RATES] if spec.currency_conversion else []

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
        kinds={"csv", "sql", warehouse_kind()},
        pool=warehouse_pool(),
        deps=deps,
        check_specs=[quality_check_spec(name)],
        freshness_policy=DAILY_FRESHNESS,
        code_version=source_code_version(name),
    )
    def _load(
        context: AssetExecutionContext,
        landing: LandingResource,
        warehouse: WarehouseResource,
        quality: QualityResource,
    ) -> MaterializeResult:
        wh = warehouse.warehouse
        first_partition, end = partition_dates(context)
        folder = landing.landing()
        try:
            load = load_window(
                wh,
                folder,
                cat,
                name,
                first_partition,
                end,
                context.run.run_id,
                dt.date.fromisoformat(history_start()),
                context.log,
                suites=suites_dir(),
                parse_cache=landing.parse_cache_folder(),
            )
        except LandingUnavailable as exc:
            raise Failure(description=f"{name}: {exc}; nothing was loaded or deleted") from exc
        except FileFormatError as exc:
            raise _failure(name, exc) from exc
        except LoadNotConserved as exc:
            raise Failure(description=str(exc), metadata=exc.conservation.to_metadata()) from exc
        zone = cat.reporting.time_zone
        day = day_expression(load.table, spec, zone)
        window = day.between(load.start, load.end)
        outcome = check_written_rows(
            wh,
            load.table,
            window,
            name,
            load.conservation,
            day,
            (load.start, load.end),
            context.run.run_id,
            zone,
            suites=suites_dir(),
            docs_folder=quality.docs_folder,
        )
        return MaterializeResult(
            metadata={
                **table_metadata(wh, load.table, window),
                **load.summary(),
                "files": _file_summary(load.files),
            },
            check_results=[check_result(name, outcome)],
        )

    return _load


def build_file_assets(cat: Catalog) -> list[AssetsDefinition]:
    """One asset per file source of ``cat`` (a source with a ``landing`` folder), described
    by its ``description`` in sources.yaml."""
    return [
        build_file_asset(name, spec.description, cat) for name, spec in file_sources(cat).items()
    ]


file_assets = build_file_assets(catalog())
