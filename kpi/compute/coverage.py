"""Which days the loaded data covers, per source and so per KPI.

The KPI tables are computed through an as-of date, but a source can end earlier: a run on
1 December with data through 30 November has December rows whose sums are 0 because nothing
was loaded yet, not because nothing happened. What is known is read from the raw tables: a
source covers the days from its first to its last day with rows (in the reporting time
zone; a month- or week-grain source to the end of its last period). A KPI covers the days
every one of its sources covers: from the latest first day to the earliest last day. A day
outside that is unknown, and the report and the anomaly band treat it as missing, not as 0.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from kpi.compute.compiler import KpiCompiler
from kpi.compute.periods import add_months
from kpi.language.models import Grain, Kpi
from kpi.warehouse.connection import Warehouse

__all__ = ["Coverage", "covered_until", "kpi_coverage", "source_coverage"]


@dataclass(frozen=True)
class Coverage:
    """The days from ``first`` to ``last`` with data; both None: no data at all."""

    first: dt.date | None
    last: dt.date | None

    @property
    def empty(self) -> bool:
        return self.first is None or self.last is None or self.last < self.first

    def covers_day(self, day: dt.date) -> bool:
        return not self.empty and self.first <= day <= self.last

    def overlaps(self, start: dt.date, end: dt.date) -> bool:
        """Whether any day of ``start`` .. ``end`` has data."""
        return not self.empty and start <= self.last and end >= self.first

    def starts_after(self, day: dt.date) -> bool:
        """Whether ``day`` lies before the first day with data (or there is none)."""
        return self.empty or day < self.first

    @staticmethod
    def of_all(parts: list[Coverage]) -> Coverage:
        """The days every part covers."""
        if not parts or any(p.empty for p in parts):
            return Coverage(None, None)
        return Coverage(max(p.first for p in parts), min(p.last for p in parts))


def covered_until(start: dt.date, grain: Grain) -> dt.date:
    """The last day a source of ``grain`` covers with a row of ``start``: its period's end."""
    if grain == Grain.week:
        return start + dt.timedelta(days=6)
    if grain == Grain.month:
        return add_months(start.replace(day=1), 1) - dt.timedelta(days=1)
    if grain == Grain.quarter:
        return add_months(start.replace(day=1), 3) - dt.timedelta(days=1)
    if grain == Grain.year:
        return dt.date(start.year, 12, 31)
    return start


def _as_date(value) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def source_coverage(wh: Warehouse, compiler: KpiCompiler) -> dict[str, Coverage]:
    """Source name -> the days its raw table has rows for, for every declared source whose
    raw table exists in the warehouse (a source whose table is missing is left out: unknown).
    One query for all of them."""
    catalog = compiler.catalog
    inspector = sa.inspect(wh.engine)
    parts = []
    for name, src in sorted(catalog.sources.items()):
        table = compiler.tables.get(name)
        if table is None or not inspector.has_table(table.name, schema=table.schema):
            continue
        column = table.c[src.time.column]
        low = compiler.local_day(src, sa.func.min(column))
        high = compiler.local_day(src, sa.func.max(column))
        parts.append(
            sa.select(
                sa.literal(name, sa.String).label("source"),
                low.label("first_day"),
                high.label("last_day"),
            ).select_from(table)
        )
    if not parts:
        return {}
    rows = wh.rows(sa.union_all(*parts) if len(parts) > 1 else parts[0])
    out = {}
    for name, first, last in rows:
        grain = catalog.sources[name].grain
        first, last = _as_date(first), _as_date(last)
        out[name] = Coverage(first, covered_until(last, grain) if last is not None else None)
    return out


def kpi_coverage(
    compiler: KpiCompiler, sources: dict[str, Coverage], kpis: list[Kpi] | None = None
) -> dict[str, Coverage]:
    """KPI id -> the days all of its sources cover. A KPI reading a source the warehouse has
    no table for is left out (unknown). When no source has a single row (no raw table at all,
    or KPI tables kept or copied without their inputs), what was loaded cannot be told:
    every KPI is unknown, and its values are taken as stored."""
    if all(c.empty for c in sources.values()):
        return {}
    out = {}
    for kpi in kpis if kpis is not None else compiler.catalog.kpis.values():
        names = compiler.source_names(kpi)
        if not names or any(n not in sources for n in names):
            continue
        out[kpi.id] = Coverage.of_all([sources[n] for n in names])
    return out
