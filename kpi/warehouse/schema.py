"""Warehouse tables, declared once as SQLAlchemy metadata.

Raw tables are derived from the source declarations in ``kpi_definitions/sources.yaml``
(plus lineage columns), so the YAML is the one place a source's columns are written down.
KPI tables have a fixed shape that BI tools read.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from kpi.language.models import SourceSpec
from kpi.warehouse.comments import described

RAW_SCHEMA = "raw"
KPI_SCHEMA = "kpi"
# The engine's working tables (daily and monthly cubes, the day map, incremental-run
# bookkeeping): not for readers, and their shape may change between versions. They live
# apart so that a BI tool browsing `kpi` sees only what it should read.
WORK_SCHEMA = "kpi_work"

_TYPES: dict[str, type[sa.types.TypeEngine]] = {
    "integer": sa.BigInteger,
    "number": sa.Double,
    "string": sa.String,
    "date": sa.Date,
    "timestamp": sa.DateTime,
    "boolean": sa.Boolean,
}

LINEAGE_COLUMNS = ("_source_file", "_source_line", "_run_id", "_loaded_at")


def unique_key(table_name: str, *columns: str) -> sa.Index:
    """The unique index on a table's natural key, ``<table>__key``: a second row with the
    same key is refused, whatever the writer. NULLS NOT DISTINCT (PostgreSQL 15+): a NULL
    key part (a total row's dimension) equals another NULL, as the writers' deletes treat it.

    PostgreSQL only. On DuckDB a unique index made the 1M-row replace of kpi_values 19
    times slower (0.45 s -> 8.6 s); there the write locks (kpi.warehouse.locks) and the
    delete-then-insert writes keep keys unique. ``Warehouse.ensure_tables`` adds the index
    to tables created before it existed.
    """
    return sa.Index(
        f"{table_name}__key", *columns, unique=True, postgresql_nulls_not_distinct=True
    ).ddl_if(dialect="postgresql")


def stale_reader_copy(table: sa.Table) -> sa.Table | None:
    """The copy of working table ``table`` an older version kept in the readers' schema
    (``kpi.cube_orders`` before ``kpi_work.cube_orders``), to be dropped; None for others."""
    if table.schema != WORK_SCHEMA:
        return None
    return sa.Table(table.name, sa.MetaData(), schema=KPI_SCHEMA)


def source_table(name: str, spec: SourceSpec, metadata: sa.MetaData) -> sa.Table:
    """The warehouse table of a declared source, with lineage columns."""
    key = f"{spec.schema_name}.{spec.table_name}" if spec.schema_name else spec.table_name
    if key in metadata.tables:
        return metadata.tables[key]
    columns = []
    for col_name, col in spec.columns.items():
        type_ = sa.DateTime(timezone=True) if col.type == "timestamp" else _TYPES[col.type]()
        columns.append(sa.Column(col_name, type_, comment=col.description or None))
    # The declared business key (an undeclared key column is the definition rules' error).
    if spec.key and all(k in spec.columns for k in spec.key):
        key = [unique_key(spec.table_name, *spec.key)]
    else:
        key = []
    columns += [
        sa.Column("_source_file", sa.String, comment="file or API report the row came from"),
        sa.Column("_source_line", sa.BigInteger, comment="line in that file (1 = header)"),
        sa.Column("_run_id", sa.String, comment="Dagster run that loaded the row"),
        sa.Column("_loaded_at", sa.DateTime(timezone=True), comment="when the row was loaded"),
    ]
    return sa.Table(
        spec.table_name,
        metadata,
        *columns,
        *key,
        schema=spec.schema_name,
        comment=spec.description or f"raw source {name}",
    )


def day_periods_table(metadata: sa.MetaData) -> sa.Table:
    """Which period of each grain every day belongs to, up to the as-of date.

    KPI queries join days to their period by equality on this table (a hash join) instead
    of a date-range join, whenever the window is the period itself.
    """
    if f"{WORK_SCHEMA}.day_periods" in metadata.tables:
        return metadata.tables[f"{WORK_SCHEMA}.day_periods"]
    return sa.Table(
        "day_periods",
        metadata,
        sa.Column("grain", sa.String, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("period_start", sa.Date, nullable=False),
        unique_key("day_periods", "grain", "day"),
        schema=WORK_SCHEMA,
        comment="Day to period, per grain, in the reporting calendar (through the as-of date)",
    )


@described
def periods_table(metadata: sa.MetaData, dimensions: list[str] | None = None) -> sa.Table:
    """One row per grain and period, with every window the compiled SQL joins on."""
    if f"{KPI_SCHEMA}.periods" in metadata.tables:
        return metadata.tables[f"{KPI_SCHEMA}.periods"]
    date_cols = [
        "period_start",
        "period_end",
        "window_end",
        "prev_period_start",
        "prev_window_end",
        "ly_period_start",
        "ly_window_end",
        *(
            f"{prefix}{kind}_start"
            for prefix in ("", "prev_", "ly_")
            for kind in (
                "month_to_date",
                "quarter_to_date",
                "year_to_date",
                "rolling_7",
                "rolling_28",
                "rolling_90",
                "all_time",
            )
        ),
    ]
    return sa.Table(
        "periods",
        metadata,
        sa.Column("grain", sa.String, nullable=False),
        *[sa.Column(c, sa.Date, nullable=False) for c in date_cols],
        sa.Column("days_in_period", sa.Integer, nullable=False),
        sa.Column("elapsed_days", sa.Integer, nullable=False),
        sa.Column("is_complete_period", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("grain", "period_start", name="periods__pk"),
        unique_key("periods", "grain", "period_start"),
        schema=KPI_SCHEMA,
        comment="Reporting periods in the reporting time zone, with comparison windows",
    )


@described
def kpi_values_table(metadata: sa.MetaData, dimensions: list[str]) -> sa.Table:
    """The long KPI table: one row per KPI, grain, period and dimension slice."""
    if f"{KPI_SCHEMA}.kpi_values" in metadata.tables:
        return metadata.tables[f"{KPI_SCHEMA}.kpi_values"]
    return sa.Table(
        "kpi_values",
        metadata,
        sa.Column("kpi_id", sa.String, nullable=False, comment="KPI id from kpi_definitions"),
        sa.Column("grain", sa.String, nullable=False, comment="day, week, month, quarter, year"),
        sa.Column("period_start", sa.Date, nullable=False, comment="first day of the period"),
        sa.Column("period_end", sa.Date, nullable=False, comment="last day of the period"),
        sa.Column(
            "is_complete_period",
            sa.Boolean,
            nullable=False,
            comment="false while the period is still open (to date)",
        ),
        *[
            sa.Column(d, sa.String, comment=f"conformed dimension {d}; NULL means all")
            for d in dimensions
        ],
        sa.Column("value", sa.Double, comment="the KPI value; NULL when undefined"),
        sa.Column("numerator", sa.Double, comment="ratio numerator (sum), for re-division"),
        sa.Column("denominator", sa.Double, comment="ratio denominator (sum)"),
        sa.Column(
            "sample_size",
            sa.BigInteger,
            comment="rows behind the value: non-NULL measure values after the filter "
            "(the denominator's for a ratio)",
        ),
        sa.Column("definition_version", sa.String, nullable=False, comment="definition hash"),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        # One row per KPI, grain, period and slice: the total has every dimension NULL, a
        # slice one dimension set (a NULL source value is "(not set)", never NULL).
        unique_key("kpi_values", "kpi_id", "grain", "period_start", *dimensions),
        schema=KPI_SCHEMA,
        comment="KPI values computed from kpi_definitions",
    )


@described
def kpi_targets_table(metadata: sa.MetaData) -> sa.Table:
    if f"{KPI_SCHEMA}.kpi_targets" in metadata.tables:
        return metadata.tables[f"{KPI_SCHEMA}.kpi_targets"]
    return sa.Table(
        "kpi_targets",
        metadata,
        sa.Column("kpi_id", sa.String, nullable=False),
        sa.Column("grain", sa.String, nullable=False),
        sa.Column("period_start", sa.Date, nullable=False),
        sa.Column("target", sa.Double, comment="target for the whole period"),
        sa.Column("target_to_date", sa.Double, comment="target for the days elapsed so far"),
        sa.Column("band_min", sa.Double, comment="target band, to date"),
        sa.Column("band_max", sa.Double, comment="target band, to date"),
        sa.Column("band_min_full", sa.Double, comment="target band for the whole period"),
        sa.Column("band_max_full", sa.Double, comment="target band for the whole period"),
        sa.Column("benchmark_value", sa.Double, comment="benchmark, to date"),
        sa.Column("benchmark_min", sa.Double, comment="benchmark band, to date"),
        sa.Column("benchmark_max", sa.Double, comment="benchmark band, to date"),
        sa.Column("benchmark_source", sa.String, comment="where the benchmark comes from"),
        sa.Column("is_example", sa.Boolean, nullable=False, comment="example values, not real"),
        sa.Column(
            "phasing",
            sa.String,
            comment="how the target was spread over days: linear, per_period, seasonal (by "
            "last year's daily values, 364 days back: same weekdays) or "
            "seasonal_fallback_linear (last year unknown)",
        ),
        sa.Column("goal_start", sa.Date, comment="first day of the goal: its (fiscal) year"),
        sa.Column("goal_deadline", sa.Date, comment="the target's deadline"),
        sa.Column(
            "goal_target",
            sa.Double,
            comment="the goal: the target summed from goal_start to the deadline when "
            "additive, else the target at the deadline",
        ),
        sa.Column("goal_band_min", sa.Double, comment="the goal's band, like goal_target"),
        sa.Column("goal_band_max", sa.Double, comment="the goal's band, like goal_target"),
        sa.Column(
            "goal_elapsed_share",
            sa.Double,
            comment="additive goals: share of the goal planned through the period's last "
            "day (the target phased from goal_start to that day, over goal_target); the "
            "share of the goal's days when goal_target is unknown or zero",
        ),
        sa.Column(
            "goal_projection",
            sa.String,
            comment="run_rate (linear or per_period), seasonal, seasonal_fallback_run_rate "
            "(seasonal, but part of the goal had no last-year shape and is spread by days) "
            "or current_value (rates)",
        ),
        sa.PrimaryKeyConstraint("kpi_id", "grain", "period_start", name="kpi_targets__pk"),
        unique_key("kpi_targets", "kpi_id", "grain", "period_start"),
        schema=KPI_SCHEMA,
        comment="Targets phased per period from the KPI definitions, and the goal of each "
        "target with a deadline (on the periods that end within the goal)",
    )


@described
def kpi_comparisons_table(metadata: sa.MetaData, dimensions: list[str]) -> sa.Table:
    if f"{KPI_SCHEMA}.kpi_comparisons" in metadata.tables:
        return metadata.tables[f"{KPI_SCHEMA}.kpi_comparisons"]
    return sa.Table(
        "kpi_comparisons",
        metadata,
        sa.Column("kpi_id", sa.String, nullable=False),
        sa.Column("kpi_name", sa.String, nullable=False),
        sa.Column("area", sa.String, nullable=False),
        sa.Column("direction", sa.String, nullable=False),
        sa.Column("grain", sa.String, nullable=False),
        sa.Column("period_start", sa.Date, nullable=False),
        sa.Column("period_end", sa.Date, nullable=False),
        sa.Column("is_complete_period", sa.Boolean, nullable=False),
        *[sa.Column(d, sa.String) for d in dimensions],
        sa.Column("actual", sa.Double, comment="the KPI value (to date for an open period)"),
        sa.Column("target", sa.Double, comment="target for the days compared (to date)"),
        sa.Column("target_full_period", sa.Double, comment="target for the whole period"),
        sa.Column(
            "attainment",
            sa.Double,
            comment="direction-aware: 1.0 = on target; for a growth KPI (period over "
            "period) the gap in growth points instead, as variance_favourable (0.03 = 3 points "
            "better than the target)",
        ),
        sa.Column("variance", sa.Double, comment="actual - target"),
        sa.Column(
            "variance_favourable",
            sa.Double,
            comment="the gap to the target, positive = better: actual - target "
            "(higher_is_better), target - actual (lower_is_better); within_band: 0 inside "
            "the band, else minus the distance to the nearer edge",
        ),
        sa.Column(
            "previous",
            sa.Double,
            comment="previous period, same days (a to-date KPI: the same span of the "
            "previous to-date period); NULL when that window starts before the first day of "
            "data of the KPI's sources",
        ),
        sa.Column("change_abs", sa.Double, comment="actual - previous"),
        sa.Column("change_rel", sa.Double, comment="(actual - previous) / previous"),
        sa.Column(
            "last_year",
            sa.Double,
            comment="same period last year, same days (a to-date KPI: the same span last "
            "year); NULL when that window starts before the first day of data of the KPI's "
            "sources",
        ),
        sa.Column("change_ly_abs", sa.Double, comment="actual - last_year"),
        sa.Column("change_ly_rel", sa.Double, comment="(actual - last_year) / last_year"),
        sa.Column("benchmark_value", sa.Double),
        sa.Column("benchmark_min", sa.Double),
        sa.Column("benchmark_max", sa.Double),
        sa.Column("benchmark_source", sa.String),
        sa.Column("benchmark_position", sa.String, comment="below, within, at or above"),
        sa.Column(
            "projected",
            sa.Double,
            comment="projected value at the end of the period: at the daily rate so far, or "
            "along last year's shape when the target is phased seasonally",
        ),
        sa.Column("on_pace", sa.Boolean, comment="will the projection reach the target"),
        sa.Column("sample_size", sa.BigInteger),
        sa.Column("status", sa.String, nullable=False),
        sa.Column(
            "definition_version",
            sa.String,
            nullable=False,
            comment="definition hash the actual was computed under",
        ),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "phasing",
            sa.String,
            comment="how the target was spread over days: linear, per_period, seasonal or "
            "seasonal_fallback_linear (last year did not cover the target period)",
        ),
        sa.Column(
            "goal_start",
            sa.Date,
            comment="first day of the goal (the (fiscal) year of its deadline); goal_* "
            "columns are set on total rows whose last day is within the goal",
        ),
        sa.Column("goal_deadline", sa.Date, comment="the deadline of the KPI's target"),
        sa.Column(
            "goal_target_value",
            sa.Double,
            comment="the goal: target summed from goal_start to the deadline (additive "
            "KPIs) or the target at the deadline (rates); NULL for a band",
        ),
        sa.Column(
            "goal_actual_to_date",
            sa.Double,
            comment="additive KPIs: actual from goal_start through the row's last day",
        ),
        sa.Column(
            "goal_projected_value",
            sa.Double,
            comment="projected value at the deadline, as of the row's last day: "
            "goal_actual_to_date / the share of the goal planned by then (NULL while "
            "nothing is planned yet); a rate's current value",
        ),
        sa.Column(
            "goal_projection",
            sa.String,
            comment="how goal_projected_value was found: actual to date over the share of "
            "the goal planned so far, phased run_rate (linear, per_period), seasonal (last "
            "year's shape) or seasonal_fallback_run_rate (part of the goal's span had no "
            "last-year shape and is spread by days); current_value (rates)",
        ),
        sa.Column(
            "goal_will_reach",
            sa.Boolean,
            comment="will the projection meet the goal (direction-aware, like on_pace)",
        ),
        sa.Column(
            "previous_definition_version",
            sa.String,
            comment="definition version of the previous-period value compared with",
        ),
        sa.Column(
            "last_year_definition_version",
            sa.String,
            comment="definition version of the last-year value compared with",
        ),
        sa.Column(
            "definition_changed_at",
            sa.DateTime(timezone=True),
            comment="when this row's definition version replaced an earlier one "
            "(kpi_changes); NULL if the KPI never changed",
        ),
        sa.Column(
            "history_recomputed",
            sa.Boolean,
            comment="true: the history compared with was restated under the current "
            "definition, which appeared after those days ended; false: computed under the "
            "definition of its time (an older one when its version differs)",
        ),
        # Like kpi_values: one row per KPI, grain, period and slice.
        unique_key("kpi_comparisons", "kpi_id", "grain", "period_start", *dimensions),
        schema=KPI_SCHEMA,
        comment="Each KPI value against its target and the previous period, with a status",
    )


@described
def kpi_catalog_table(metadata: sa.MetaData) -> sa.Table:
    """Every KPI's definition, for BI tools to show next to the numbers."""
    if f"{KPI_SCHEMA}.kpi_catalog" in metadata.tables:
        return metadata.tables[f"{KPI_SCHEMA}.kpi_catalog"]
    return sa.Table(
        "kpi_catalog",
        metadata,
        sa.Column("kpi_id", sa.String, nullable=False, comment="KPI id"),
        sa.Column("name", sa.String, nullable=False, comment="display name"),
        sa.Column("description", sa.String, comment="what the KPI measures"),
        sa.Column("area", sa.String, nullable=False, comment="key area: marketing, sales, ..."),
        sa.Column("owner", sa.String, nullable=False, comment="who answers for the KPI"),
        sa.Column("unit", sa.String, nullable=False, comment="count, currency, percent, ..."),
        sa.Column("currency", sa.String, comment="currency code, for currency KPIs"),
        sa.Column("direction", sa.String, nullable=False, comment="which way is better"),
        sa.Column("format", sa.String, comment="display format hint"),
        sa.Column("kpi_type", sa.String, nullable=False, comment="simple, ratio, derived, ..."),
        sa.Column("formula", sa.String, nullable=False, comment="how the value is computed"),
        sa.Column("grains", sa.String, nullable=False, comment="grains it is reported at"),
        sa.Column("dimensions", sa.String, comment="dimensions it is sliced by"),
        sa.Column("goal", sa.String, comment="the SMART goal behind the KPI"),
        sa.Column("target", sa.String, comment="target as declared"),
        sa.Column("benchmark", sa.String, comment="benchmark as declared, with its source"),
        sa.Column("min_sample_size", sa.Integer, comment="below it, status is insufficient_data"),
        sa.Column(
            "at_risk_below",
            sa.Double,
            comment="status threshold: attainment (1.0 = on target) below it is at risk",
        ),
        sa.Column(
            "off_track_below",
            sa.Double,
            comment="status threshold: attainment below it is off track",
        ),
        sa.Column("tags", sa.String, comment="comma-separated tags"),
        sa.Column("version", sa.String, comment="the author's version label"),
        sa.Column("definition_version", sa.String, nullable=False, comment="definition hash"),
        sa.PrimaryKeyConstraint("kpi_id", name="kpi_catalog__pk"),
        unique_key("kpi_catalog", "kpi_id"),
        schema=KPI_SCHEMA,
        comment="KPI definitions from kpi_definitions/, one row per KPI",
    )


@described
def kpi_changes_table(metadata: sa.MetaData) -> sa.Table:
    """Each definition version of each KPI, and when it was first and last computed."""
    if f"{KPI_SCHEMA}.kpi_changes" in metadata.tables:
        return metadata.tables[f"{KPI_SCHEMA}.kpi_changes"]
    return sa.Table(
        "kpi_changes",
        metadata,
        sa.Column("kpi_id", sa.String, nullable=False),
        sa.Column("definition_version", sa.String, nullable=False, comment="definition hash"),
        sa.Column("version", sa.String, comment="the author's version label"),
        sa.Column("changelog", sa.String, comment="the author's changelog entry, if any"),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        # One row per version; ensure_tables adds the primary key to an older table too.
        sa.PrimaryKeyConstraint("kpi_id", "definition_version"),
        unique_key("kpi_changes", "kpi_id", "definition_version"),
        schema=KPI_SCHEMA,
        comment="History of KPI definition versions; history is recomputed on every run",
    )


@described
def kpi_anomalies_table(metadata: sa.MetaData) -> sa.Table:
    if f"{KPI_SCHEMA}.kpi_anomalies" in metadata.tables:
        return metadata.tables[f"{KPI_SCHEMA}.kpi_anomalies"]
    return sa.Table(
        "kpi_anomalies",
        metadata,
        sa.Column("kpi_id", sa.String, nullable=False),
        sa.Column("period_start", sa.Date, nullable=False, comment="the day"),
        sa.Column("value", sa.Double),
        sa.Column("baseline", sa.Double, comment="median of the same weekday, previous 28 days"),
        sa.Column("robust_sd", sa.Double, comment="1.4826 x MAD of the previous 28 days"),
        sa.Column("z_score", sa.Double, comment="(value - baseline) / robust_sd"),
        sa.Column("is_anomaly", sa.Boolean, nullable=False),
        sa.Column("kind", sa.String, comment="spike or drop"),
        sa.Column("definition_version", sa.String, nullable=False),
        sa.PrimaryKeyConstraint("kpi_id", "period_start", name="kpi_anomalies__pk"),
        unique_key("kpi_anomalies", "kpi_id", "period_start"),
        schema=KPI_SCHEMA,
        comment="Daily KPI values outside their weekday-aware control band (total rows only)",
    )


@described
def kpi_alerts_table(metadata: sa.MetaData) -> sa.Table:
    """Every alert rule that fired, one row per attempt: the history that keeps an event from
    being sent twice and holds each rule to its cooldown. Rows are only ever appended."""
    if f"{KPI_SCHEMA}.kpi_alerts" in metadata.tables:
        return metadata.tables[f"{KPI_SCHEMA}.kpi_alerts"]
    return sa.Table(
        "kpi_alerts",
        metadata,
        sa.Column("kpi_id", sa.String, nullable=False),
        sa.Column("rule", sa.String, nullable=False, comment="e.g. status_change:month:off_track"),
        sa.Column("event_key", sa.String, nullable=False, comment="kpi/rule/period: one event"),
        sa.Column("grain", sa.String, nullable=False, comment="grain of the period"),
        sa.Column("period_start", sa.Date, nullable=False, comment="the period that fired"),
        sa.Column("period_end", sa.Date, nullable=False),
        sa.Column("status", sa.String, comment="the period's status against its target"),
        sa.Column("actual", sa.Double, comment="the KPI value of the period"),
        sa.Column("target", sa.Double, comment="the target of the period"),
        sa.Column("message", sa.String, nullable=False, comment="the plain-text alert"),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channels", sa.String, nullable=False, comment="channels the rule names"),
        sa.Column("slack", sa.String, comment="delivered, failed or skipped (not configured)"),
        sa.Column("slack_error", sa.String, comment="why it failed or was skipped; no secrets"),
        sa.Column("email", sa.String, comment="delivered, failed or skipped (not configured)"),
        sa.Column("email_error", sa.String, comment="why it failed or was skipped; no secrets"),
        sa.Column("delivered", sa.Boolean, nullable=False, comment="on at least one channel"),
        sa.Column(
            "suppressed_by_cooldown",
            sa.Boolean,
            nullable=False,
            comment="fired within the rule's cooldown of the last alert sent: not sent",
        ),
        sa.Column(
            "outcome",
            sa.String,
            nullable=False,
            comment="sent, failed (retried next run), no_channel or suppressed",
        ),
        sa.Column("run_id", sa.String, comment="Dagster run that evaluated the rules"),
        schema=KPI_SCHEMA,
        comment="History of KPI alerts: what fired, when, and what each channel did",
    )


# Temporary tables made again and again with the same name and columns.
_temporary_tables: dict[tuple, sa.Table] = {}
_TEMPORARY_TABLES_KEPT = 256


def temporary_table(name: str, columns: Iterable[tuple[str, sa.types.TypeEngine]]) -> sa.Table:
    """A ``TEMPORARY`` table of ``columns`` (name, type), the same object for the same name
    and columns: SQLAlchemy knows a table by its identity in its compiled cache, so a
    statement naming a new Table object each run is compiled again each run (the change
    records' scratch table: ~13 ms of compiling in every incremental refresh)."""
    columns = list(columns)
    key = (name, tuple((column, repr(type_)) for column, type_ in columns))
    table = _temporary_tables.get(key)
    if table is None:
        if len(_temporary_tables) >= _TEMPORARY_TABLES_KEPT:
            _temporary_tables.clear()
        table = sa.Table(
            name,
            sa.MetaData(),
            *[sa.Column(column, type_) for column, type_ in columns],
            prefixes=["TEMPORARY"],
        )
        _temporary_tables[key] = table
    return table
