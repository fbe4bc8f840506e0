"""KPI tables computed in the warehouse from the declarative definitions."""

import datetime as dt
import hashlib
import json

import pandas as pd
import sqlalchemy as sa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from assets.ad_platforms.campaign_days import AD_PLATFORMS
from assets.freshness import DAILY_FRESHNESS
from assets.ga4.reports import GA4_ASSETS
from assets.metadata import metadata_table, table_metadata
from assets.settings import catalog, warehouse_kind, warehouse_pool
from ingest.files.loading import FX_RATES, file_sources
from kpi.compute.periods import Period
from kpi.compute.tables import KpiTables
from kpi.language.catalog import Catalog
from kpi.publication.catalog_tables import formula
from kpi.publication.claims import refresh_claims_view
from kpi.publication.scorecard import latest_scorecard, render
from kpi.publication.unmapped import refresh_unmapped_view
from kpi.refresh import (
    default_as_of,
    refresh_anomalies,
    refresh_calendar,
    refresh_catalog,
    refresh_comparisons,
    refresh_kpi_values,
    refresh_scorecard_view,
    refresh_targets,
)
from kpi.status.targets import SEASONAL, SEASONAL_FALLBACK
from quality.kpi_outputs import kpi_output_problems
from resources.warehouse import WarehouseResource

KPI_FRESHNESS = DAILY_FRESHNESS

# Every raw table KPIs read: the GA4 reports of reports.yaml and the file sources of
# sources.yaml (exchange rates are read by the sources they convert, not by KPIs).
RAW_ASSETS = [
    *GA4_ASSETS,
    *[n for n in file_sources(catalog()) if n != FX_RATES],
    *AD_PLATFORMS,
]
# The raw tables kpi_values reads: the sources its KPIs' measures name. The lineage shows
# them as the table's inputs (kpi_periods reads every raw table only for its first day).
KPI_INPUTS = sorted(
    {
        stored
        for k in catalog().kpis.values()
        for _, m in k.measures
        for stored in catalog().stored_sources(m.source)  # a union's members
    }
    & set(RAW_ASSETS)
)
OWNERS = ["team:analytics-engineering"]


class PeriodsConfig(Config):
    as_of: str | None = Field(
        default=None,
        description="Last day with data (ISO date); default: yesterday in the reporting zone",
    )
    full_refresh: bool = Field(
        default=False,
        description="Recompute every KPI table from scratch instead of only the periods the "
        "changed days touch (the result is the same; for a warehouse edited by hand)",
    )


# The tables of the catalogue last asked for, with it: built once a process (~20 ms), not
# once a step. Nothing a refresh does changes them after they are built.
_BUILT: list[tuple[Catalog, KpiTables]] = []


def _tables() -> KpiTables:
    cat = catalog()
    if not _BUILT or _BUILT[0][0] is not cat:
        # Refreshes read per-source daily rollups: one scan of each raw table per run.
        _BUILT[:] = [(cat, KpiTables.for_catalog(cat, use_cubes=True))]
    return _BUILT[0][1]


def _catalog_table() -> MetadataValue:
    """The catalogue as a table in the UI (free text such as a filter `a | b` stays one
    cell: a table cell, not markdown)."""
    kpis = sorted(catalog().kpis.values(), key=lambda k: (k.area, k.id))
    rows = [
        {
            "kpi_id": k.id,
            "name": k.name,
            "area": k.area,
            "owner": k.owner,
            "type": k.type,
            "formula": formula(k),
            "grains": ", ".join(k.grains),
        }
        for k in kpis
    ]
    return metadata_table(pd.DataFrame(rows), max_rows=len(rows))


