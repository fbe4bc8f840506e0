"""What the report says about each KPI: better or worse, the gap to the target, whether
there is history to compare with, and which KPIs moved most.

Every verdict follows the KPI's direction (a falling cost per click is better) and never
reads a period without loaded data as a 0.
"""

from __future__ import annotations

import math

import pandas as pd

from kpi.compute.periods import add_months
from kpi.language.models import Direction
from kpi.publication.formatting import NO_DATA, number
from kpi.publication.report.data import KpiMeta, ReportData
from kpi.status.target_gap import attainment_text, favourable_gap

TOP_MOVERS = 5
# A smaller move is noise for a monthly KPI, not news: it is left out of the top movers.
MIN_MOVE = 0.01


def _distance(value: float, band: tuple[float, float]) -> float:
    lo, hi = band
    return lo - value if value < lo else (value - hi if value > hi else 0.0)


def judge_change(
    direction: Direction | str,
    actual: float | None,
    before: float | None,
    band: tuple[float, float] | None = None,
) -> str | None:
    """Better, worse or steady: the verdict on a move from ``before`` to ``actual``.

    Direction-aware: a falling cost per click is better. A within-band KPI is better when it
    gets closer to its band and steady while it stays inside; without a band there is no
    judgement (None). A move that rounds to 0.0% is steady, so noise is not called a trend.
    """
    actual, before = number(actual), number(before)
    if actual is None or before is None:
        return None
    if before != 0 and abs((actual - before) / before) < 0.0005:
        return "steady"
    direction = Direction(direction)
    if direction == Direction.within_band:
        if band is None or None in band:
            return None
        now, then = _distance(actual, band), _distance(before, band)
        if math.isclose(now, then):
            return "steady"
        return "better" if now < then else "worse"
    if actual == before:
        return "steady"
    up = actual > before
    return "better" if up == (direction == Direction.higher_is_better) else "worse"


def judge_benchmark(direction: Direction | str, position: str | None) -> str | None:
    """Whether the benchmark position is good news, for the KPI's direction."""
    if position is None or (isinstance(position, float) and math.isnan(position)):
        return None
    direction = Direction(direction)
    if position in ("within", "at"):
        return "steady"
    if direction == Direction.within_band:
        return None
    good = "above" if direction == Direction.higher_is_better else "below"
    return "better" if position == good else "worse"


def actual_text(data: ReportData, meta: KpiMeta, row) -> str:
    """The value of a scorecard row, or "no data" for a period none of whose days loaded."""
    if not data.has_data(meta.kpi_id, row.period_start, row.period_end):
        return NO_DATA
    return meta.show(row.actual)


def gap(data: ReportData, meta: KpiMeta, row) -> float | None:
    """The row's gap to its target, positive = better (``variance_favourable``)."""
    band = data.band(row.kpi_id, row.period_start)
    stored = getattr(row, "variance_favourable", None)
    return favourable_gap(meta.direction, row.actual, row.target, band, stored)


def attainment(data: ReportData, meta: KpiMeta, row) -> str:
    """Attainment as printed: a percentage for a level, points for a rate of change."""
    return attainment_text(meta.is_growth, row.attainment, gap(data, meta, row))


def change(meta: KpiMeta, row, before, change_rel):
    """The change shown against ``before``: relative, but for a growth KPI the difference in
    points (33.4% after 4.9% is +28.4 pp, not +576%: a relative change of a rate misleads)."""
    if not meta.is_growth:
        return change_rel
    actual, before = number(row.actual), number(before)
    return None if actual is None or before is None else actual - before


def no_history(data: ReportData, row, before, months_back: int) -> bool:
    """Whether a monthly row has nothing to compare with ``months_back`` months earlier:
    the value is NULL, or that month starts before the KPI's first day of data."""
    start = add_months(row.period_start, -months_back)
    return number(before) is None or data.before_data(row.kpi_id, start)


def in_band(meta: KpiMeta, actual: float | None, band: tuple[float, float] | None) -> bool:
    """A within-band KPI inside its band: a move there is neither better nor worse."""
    return (
        meta.direction == Direction.within_band
        and band is not None
        and actual is not None
        and band[0] <= actual <= band[1]
    )


def top_movers(
    data: ReportData, limit: int = TOP_MOVERS, min_move: float = MIN_MOVE
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The KPIs that moved most against the previous complete month: (better, worse).

    Relative change of each KPI's latest complete month, at least ``min_move``; "better"
    and "worse" follow the KPI's direction. Period-over-period KPIs are left out: they are
    already a change, and the change of a growth rate is not a comparable percentage.
    """
    rows = []
    for r in data.scorecard.itertuples(index=False):
        meta = data.meta(r.kpi_id, r.kpi_name, r.area)
        move, previous = number(r.change_rel), number(r.previous)
        if move is None or not previous or meta.is_growth:
            continue
        # A month before the data started (or partly so) is no history: a move from it is a
        # jump that never happened. Nor is a month without loaded data a move.
        if no_history(data, r, previous, 1) or not data.has_data(
            r.kpi_id, r.period_start, r.period_end
        ):
            continue
        if abs(move) < min_move:
            continue
        verdict = judge_change(
            meta.direction, r.actual, previous, data.band(r.kpi_id, r.period_start)
        )
        if verdict not in ("better", "worse"):
            continue
        rows.append(
            {
                "kpi_id": r.kpi_id,
                "name": meta.name,
                "area": meta.area,
                "period_start": r.period_start,
                "previous": previous,
                "actual": number(r.actual),
                "change_rel": move,
                "verdict": verdict,
            }
        )
    frame = pd.DataFrame(
        rows,
        columns=[
            "kpi_id",
            "name",
            "area",
            "period_start",
            "previous",
            "actual",
            "change_rel",
            "verdict",
        ],
    )
    # Rounded, so KPIs that moved by the same amount (up to float noise) rank by id everywhere.
    frame["size"] = frame["change_rel"].abs().round(9)
    frame = frame.sort_values(["size", "kpi_id"], ascending=[False, True])
    better = frame[frame["verdict"] == "better"].head(limit).drop(columns="size")
    worse = frame[frame["verdict"] == "worse"].head(limit).drop(columns="size")
    return better.reset_index(drop=True), worse.reset_index(drop=True)


def stored_versions(data: ReportData) -> dict[str, list[str]]:
    """The definition versions each KPI's numbers in the window were computed with."""
    if data.trends.empty:
        return {}
    grouped = data.trends.groupby("kpi_id")["definition_version"]
    return grouped.agg(lambda s: sorted(set(s))).to_dict()


def stale_definitions(data: ReportData) -> dict[str, list[str]]:
    """KPIs whose numbers were computed with another definition version than the current
    one (the definitions changed after the last run): kpi id -> versions in the warehouse."""
    return {
        kpi_id: versions
        for kpi_id, versions in stored_versions(data).items()
        if kpi_id in data.kpis and versions != [data.kpis[kpi_id].definition_version]
    }
