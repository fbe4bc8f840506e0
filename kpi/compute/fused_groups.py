"""Which fused KPIs share one join of periods x slice values x rollups
(kpi.compute.rollups), and how far back an incremental run's join of them reaches.

KPIs that read the same sources and slice by the same dimensions are projections of one
join; running totals are apart where their rows or their join's first period differ.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy.sql.elements import ColumnElement

from kpi.compute.windows import shift_date
from kpi.language.catalog import Catalog
from kpi.language.models import Kpi, KpiType

Slice = tuple[str, ...]  # a slice's dimensions, sorted: ("campaign", "channel")
# (sources, slices, running): running is False, True (a dense slice's running totals) or
# the window of a sparse slice's running totals.
GroupKey = tuple[tuple[str, ...], tuple[Slice, ...], bool | str]


def slice_key(dims: tuple[str, ...]) -> Slice:
    """A declared slice as the rollups key it: its dimensions in one order."""
    return tuple(sorted(dims))


def is_growth(kpi: Kpi) -> bool:
    """A growth among fused KPIs: one by day over a fixed shift (values_select refuses
    KPIs that are not fusable, kpi.compute.fusion.daily_shifted_growth)."""
    return kpi.type == KpiType.period_over_period


def is_running(kpi: Kpi) -> bool:
    """A running total among fused KPIs (values_select refuses KPIs that are not fusable,
    kpi.compute.fusion.running_total)."""
    return kpi.type == KpiType.cumulative


def join_groups(
    catalog: Catalog, kpi_ids: list[str], sources_of: Callable[[Kpi], list[str]]
) -> dict[GroupKey, list[Kpi]]:
    """The fused KPIs ``kpi_ids`` by the join they are projections of, in order."""
    groups: dict[GroupKey, list[Kpi]] = {}
    for kpi_id in kpi_ids:
        kpi = catalog.kpis[kpi_id]
        slices = tuple(sorted({slice_key(d) for d in kpi.slice_dimensions}))
        # Running totals apart: their join reaches back to their windows' starts; a sparse
        # slice's apart per window too: their rows differ (kpi.compute.sparse_running).
        running = is_running(kpi) and (
            not any(catalog.is_sparse(d) for d in slices) or kpi.cumulative.running_kind
        )
        groups.setdefault((tuple(sorted(sources_of(kpi))), slices, running), []).append(kpi)
    _share_running_joins(groups)
    return groups


def _share_running_joins(groups: dict[GroupKey, list[Kpi]]) -> None:
    """Move each dense slice's running totals into the group of the other KPIs of their
    sources and slices (``join_groups``' keys), when those KPIs are of no grain the
    running totals lack: one join of the periods, slice values and rollups instead of two
    (~15 ms a join of 100,000 rows on DuckDB). An incremental run's join then starts at the
    first period the running windows need (``first_start_needed``), which a grain they lack
    can start before (a quarter beside a month to date): such groups stay apart."""
    for key in [k for k in groups if k[2] is True]:
        others = groups.get((*key[:2], False))
        grains = {str(g) for k in groups[key] for g in k.grains}
        if others and all(str(g) in grains for k in others for g in k.grains):
            others += groups.pop(key)


def join_reach(
    since: dt.date | ColumnElement | None, shifts: list[tuple[int, int]]
) -> dt.date | ColumnElement | None:
    """The first period end the join of a group must hold for its rows ending on or after
    ``since``: back by the longest of its growths' shifts (a month counted as 31 days, so
    the join holds a day or three more than read)."""
    if since is None or not shifts:
        return since
    back = max(days + 31 * months for days, months in shifts)
    if isinstance(since, dt.date):
        return since - dt.timedelta(days=back)
    return shift_date(since, -back, 0)
