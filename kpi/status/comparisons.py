"""Compare each KPI value with its target and the previous period: ``kpi_comparisons``.

The comparison is a SQL query over ``kpi_values`` joined to ``kpi_targets`` (phased by
``kpi.status.targets``), so it runs in the warehouse beside the values it reads. Each row's
attainment and status are judged by ``kpi.status.judgement``. A growth KPI (period over
period) has its gap in growth points instead, and its status judges the levels the growths
reach (kpi.status.variance). ``variance_favourable`` is the gap to the target signed so that
positive is better. History before the data is NULL, and a to-date KPI compares with the
same span a period or a year earlier (kpi.compute.history). An open period is held against
the target for the days elapsed, not the whole period.

Goal pace: every total row whose last day falls in a goal's span (``kpi.status.targets``)
projects the KPI to the deadline as of that day: for an additive KPI, what it accumulated
since the goal's start divided by the share of the goal planned by that day, so a KPI
exactly on plan projects exactly to its goal; a level KPI (a rate) keeps its current value.

History marker: the previous period and the same period last year are read from the
``kpi_values`` rows of those periods when the comparison covers them whole, so the version
of the history compared with is the one those rows carry. ``history_recomputed`` says the
compared history was restated: computed under the current definition, which appeared in
``kpi_changes`` only after the compared days had ended.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from kpi.compute.compared_windows import ComparedWindows
from kpi.compute.compiler import KpiCompiler
from kpi.compute.history import HistoryLookup
from kpi.compute.periods import Calendar
from kpi.compute.source_sql import local_date
from kpi.compute.windows import CURRENT, LAST_YEAR, PREVIOUS
from kpi.language.expressions import safe_divide
from kpi.language.facts import scales_with_days
from kpi.language.models import Direction, Grain, Kpi, KpiType
from kpi.status.judgement import attainment_expr, benchmark_position, status_expr
from kpi.status.targets import SEASONAL
from kpi.status.variance import as_levels, is_growth, variance_favourable_expr
from kpi.warehouse.statements import run_parameter


def comparison_select(
    compiler: KpiCompiler,
    kpi: Kpi,
    grain: str,
    slices: Sequence[tuple[str, ...]],
    values: sa.Table,
    targets: sa.Table,
    computed_at: dt.datetime,
    changes: sa.Table | None = None,
    since: dt.date | None = None,
    compared: ComparedWindows | None = None,
) -> sa.Select:
    """One KPI and grain of ``kpi_comparisons``, the rows of each of its ``slices`` (the
    total ``()``, dimension tuples): the value against its target, benchmark, previous
    period and same period last year, with status, pace, goal pace and the definition
    version of the history compared with (``changes`` is ``kpi_changes``). With ``since``,
    only the periods ending on or after it (kpi.compute.changes). ``compared``: the run's
    compared windows, already written (kpi.compute.compared_windows); without it, an open
    period's compared windows are evaluated in the statement.

    On DuckDB the slices of a KPI and grain are one statement, not one each: there a
    statement's cost is mostly planning it, and the slices share its joins of targets,
    periods, stored history and definition changes (``kpi.refresh`` gives PostgreSQL one
    slice per statement: it misjudges their filter together)."""
    catalog = compiler.catalog
    # The first period to write and the run's timestamp are bind parameters given by each
    # run: the rest of the statement is the same every day (kpi.warehouse.statements).
    since = None if since is None else run_parameter("since", since, sa.Date())
    stamp = run_parameter("computed_at", computed_at, sa.TIMESTAMP(timezone=True))
    v = values.alias("v")
    t = targets.alias("t")
    p = compiler.periods.alias("p")
    slices = list(slices)

    def rows_of(dims: tuple[str, ...]) -> ColumnElement:
        return sa.and_(
            sa.true(),
            *[v.c[d].is_not(None) if d in dims else v.c[d].is_(None) for d in catalog.dimensions],
        )

    slice_filter = rows_of(slices[0]) if len(slices) == 1 else sa.or_(*map(rows_of, slices))
    # Only the total row carries a target; slices are compared with earlier periods.
    total = sa.literal(slices == [()]) if len(slices) == 1 else rows_of(())
    target_on = [
        t.c.kpi_id == v.c.kpi_id,
        t.c.grain == v.c.grain,
        t.c.period_start == v.c.period_start,
        total if () in slices else sa.false(),
    ]
    period_on = [p.c.grain == v.c.grain, p.c.period_start == v.c.period_start]
    joins: list[tuple[sa.FromClause, ColumnElement]] = []

    actual = v.c.value
    target = sa.case((v.c.is_complete_period, t.c.target), else_=t.c.target_to_date)
    # Previous period and last year: NULL before the data, the same span for to-date KPIs,
    # stored growths for growth KPIs (kpi.compute.history).
    lookup = HistoryLookup(compiler, kpi, grain, slices, values, v, p, joins, compared)
    # History evaluated here (an open period's like-for-like window) is needed for the
    # rows written only.
    with compiler.periods_since(since):
        prev = lookup.compared(PREVIOUS, "prev")
        ly = lookup.compared(LAST_YEAR, "ly")
    changed_at = _definition_changed_at(kpi, v, changes, joins)
    # A growth KPI's status (and pace) judges the levels its growth reaches
    # (kpi.status.variance), and not a growth over a period that starts before the data.
    judged = lookup.judged(actual)
    # Pace: an additive KPI is projected to the end of the open period at its daily rate
    # so far (with seasonal phasing: along last year's shape of the period, which is what
    # target / target to date is); a rate is its own projection. A closed period is its own
    # projection.
    no_value = sa.cast(sa.null(), sa.Double)
    if scales_with_days(kpi):
        shape_ratio = sa.case(
            (
                t.c.phasing == SEASONAL,
                sa.func.coalesce(
                    safe_divide(t.c.target, t.c.target_to_date),
                    safe_divide(t.c.band_max_full, t.c.band_max),
                ),
            ),
            else_=no_value,
        )
        projected = sa.case(
            (v.c.is_complete_period, actual),
            (shape_ratio.is_not(None), actual * shape_ratio),
            else_=actual * sa.cast(p.c.days_in_period, sa.Double) / p.c.elapsed_days,
        )
    else:
        projected = judged
    with compiler.periods_since(since):
        goal_actual, goal_projected = _goal_projection(compiler, kpi, grain, slices, v, t, joins)

    joined = v.join(p, sa.and_(*period_on))
    for other, on in joins:
        joined = joined.outerjoin(other, on)
    # Two levels: the inner query reads each input once (from the joined tables), the
    # outer one judges them. Written as one, every use of the target or of the previous
    # value repeated its whole expression: on DuckDB a statement's cost is mostly parsing,
    # binding and optimising it, and the repeats were 15% of the statements' text.
    found = (
        sa.select(
            v.c.kpi_id,
            v.c.grain,
            v.c.period_start,
            v.c.period_end,
            v.c.is_complete_period,
            *[v.c[d] for d in catalog.dimensions],
            actual.label("actual"),
            judged.label("judged"),
            target.label("target"),
            t.c.target.label("target_full_period"),
            t.c.band_min,
            t.c.band_max,
            t.c.band_min_full,
            t.c.band_max_full,
            prev.value.label("previous"),
            prev.version.label("previous_version"),
            prev.end.label("previous_end"),
            ly.value.label("last_year"),
            ly.version.label("last_year_version"),
            ly.end.label("last_year_end"),
            t.c.benchmark_value,
            t.c.benchmark_min,
            t.c.benchmark_max,
            t.c.benchmark_source,
            projected.label("projected"),
            v.c.sample_size,
            v.c.definition_version,
            t.c.phasing,
            t.c.goal_start,
            t.c.goal_deadline,
            t.c.goal_target,
            t.c.goal_band_min,
            t.c.goal_band_max,
            t.c.goal_projection,
            goal_actual.label("goal_actual"),
            goal_projected.label("goal_projected"),
            changed_at.label("changed_at"),
            local_date(changed_at, sa.literal(catalog.reporting.time_zone, sa.String)).label(
                "changed_on"
            ),
        )
        .select_from(joined.outerjoin(t, sa.and_(*target_on)))
        .where(v.c.kpi_id == kpi.id, v.c.grain == grain, slice_filter)
        .where(*KpiCompiler.recent_periods(v, since))
        .subquery("found")
    )
    return _judged_select(kpi, catalog.dimensions, found.c, stamp, changes is not None)


def _judged_select(kpi: Kpi, dimensions: list[str], f, stamp, has_changes: bool) -> sa.Select:
    """The columns of ``kpi_comparisons`` from the inputs ``f`` read (``comparison_select``)."""
    actual, target = f.actual, f.target
    band = (f.band_min, f.band_max)
    favourable = variance_favourable_expr(kpi.direction, f.judged, target, *band)
    # A growth KPI's attainment is its gap in growth points (kpi.status.variance).
    attainment = (
        favourable if is_growth(kpi) else attainment_expr(kpi.direction, actual, target, *band)
    )
    status_actual, status_target, *status_band = as_levels(kpi, f.judged, target, *band)
    status_attainment = attainment_expr(kpi.direction, status_actual, status_target, *status_band)
    has_target = (
        sa.and_(f.band_min.is_not(None), f.band_max.is_not(None))
        if kpi.direction == Direction.within_band
        else target.is_not(None)
    )
    full_band = (f.band_min, f.band_max)
    if kpi.direction == Direction.within_band:
        full_band = (f.band_min_full, f.band_max_full)
    projected_attainment = attainment_expr(
        kpi.direction, *as_levels(kpi, f.projected, f.target_full_period, *full_band)
    )
    status = status_expr(kpi, status_actual, status_attainment, f.sample_size, has_target)
    on_pace = sa.case(
        (projected_attainment.is_(None), sa.null()),
        else_=projected_attainment >= kpi.thresholds.at_risk_below,
    )
    goal_will_reach = _reaches(
        kpi, f.goal_projected, f.goal_target, f.goal_band_min, f.goal_band_max
    )
    prev_value, ly_value = f.previous, f.last_year
    compared = ((f.previous_version, f.previous_end), (f.last_year_version, f.last_year_end))
    recomputed = (
        _recomputed(f.definition_version, f.changed_on, *compared)
        if has_changes
        else sa.cast(sa.null(), sa.Boolean)
    )
    return sa.select(
        f.kpi_id,
        sa.literal(kpi.name).label("kpi_name"),
        sa.literal(kpi.area).label("area"),
        sa.literal(str(kpi.direction)).label("direction"),
        f.grain,
        f.period_start,
        f.period_end,
        f.is_complete_period,
        *[f[d] for d in dimensions],
        actual.label("actual"),
        target.label("target"),
        f.target_full_period,
        attainment.label("attainment"),
        (actual - target).label("variance"),
        favourable.label("variance_favourable"),
        prev_value.label("previous"),
        (actual - prev_value).label("change_abs"),
        safe_divide(actual - prev_value, prev_value).label("change_rel"),
        ly_value.label("last_year"),
        (actual - ly_value).label("change_ly_abs"),
        safe_divide(actual - ly_value, ly_value).label("change_ly_rel"),
        f.benchmark_value,
        f.benchmark_min,
        f.benchmark_max,
        f.benchmark_source,
        benchmark_position(actual, f.benchmark_value, f.benchmark_min, f.benchmark_max).label(
            "benchmark_position"
        ),
        f.projected,
        on_pace.label("on_pace"),
        f.sample_size,
        status.label("status"),
        f.definition_version,
        stamp.label("computed_at"),
        f.phasing,
        f.goal_start,
        f.goal_deadline,
        f.goal_target.label("goal_target_value"),
        f.goal_actual.label("goal_actual_to_date"),
        f.goal_projected.label("goal_projected_value"),
        f.goal_projection,
        goal_will_reach.label("goal_will_reach"),
        f.previous_version.label("previous_definition_version"),
        f.last_year_version.label("last_year_definition_version"),
        f.changed_at.label("definition_changed_at"),
        recomputed.label("history_recomputed"),
    )


def _reaches(kpi: Kpi, projected, target, band_min, band_max) -> ColumnElement:
    """Will ``projected`` meet the goal: the same rule as ``on_pace`` (attainment at least the
    KPI's at_risk_below, 1.0 by default), so lower_is_better means projected <= target.
    A growth KPI is judged by the levels its growth reaches (kpi.status.variance)."""
    projected, target, band_min, band_max = as_levels(kpi, projected, target, band_min, band_max)
    attainment = attainment_expr(kpi.direction, projected, target, band_min, band_max)
    whens = [(projected.is_(None), sa.null())]
    if kpi.direction == Direction.lower_is_better:
        # Zero beats any target, as in status_expr: attainment is infinite, not unknown.
        whens.append((sa.and_(projected == 0, target.is_not(None)), sa.true()))
    whens.append((attainment.is_(None), sa.null()))
    return sa.case(*whens, else_=attainment >= kpi.thresholds.at_risk_below)


def _goal_projection(
    compiler: KpiCompiler,
    kpi: Kpi,
    grain: str,
    slices: list[tuple[str, ...]],
    v: sa.FromClause,
    t: sa.FromClause,
    joins: list,
) -> tuple[ColumnElement, ColumnElement]:
    """(actual since the goal's start, projected value at the deadline) of each row.

    The goal runs from the start of the (fiscal) year that holds the deadline, so what an
    additive KPI accumulated by a row's last day is its year-to-date value there; the
    projection divides it by the share of the goal planned by that day
    (``goal_elapsed_share`` in kpi_targets: the target phased from the goal's start, over
    the whole goal), so a KPI exactly on plan projects exactly to its goal. Nothing planned
    yet (a share of 0) leaves no pace to project: NULL. A level KPI's projection is its
    current value. Rows outside the goal's span have no ``goal_*`` values in kpi_targets,
    hence none here, and neither have slices' rows: only the total carries a target.
    """
    t_ = kpi.target
    none = sa.cast(sa.null(), sa.Double)
    if t_ is None or t_.deadline is None or () not in slices or kpi.type == KpiType.cumulative:
        return none, none
    if not scales_with_days(kpi):
        return none, sa.case((t.c.goal_deadline.is_not(None), v.c.value), else_=none)
    window = CURRENT.running("year_to_date")
    evaluated = compiler.evaluate(kpi, Grain(grain), (), window, None).query
    # Only the periods that can end within the goal (window_end from goal_start through the
    # deadline: they start at most at the deadline and end at least at goal_start), not all
    # history: the warehouse pushes this filter on the grouping key into the evaluation.
    calendar = Calendar(compiler.catalog.reporting)
    goal_start = calendar.start_of(t_.deadline, Grain.year)
    ytd = (
        sa.select(evaluated)
        .where(
            evaluated.c.period_start >= calendar.start_of(goal_start, grain),
            evaluated.c.period_start <= t_.deadline,
        )
        .subquery("goal_ytd")
    )
    joins.append((ytd, ytd.c.period_start == v.c.period_start))
    accumulated = sa.case(
        (t.c.goal_elapsed_share.is_not(None), sa.cast(ytd.c.value, sa.Double)), else_=none
    )
    return accumulated, safe_divide(accumulated, t.c.goal_elapsed_share)


def _definition_changed_at(
    kpi: Kpi, v: sa.FromClause, changes: sa.Table | None, joins: list
) -> ColumnElement:
    """When the row's definition took over from an earlier one (``definition_changed_at``).

    It comes from ``kpi_changes``: when the row's version first appeared, if the KPI had
    another version before (after a return to an older version: the last run of the one it
    replaced, the closest the table can tell). NULL for a KPI that never changed.
    """
    if changes is None:
        return sa.cast(sa.null(), sa.TIMESTAMP(timezone=True))
    current, other = changes.alias("chg_current"), changes.alias("chg_other")
    other_last_seen = sa.func.max(other.c.last_seen_at)
    first_seen = sa.func.min(current.c.first_seen_at)
    took_over = (
        sa.select(
            current.c.kpi_id,
            current.c.definition_version,
            sa.case(
                (other_last_seen > first_seen, other_last_seen),
                else_=first_seen,
            ).label("changed_at"),
        )
        .select_from(
            current.join(
                other,
                sa.and_(
                    other.c.kpi_id == current.c.kpi_id,
                    other.c.definition_version != current.c.definition_version,
                ),
            )
        )
        .where(current.c.kpi_id == kpi.id)
        # One row per version even when kpi_changes holds it twice (tables created before
        # its primary key, written by two runs at once): the earliest first sighting.
        .group_by(current.c.kpi_id, current.c.definition_version)
        .subquery("definition_change")
    )
    joins.append(
        (
            took_over,
            sa.and_(
                took_over.c.kpi_id == v.c.kpi_id,
                took_over.c.definition_version == v.c.definition_version,
            ),
        )
    )
    return took_over.c.changed_at


def _recomputed(
    version: ColumnElement,
    changed_on: ColumnElement,
    *compared: tuple[ColumnElement, ColumnElement],
) -> ColumnElement:
    """Whether the history a row is compared with was restated (``history_recomputed``).

    The compared history (``compared``: its version and the last day of its window) was
    recomputed when it carries the row's ``version`` although its last day ended before
    the definition changed (``changed_on``, the day of ``definition_changed_at`` in the
    reporting time zone). History kept with an older version is not recomputed, and says
    so by its own version. NULL when nothing is compared.
    """
    restated = [sa.and_(v == version, end < changed_on) for v, end in compared]
    nothing_compared = sa.and_(*[v.is_(None) for v, _ in compared])
    return sa.case(
        (nothing_compared, sa.cast(sa.null(), sa.Boolean)),
        (sa.or_(*restated), sa.true()),
        else_=sa.false(),
    )