def catalog_code_version(cat: Catalog | None = None) -> str:
    """Changes when any KPI's definition_version does (default: the shipped catalogue)."""
    cat = cat or catalog()
    blob = "".join(f"{k}:{v}" for k, v in sorted(cat.versions.items()))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def goals_code_version(cat: Catalog | None = None) -> str:
    """The definitions plus every target, benchmark and threshold: a KPI's definition
    version leaves them out (a new target does not change its values), but the targets
    and comparisons computed from them must show as stale when they change."""
    cat = cat or catalog()
    goals = {
        k: [
            kpi.target.model_dump(mode="json") if kpi.target else None,
            kpi.benchmark.model_dump(mode="json") if kpi.benchmark else None,
            kpi.thresholds.model_dump(mode="json"),
        ]
        for k, kpi in sorted(cat.kpis.items())
    }
    blob = catalog_code_version(cat) + json.dumps(goals, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@asset(
    code_version=catalog_code_version(),
    freshness_policy=KPI_FRESHNESS,
    group_name="kpis",
    owners=OWNERS,
    kinds={"sql", warehouse_kind()},
    pool=warehouse_pool(),
    deps=RAW_ASSETS,
)
def kpi_periods(
    context: AssetExecutionContext, config: PeriodsConfig, warehouse: WarehouseResource
) -> MaterializeResult:
    """Reporting periods (day, week, month, quarter, year) in the reporting time zone, from
    the first day of data to the as-of date, with the windows every KPI is evaluated over:
    to-date ends, previous-period and last-year windows aligned to the same days, and
    month/quarter/year-to-date and rolling starts."""
    tables = _tables()
    wh = warehouse.warehouse
    wh.ensure_tables(tables.all_tables())
    as_of = dt.date.fromisoformat(config.as_of) if config.as_of else default_as_of(tables.catalog)
    done = refresh_calendar(wh, tables, as_of, full_refresh=config.full_refresh)
    changed = f"changed from {done.changed_from}" if done.changed_from else "none changed"
    context.log.info(f"{done.periods} periods from {done.first} through {as_of}; {changed}")
    return MaterializeResult(metadata={**table_metadata(wh, tables.periods), "as_of": str(as_of)})


@asset(
    freshness_policy=KPI_FRESHNESS,
    group_name="kpis",
    owners=OWNERS,
    kinds={"sql", warehouse_kind()},
    pool=warehouse_pool(),
    deps=["kpi_periods", "kpi_catalog", *KPI_INPUTS],
    code_version=catalog_code_version(),
    check_specs=[
        AssetCheckSpec(
            "output_sanity",
            asset="kpi_values",
            blocking=False,
            description="Percent KPIs within 0..1 (growth rates: not below -100%), no NULL "
            "value with a positive denominator, "
            "and dimension slices of additive KPIs adding up to the total row (warns only).",
        )
    ],
)
def kpi_values(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """Every KPI of `kpi_definitions/` at each of its grains and dimension slices, compiled to
    SQL and computed inside the warehouse. Ratios keep numerator and denominator and divide
    sums; distinct counts are counted at each grain; a day without rows counts as zero."""
    tables = _tables()
    wh = warehouse.warehouse
    counts = refresh_kpi_values(wh, tables)
    context.log.info(f"computed {len(counts)} KPIs, {sum(counts.values())} rows")
    problems = kpi_output_problems(wh, tables.values, catalog())
    failing = {name: rows for name, rows in problems.items() if not rows.empty}
    sanity = AssetCheckResult(
        check_name="output_sanity",
        passed=not failing,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "failed_checks": sorted(failing),
            # One table per failing check: their columns differ.
            **{f"failing: {n}": metadata_table(r) for n, r in failing.items()},
        },
    )
    return MaterializeResult(
        check_results=[sanity],
        metadata={
            **table_metadata(wh, tables.values, order_by=[tables.values.c.kpi_id]),
            "rows_per_kpi": counts,
            "kpis": _catalog_table(),
            "definition_versions": catalog().versions,
        },
    )


kpi_values.__doc__  # noqa: B018 - the docstring is the asset description


@asset(
    code_version=goals_code_version(),
    freshness_policy=KPI_FRESHNESS,
    group_name="kpis",
    owners=OWNERS,
    kinds={"sql", warehouse_kind()},
    pool=warehouse_pool(),
    # Seasonal phasing reads last year's daily values: the values come first.
    deps=[kpi_periods, kpi_values],
)
def kpi_targets(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """Each KPI's target for every period of its grains, phased from the definitions:
    additive targets are spread over days (a partial period gets its days' share), evenly or,
    with seasonal phasing, by last year's daily values from `kpi_values` (linear where last
    year is not known, marked `seasonal_fallback_linear`); rates keep the same target at every
    grain. A target with a deadline also gets its goal. Examples say so."""
    tables = _tables()
    wh = warehouse.warehouse
    frame = wh.read(sa.select(tables.periods))
    periods = [Period(**row) for row in frame.to_dict("records")]
    inserted = refresh_targets(wh, tables, periods)
    t = tables.targets
    phasing = wh.read(
        sa.select(t.c.kpi_id, t.c.phasing, sa.func.count().label("periods"))
        .where(t.c.phasing.in_([SEASONAL, SEASONAL_FALLBACK]))
        .group_by(t.c.kpi_id, t.c.phasing)
        .order_by(t.c.kpi_id, t.c.phasing)
    )
    context.log.info(f"{inserted} target rows")
    return MaterializeResult(
        metadata={
            **table_metadata(wh, tables.targets),
            "seasonal_phasing": metadata_table(phasing),
        }
    )


@asset(
    code_version=goals_code_version(),
    freshness_policy=KPI_FRESHNESS,
    group_name="kpis",
    owners=OWNERS,
    kinds={"sql", warehouse_kind()},
    pool=warehouse_pool(),
    deps=[kpi_values, kpi_targets],
)
def kpi_comparisons(
    context: AssetExecutionContext, warehouse: WarehouseResource
) -> MaterializeResult:
    """Each KPI value against its target and the previous period (the same days of it, for
    an open period), with a direction-aware attainment and a status: on_track, at_risk,
    off_track, insufficient_data or no_target. This is the table BI scorecards read. Also
    (re)creates the views beside it: `kpi_scorecard`, `conversion_claims` (each ad
    platform's claimed conversions beside the observed ones) and `unmapped_dimension_values`
    (raw values no channel rule places)."""
    tables = _tables()
    wh = warehouse.warehouse
    rows = refresh_comparisons(wh, tables)
    view = refresh_scorecard_view(wh, tables)
    claims = refresh_claims_view(wh, tables)
    unmapped = refresh_unmapped_view(wh, tables)
    scorecard = latest_scorecard(wh, tables.comparisons, tables.catalog.dimensions)
    context.log.info("scorecard:\n" + render(scorecard, tables.catalog))
    return MaterializeResult(
        metadata={
            **table_metadata(wh, tables.comparisons),
            "rows": rows,
            "scorecard_view": view,
            "claims_view": claims or "not made: a source it reads is not declared",
            "unmapped_view": unmapped or "not made: no channel taxonomy",
            "scorecard": metadata_table(scorecard),
            "status_counts": scorecard["status"].value_counts().to_dict(),
        }
    )


@asset(
    freshness_policy=KPI_FRESHNESS,
    group_name="kpis",
    owners=OWNERS,
    kinds={"sql", warehouse_kind()},
    pool=warehouse_pool(),
    code_version=goals_code_version(),
)
def kpi_catalog(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """Every KPI's definition (name, description, area, owner, unit, direction, formula,
    target, benchmark and version) as a table BI tools can show beside the numbers, plus
    `kpi_changes`, the history of definition versions. A changed definition recomputes the
    KPI's whole history on the next run; `kpi_changes` says when it changed."""
    tables = _tables()
    wh = warehouse.warehouse
    wh.ensure_tables(tables.all_tables())
    changed = refresh_catalog(wh, tables)
    if changed:
        context.log.warning(
            "definition changed, history recomputed with the new version: " + ", ".join(changed)
        )
    return MaterializeResult(
        metadata={
            **table_metadata(wh, tables.catalog_table),
            "changed_definitions": changed,
            "kpis": _catalog_table(),
        }
    )


RECENT_DAYS = 7


@asset(
    code_version=catalog_code_version(),
    freshness_policy=KPI_FRESHNESS,
    group_name="kpis",
    owners=OWNERS,
    kinds={"sql", "pandas", warehouse_kind()},
    pool=warehouse_pool(),
    deps=[kpi_values],
    check_specs=[
        AssetCheckSpec(
            "no_recent_anomalies",
            asset="kpi_anomalies",
            description=f"Warns when a KPI's daily value in the last {RECENT_DAYS} days is "
            "beyond 3 robust standard deviations of its weekday-aware 28-day band.",
        )
    ],
)
def kpi_anomalies(
    context: AssetExecutionContext, warehouse: WarehouseResource
) -> MaterializeResult:
    """Daily KPI values outside their recent range, compared weekday with weekday: the median
    of the same weekday over the previous 28 days, and 3 robust standard deviations (from the
    median absolute deviation) around it. An early warning, kept apart from status: a
    tracking outage or a campaign spike shows here before it moves a monthly figure."""
    tables = _tables()
    wh = warehouse.warehouse
    flagged = refresh_anomalies(wh, tables)
    last_day = wh.scalar(sa.select(sa.func.max(tables.periods.c.window_end)))
    recent = flagged
    if last_day is not None and not flagged.empty:
        since = last_day - dt.timedelta(days=RECENT_DAYS - 1)
        recent = flagged[flagged["period_start"] >= since]
    shown = recent[["kpi_id", "period_start", "value", "baseline", "z_score", "kind"]]
    return MaterializeResult(
        metadata={
            **table_metadata(wh, tables.anomalies, tables.anomalies.c.is_anomaly),
            "anomalies": len(flagged),
            "recent_anomalies": metadata_table(shown),
        },
        check_results=[
            AssetCheckResult(
                check_name="no_recent_anomalies",
                passed=recent.empty,
                severity=AssetCheckSeverity.WARN,
                metadata={
                    "recent_anomalies": len(recent),
                    "details": metadata_table(shown),
                },
            )
        ],
    )
