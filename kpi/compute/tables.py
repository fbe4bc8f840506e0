"""The KPI tables of one catalog, bound to one SQLAlchemy metadata: what every step writes."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sqlalchemy as sa

from kpi.compute.changes import refresh_state_table, source_days_table
from kpi.compute.compared_windows import ComparedWindows, compared_values_table
from kpi.compute.compiler import KpiCompiler
from kpi.compute.rollups import PeriodRollups
from kpi.language.catalog import Catalog
from kpi.warehouse.schema import (
    kpi_anomalies_table,
    kpi_catalog_table,
    kpi_changes_table,
    kpi_comparisons_table,
    kpi_targets_table,
    kpi_values_table,
)
from kpi.warehouse.statements import compiled_statements_table


@dataclass
class KpiTables:
    """The KPI tables of one catalog, bound to SQLAlchemy metadata."""

    compiler: KpiCompiler

    @property
    def catalog(self) -> Catalog:
        return self.compiler.catalog

    @property
    def periods(self) -> sa.Table:
        return self.compiler.periods

    @property
    def values(self) -> sa.Table:
        return kpi_values_table(self.compiler.metadata, self.catalog.dimensions)

    @property
    def targets(self) -> sa.Table:
        return kpi_targets_table(self.compiler.metadata)

    @property
    def comparisons(self) -> sa.Table:
        return kpi_comparisons_table(self.compiler.metadata, self.catalog.dimensions)

    @functools.cached_property
    def rollups(self) -> PeriodRollups:
        return PeriodRollups(self.compiler)

    @property
    def compared_values(self) -> sa.Table:
        return compared_values_table(self.compiler.metadata, self.catalog.dimensions)

    @functools.cached_property
    def compared_windows(self) -> ComparedWindows | None:
        """The compared windows evaluated once a comparisons refresh (None without cubes:
        each comparison statement evaluates its own)."""
        if not self.compiler.use_cubes:
            return None
        return ComparedWindows(self.compiler, self.compared_values)

    @property
    def raw_tables(self) -> dict[str, sa.Table]:
        return self.compiler.tables

    @property
    def catalog_table(self) -> sa.Table:
        return kpi_catalog_table(self.compiler.metadata)

    @property
    def changes(self) -> sa.Table:
        return kpi_changes_table(self.compiler.metadata)

    @property
    def anomalies(self) -> sa.Table:
        return kpi_anomalies_table(self.compiler.metadata)

    @property
    def refresh_state(self) -> sa.Table:
        return refresh_state_table(self.compiler.metadata)

    @property
    def compiled_statements(self) -> sa.Table:
        return compiled_statements_table(self.compiler.metadata)

    @property
    def source_days(self) -> sa.Table:
        return source_days_table(self.compiler.metadata)

    def all_tables(self) -> list[sa.Table]:
        return [
            *self.raw_tables.values(),
            self.periods,
            self.compiler.day_periods,
            self.values,
            self.targets,
            self.comparisons,
            self.catalog_table,
            self.changes,
            self.anomalies,
            self.refresh_state,
            self.source_days,
            self.compiled_statements,
            self.compared_values,
        ]

    def layout(self) -> dict:
        """What shapes compiled SQL besides the catalogue's content: whether it reads the
        cubes, and the positions that name their columns (``s{j}_*`` in a cube, ``m{i}_*`` in
        a rollup follow the order KPIs and sources are read in, which a renamed or reordered
        definitions file changes without changing a definition)."""
        cubes, catalog = self.compiler.cubes, self.compiler.catalog
        return {
            "use_cubes": self.compiler.use_cubes,
            "kpis": list(catalog.kpis),
            "sources": list(catalog.sources),
            "cubes": {
                source: {
                    "dims": cubes.dims.get(source),
                    "month_dims": cubes.month_dims.get(source),
                    "measures": cubes.measures.get(source),
                    "stored": cubes.stored.get(source),
                    "parts": {
                        str(j): sorted(parts)
                        for (s, j), parts in cubes.parts.items()
                        if s == source
                    },
                }
                for source in cubes.tables
            },
            "rollups": {
                source: {",".join(dims): sorted(g) for dims, g in slices.items()}
                for source, slices in (
                    self.rollups.grains.items() if self.compiler.use_cubes else []
                )
            },
        }

    @classmethod
    def for_catalog(cls, catalog: Catalog, use_cubes: bool = False) -> KpiTables:
        """The tables of ``catalog``; ``use_cubes`` makes refreshes read daily rollups."""
        tables = cls(KpiCompiler(catalog, use_cubes=use_cubes))
        tables.all_tables()  # bind every table to the metadata
        return tables
