"""What the report reads from the warehouse: the scorecard (one row per KPI), the monthly
total rows of the chart window with their target bands, and the days the data covers.

The warehouse does the filtering; the report reads these small result sets only.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field

import pandas as pd
import sqlalchemy as sa

from kpi.compute.coverage import Coverage, kpi_coverage, source_coverage
from kpi.compute.periods import add_months
from kpi.compute.tables import KpiTables
from kpi.language.models import Direction, KpiType, Unit
from kpi.publication.catalog_tables import scorecard_select
from kpi.publication.formatting import compact_value, number, value_range
from kpi.publication.queries import totals_with_targets
from kpi.warehouse.connection import Warehouse

TREND_MONTHS = 13


def warehouse_as_of(wh: Warehouse, tables: KpiTables) -> dt.date | None:
    """The last day the KPI tables were computed through (None before the first run)."""
    value = wh.scalar(sa.select(sa.func.max(tables.periods.c.window_end)))
    if isinstance(value, dt.datetime):
        return value.date()
    return value


@dataclass(frozen=True)
class KpiMeta:
    """What the report needs to know about a KPI to show its numbers."""

    kpi_id: str
    name: str
    area: str
    unit: Unit
    currency: str
    direction: Direction
    kpi_type: str
    description: str
    owner: str
    version: str | None
    definition_version: str | None
    target_example: bool
    benchmark_example: bool
    benchmark_source: str | None
    goal: str | None = None
    display_format: str | None = None  # the KPI's `format:` (kpi.language.display_format)

    @property
    def is_growth(self) -> bool:
        """A rate of change (period over period): its changes and gaps are in points."""
        return self.kpi_type == str(KpiType.period_over_period)

    def show(self, value) -> str:
        """A value of this KPI as the report prints it."""
        return compact_value(value, self.unit, self.currency, self.display_format)

    def show_range(self, low, high) -> str:
        """A band of this KPI (``30\u201345%``)."""
        return value_range(low, high, self.unit, self.currency, self.display_format)


@dataclass
class ReportData:
    """Everything the page shows, read from the warehouse in a few small queries."""

    as_of: dt.date
    months: list[dt.date]
    scorecard: pd.DataFrame
    trends: pd.DataFrame
    kpis: dict[str, KpiMeta]
    dialect: str
    # The days the loaded data covers, per KPI and per source (kpi.compute.coverage). A KPI that is
    # not in ``coverage`` is unknown, and its values are shown as stored.
    coverage: dict[str, Coverage] = field(default_factory=dict)
    sources: dict[str, Coverage] = field(default_factory=dict)

    def has_data(self, kpi_id: str, start: dt.date, end: dt.date) -> bool:
        """Whether the KPI's sources loaded any day of ``start`` .. ``end`` (to the as-of
        date). A period without is missing, not 0: its sums are 0 only for want of rows."""
        known = self.coverage.get(kpi_id)
        return known is None or known.overlaps(start, min(end, self.as_of))

    def before_data(self, kpi_id: str, start: dt.date) -> bool:
        """Whether a period starting on ``start`` begins before the KPI's first day of data:
        there is no history to compare with (kpi_comparisons leaves it NULL)."""
        known = self.coverage.get(kpi_id)
        return known is not None and known.starts_after(start)

    def data_through(self) -> dt.date:
        """The last day with loaded data of any source (at most the as-of date)."""
        lasts = [c.last for c in self.sources.values() if not c.empty]
        return min(max(lasts), self.as_of) if lasts else self.as_of

    def lagging_sources(self) -> dict[str, dt.date | None]:
        """Sources whose data ends before ``data_through``: name -> last day (None: empty)."""
        through = self.data_through()
        return {
            name: None if c.empty else c.last
            for name, c in sorted(self.sources.items())
            if c.empty or c.last < through
        }

    def meta(self, kpi_id: str, name: str | None = None, area: str | None = None) -> KpiMeta:
        """The KPI's metadata; a KPI dropped from the definitions keeps a neutral fallback."""
        if kpi_id in self.kpis:
            return self.kpis[kpi_id]
        return KpiMeta(
            kpi_id=kpi_id,
            name=name or kpi_id,
            area=area or "other",
            unit=Unit.ratio,
            currency="",
            direction=Direction.higher_is_better,
            kpi_type="",
            description="No longer in the definitions.",
            owner="",
            version=None,
            definition_version=None,
            target_example=False,
            benchmark_example=False,
            benchmark_source=None,
        )

    def series(self, kpi_id: str) -> pd.DataFrame:
        """The KPI's monthly rows in the chart window, oldest first."""
        found = self._series.get(kpi_id)
        return found if found is not None else self.trends.iloc[0:0]

    def band(self, kpi_id: str, period: dt.date) -> tuple[float, float] | None:
        """The KPI's target band in the month starting ``period`` (None: no band)."""
        return self._bands.get((kpi_id, period))

    # The page asks for a KPI's rows and bands a few hundred times: each used to filter
    # the whole trends frame (0.1-0.2 s of a daily run's report). Built once, on first use;
    # the frames are not changed after the data is read.
    @functools.cached_property
    def _series(self) -> dict[str, pd.DataFrame]:
        by_kpi = self.trends.groupby("kpi_id", sort=False)
        return {kpi_id: rows.sort_values("period_start") for kpi_id, rows in by_kpi}

    @functools.cached_property
    def _bands(self) -> dict[tuple[str, dt.date], tuple[float, float] | None]:
        """The band of each KPI and month: that of its first row, as the frame is ordered."""
        bands: dict[tuple[str, dt.date], tuple[float, float] | None] = {}
        rows = zip(
            self.trends["kpi_id"],
            self.trends["period_start"],
            self.trends["band_min"],
            self.trends["band_max"],
            strict=True,
        )
        for kpi_id, period, band_min, band_max in rows:
            if (kpi_id, period) not in bands:
                lo, hi = number(band_min), number(band_max)
                bands[(kpi_id, period)] = (lo, hi) if lo is not None and hi is not None else None
        return bands


