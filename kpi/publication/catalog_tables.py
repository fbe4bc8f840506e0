"""What BI tools read beside the numbers: the KPI catalog, definition changes, the scorecard
view. Kept in the warehouse so every BI tool shows the same definitions and status."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from kpi.compute.tables import KpiTables
from kpi.language.catalog import Catalog
from kpi.language.expressions import safe_divide
from kpi.language.models import Kpi, KpiType
from kpi.publication.views import replace_reader_view
from kpi.warehouse.connection import Warehouse


def formula(kpi: Kpi) -> str:
    """A one-line, human-readable formula of a KPI."""

    def measure(m) -> str:
        text = f"{m.agg}({m.expr or '*'}) of {m.source}"
        return f"{text} where {m.filter}" if m.filter else text

    if kpi.type == KpiType.simple:
        return measure(kpi.measure)
    if kpi.type == KpiType.ratio:
        return f"{measure(kpi.numerator)} / {measure(kpi.denominator)}"
    if kpi.type == KpiType.derived:
        return kpi.expr
    if kpi.type == KpiType.cumulative:
        c = kpi.cumulative
        return f"{c.of}, {c.label}"
    pop = kpi.period_over_period
    return f"change of {pop.of} against {pop.label}"


def catalog_rows(catalog: Catalog) -> pd.DataFrame:
    rows = []
    for kpi in sorted(catalog.kpis.values(), key=lambda k: (k.area, k.id)):
        t, b = kpi.target, kpi.benchmark
        rows.append(
            {
                "kpi_id": kpi.id,
                "name": kpi.name,
                "description": kpi.description,
                "area": kpi.area,
                "owner": kpi.owner,
                "unit": str(kpi.unit),
                "currency": kpi.currency
                or (catalog.reporting.currency if kpi.unit == "currency" else None),
                "direction": str(kpi.direction),
                "format": kpi.format or None,
                "kpi_type": str(kpi.type),
                "formula": formula(kpi),
                "grains": ", ".join(kpi.grains),
                "dimensions": ", ".join(" x ".join(s) for s in kpi.slice_dimensions) or None,
                "goal": kpi.goal or None,
                "target": _describe(t.value, t.band, t.grain, t.example, t.deadline) if t else None,
                "benchmark": (_describe(b.value, b.band, b.grain, b.example) + f" ({b.source})")
                if b
                else None,
                "min_sample_size": kpi.min_sample_size,
                "at_risk_below": kpi.thresholds.at_risk_below,
                "off_track_below": kpi.thresholds.off_track_below,
                "tags": ", ".join(kpi.tags) or None,
                "version": kpi.version,
                "definition_version": catalog.versions[kpi.id],
            }
        )
    return pd.DataFrame(rows)


def _describe(value, band, grain, example: bool, deadline: dt.date | None = None) -> str:
    text = f"{band.min:g} .. {band.max:g}" if band else f"{value:g}"
    text += f" per {grain}"
    if deadline:
        text += f" by {deadline}"
    return text + (" (example)" if example else "")


def record_changes(
    wh: Warehouse, changes: sa.Table, catalog: Catalog, now: dt.datetime
) -> list[str]:
    """Record the current definition version of every KPI; return the KPIs whose version is
    new since the last run (their whole history was recomputed with the new definition).

    One transaction; a version is only inserted when no row holds it yet, checked by the
    INSERT itself (another run may have inserted it since this one read the table), and on
    PostgreSQL the primary key of (kpi_id, definition_version) turns a concurrent insert of
    the same version into nothing rather than an error."""
    c = changes
    with wh.transaction(lock=[changes]) as conn:
        known = {
            (r.kpi_id, r.definition_version)
            for r in conn.execute(sa.select(c.c.kpi_id, c.c.definition_version))
        }
        seen_before = {kpi_id for kpi_id, _ in known}
        changed = []
        still = [pair for pair in catalog.versions.items() if pair in known]
        if still:
            conn.execute(
                c.update()
                .where(sa.tuple_(c.c.kpi_id, c.c.definition_version).in_(still))
                .values(last_seen_at=now)
            )
        for kpi_id, version in catalog.versions.items():
            kpi = catalog.kpis[kpi_id]
            if (kpi_id, version) in known:
                continue
            if kpi_id in seen_before:
                changed.append(kpi_id)
            note = next((e.note for e in kpi.changelog if e.version == kpi.version), None)
            row = {
                "kpi_id": kpi_id,
                "definition_version": version,
                "version": kpi.version,
                "changelog": note,
                "first_seen_at": now,
                "last_seen_at": now,
            }
            conn.execute(_insert_missing(conn, c, row))
    return changed


def _insert_missing(conn: sa.Connection, changes: sa.Table, row: dict):
    """INSERT ``row`` into ``changes`` unless its (kpi_id, definition_version) is there."""
    c = changes
    present = (
        sa.select(sa.literal(1))
        .select_from(c)
        .where(c.c.kpi_id == row["kpi_id"], c.c.definition_version == row["definition_version"])
    )
    values = sa.select(
        *[sa.cast(sa.literal(value, c.c[name].type), c.c[name].type) for name, value in row.items()]
    ).where(~present.exists())
    if conn.dialect.name == "postgresql":
        # A version inserted by a concurrent run after our check: skip, don't fail. (DuckDB
        # has one writer per file, and refuses ON CONFLICT on a table without the key.)
        return postgresql.insert(c).from_select(list(row), values).on_conflict_do_nothing()
    return c.insert().from_select(list(row), values)


def scorecard_select(
    comparisons: sa.Table,
    dimensions: list[str],
    grain: str = "month",
    catalog_table: sa.Table | None = None,
    targets: sa.Table | None = None,
):
    """The latest complete period of each KPI at ``grain``, the total row, sorted by area.

    ``history_recomputed`` tells a reader that the previous period or last year it is
    compared with was restated under a definition that changed after those days; the goal
    columns project the KPI to its target's deadline as of the period's last day. With
    ``catalog_table`` and ``targets`` (the view does), what a BI tool needs to show a KPI
    without help: unit, currency, display format, the target band and the ranges of the
    actual that are on track and not off track (:func:`status_ranges`)."""
    c = comparisons
    total = [c.c[d].is_(None) for d in dimensions]
    latest = (
        sa.select(c.c.kpi_id, sa.func.max(c.c.period_start).label("period_start"))
        .where(c.c.grain == grain, c.c.is_complete_period, *total)
        .group_by(c.c.kpi_id)
        .subquery()
    )
    query = (
        sa.select(
            c.c.area,
            c.c.kpi_id,
            c.c.kpi_name,
            c.c.grain,
            c.c.period_start,
            c.c.period_end,
            c.c.actual,
            c.c.target,
            c.c.attainment,
            c.c.status,
            c.c.previous,
            c.c.change_rel,
            c.c.last_year,
            c.c.change_ly_rel,
            c.c.benchmark_value,
            c.c.benchmark_min,
            c.c.benchmark_max,
            c.c.benchmark_position,
            c.c.sample_size,
            c.c.definition_version,
            # Appended, never inserted: PostgreSQL's CREATE OR REPLACE VIEW only adds columns
            # at the end of an existing view.
            c.c.history_recomputed,
            c.c.definition_changed_at,
            c.c.goal_deadline,
            c.c.goal_target_value,
            c.c.goal_projected_value,
            c.c.goal_will_reach,
            c.c.variance_favourable,
        )
        .join(
            latest,
            sa.and_(latest.c.kpi_id == c.c.kpi_id, latest.c.period_start == c.c.period_start),
        )
        .where(c.c.grain == grain, *total)
        .order_by(c.c.area, c.c.kpi_id)
    )
    if catalog_table is None or targets is None:
        return query
    k, t = catalog_table, targets
    band_min, band_max = t.c.band_min_full, t.c.band_max_full
    query = (
        query.outerjoin(k, k.c.kpi_id == c.c.kpi_id)
        .outerjoin(
            t,
            sa.and_(
                t.c.kpi_id == c.c.kpi_id,
                t.c.grain == c.c.grain,
                t.c.period_start == c.c.period_start,
            ),
        )
        .add_columns(
            k.c.unit,
            k.c.currency,
            k.c.format.label("display_format"),
            band_min.label("target_band_min"),
            band_max.label("target_band_max"),
            *status_ranges(c, k, band_min, band_max),
            c.c.direction,
        )
    )
    return query


def status_ranges(c, k, band_min, band_max) -> list:
    """``on_track_min/max`` and ``at_risk_min/max``: the actual values whose status is on
    track, and at risk or better, for the period's target (a NULL bound is open). They
    restate the status rule (kpi.status.judgement) in the KPI's own unit:

    - higher is better: on track from target x at_risk_below, at risk from target x
      off_track_below;
    - lower is better: on track up to target / at_risk_below, at risk up to target /
      off_track_below;
    - within a band: on track from band_min x at_risk_below to band_max / at_risk_below,
      at risk from band_min x off_track_below to band_max / off_track_below.

    NULL for growth KPIs (their status judges the levels the growth reaches, not the rate)
    and where there is no target."""
    growth = k.c.kpi_type == "period_over_period"
    higher, lower = c.c.direction == "higher_is_better", c.c.direction == "lower_is_better"
    band = c.c.direction == "within_band"
    none = sa.cast(sa.null(), sa.Double)

    def bound(threshold, low: bool):
        if low:
            whens = [(higher, c.c.target * threshold), (band, band_min * threshold)]
        else:
            whens = [
                (lower, safe_divide(c.c.target, threshold)),
                (band, safe_divide(band_max, threshold)),
            ]
        return sa.case((growth, none), *whens, else_=none)

    return [
        bound(k.c.at_risk_below, True).label("on_track_min"),
        bound(k.c.at_risk_below, False).label("on_track_max"),
        bound(k.c.off_track_below, True).label("at_risk_min"),
        bound(k.c.off_track_below, False).label("at_risk_max"),
    ]


def create_scorecard_view(wh: Warehouse, tables: KpiTables) -> str:
    """(Re)create ``kpi.kpi_scorecard`` over the comparisons where its SQL changed
    (kpi.publication.views); return its qualified name."""
    comparisons = tables.comparisons
    query = scorecard_select(
        comparisons, tables.catalog.dimensions, "month", tables.catalog_table, tables.targets
    )
    comments = scorecard_comments(query, comparisons, tables.catalog_table)
    # The lock also keeps two runs from replacing the view at once, which fails on
    # PostgreSQL ("tuple concurrently updated").
    made = replace_reader_view(
        wh, tables, comparisons.schema, "kpi_scorecard", lambda: query, comments
    )
    assert made is not None  # the scorecard reads only the KPI tables, always there
    return made


SCORECARD_COMMENTS = {
    None: "The latest complete month of each KPI (total row), sorted by area: what a manager "
    "reads. One row per KPI; every column is described, the status rule in on_track_min.."
    "at_risk_max",
    "display_format": "the KPI's display format, spreadsheet style: '#,##0', '0.0%', "
    "'€#,##0.00', '0.00x' (kpi_definitions `format:`); NULL: by unit",
    "target_band_min": "lower edge of the target band for the month (within_band KPIs)",
    "target_band_max": "upper edge of the target band for the month (within_band KPIs)",
    "on_track_min": "the status is on_track when the actual is at least this (NULL: no lower "
    "bound); from the target and the KPI's at_risk_below threshold",
    "on_track_max": "the status is on_track when the actual is at most this (NULL: no upper "
    "bound; lower-is-better and band KPIs have one)",
    "at_risk_min": "below this the status is off_track (NULL: no lower bound); between it and "
    "on_track_min, at_risk",
    "at_risk_max": "above this the status is off_track (NULL: no upper bound)",
}


def scorecard_comments(
    query: sa.Select, comparisons: sa.Table, catalog_table: sa.Table | None
) -> dict[str | None, str | None]:
    """A comment for the view and each of its columns: the column's own where it comes
    straight from ``kpi_comparisons`` or ``kpi_catalog``, else :data:`SCORECARD_COMMENTS`."""
    own = {c.name: c.comment for c in comparisons.columns}
    if catalog_table is not None:
        own |= {c: catalog_table.c[c].comment for c in ("unit", "currency")}
    wanted: dict[str | None, str | None] = {None: SCORECARD_COMMENTS[None]}
    for column in query.selected_columns:
        wanted[column.name] = SCORECARD_COMMENTS.get(column.name) or own.get(column.name)
    return wanted