def _kpi_meta(tables: KpiTables) -> dict[str, KpiMeta]:
    cat = tables.catalog
    out = {}
    for kpi in cat.kpis.values():
        out[kpi.id] = KpiMeta(
            kpi_id=kpi.id,
            name=kpi.name,
            area=kpi.area,
            unit=Unit(kpi.unit),
            currency=kpi.currency or cat.reporting.currency,
            direction=Direction(kpi.direction),
            kpi_type=str(kpi.type),
            description=kpi.description,
            owner=kpi.owner,
            version=kpi.version,
            definition_version=cat.versions.get(kpi.id),
            target_example=bool(kpi.target and kpi.target.example),
            benchmark_example=bool(kpi.benchmark and kpi.benchmark.example),
            benchmark_source=kpi.benchmark.source if kpi.benchmark else None,
            goal=kpi.goal or None,
            display_format=kpi.format or None,
        )
    return out


def trend_select(
    tables: KpiTables, start: dt.date, as_of: dt.date, grain: str = "month"
) -> sa.Select:
    """The total rows of every KPI at ``grain`` from ``start`` to ``as_of``, with the target
    band of each period (within-band KPIs have a band instead of a target value)."""
    c = tables.comparisons
    return (
        totals_with_targets(
            c,
            tables.targets,
            tables.catalog.dimensions,
            grain,
            c.c.kpi_id,
            c.c.kpi_name,
            c.c.area,
            c.c.period_start,
            c.c.period_end,
            c.c.is_complete_period,
            c.c.actual,
            c.c.target,
            c.c.previous,
            c.c.benchmark_value,
            c.c.benchmark_min,
            c.c.benchmark_max,
            c.c.projected,
            c.c.status,
            c.c.definition_version,
        )
        .where(c.c.period_start >= start, c.c.period_start <= as_of)
        .order_by(c.c.kpi_id, c.c.period_start)
    )


def load_report_data(wh: Warehouse, tables: KpiTables, as_of: dt.date | None = None) -> ReportData:
    """Read what the report shows. ``as_of`` must be the date the warehouse was refreshed
    through (the default): the open month's to-date values exist only for that date."""
    stored = warehouse_as_of(wh, tables)
    if as_of is None:
        as_of = stored
    if as_of is None:
        raise ValueError("the KPI tables are empty: run the pipeline before the report")
    if stored is not None and stored != as_of:
        raise ValueError(
            f"the warehouse is computed through {stored}, not {as_of}: a report for {as_of} "
            f"needs the KPI tables refreshed with as_of={as_of}"
        )
    months = [add_months(as_of, -back) for back in range(TREND_MONTHS - 1, -1, -1)]
    scorecard = wh.read(scorecard_select(tables.comparisons, tables.catalog.dimensions))
    trends = wh.read(trend_select(tables, months[0], as_of))
    for frame in (scorecard, trends):
        for col in ("period_start", "period_end"):
            if col in frame:
                frame[col] = pd.to_datetime(frame[col]).dt.date
    # Only the sources some KPI reads: the header lists those whose data ends early.
    used = {n for k in tables.catalog.kpis.values() for n in tables.compiler.source_names(k)}
    sources = {n: c for n, c in source_coverage(wh, tables.compiler).items() if n in used}
    coverage = kpi_coverage(tables.compiler, sources)
    if not coverage:
        sources = {}  # nothing loaded at all: unknown, not "no data" (kpi.compute.coverage)
    return ReportData(
        as_of=as_of,
        months=months,
        scorecard=scorecard,
        trends=trends,
        kpis=_kpi_meta(tables),
        dialect=wh.dialect,
        coverage=coverage,
        sources=sources,
    )
