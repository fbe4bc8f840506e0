"""The catalog: every source and KPI of ``kpi_definitions/``, with where each is written.

``kpi.language.loader`` builds it from the YAML files and runs the rules on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from kpi.language.channels import Taxonomy
from kpi.language.models import Kpi, Reporting, SourceSpec, definition_version
from kpi.language.yaml_source import LocatedYaml

SOURCES_FILE = "sources.yaml"
# The shipped definitions; callers pass the folder they load (the code location's settings,
# the CLI's --definitions), the kernel never reads the environment.
DEFAULT_DEFINITIONS_DIR = Path(__file__).resolve().parents[2] / "kpi_definitions"


@dataclass(frozen=True)
class Location:
    doc: LocatedYaml
    path: tuple[str | int, ...]

    def at(self, *more: str | int) -> tuple[str, int | None]:
        return str(self.doc.path), self.doc.line_of((*self.path, *more))


@dataclass
class Catalog:
    """Every source and KPI, after validation."""

    reporting: Reporting
    dimensions: list[str]
    sources: dict[str, SourceSpec]
    kpis: dict[str, Kpi]
    # Conformed dimensions declared ``sparse: true`` (kpi.language.models.ConformedDimension).
    sparse_dimensions: set[str] = field(default_factory=set)
    kpi_locations: dict[str, Location] = field(default_factory=dict)
    source_locations: dict[str, Location] = field(default_factory=dict)
    sources_location: Location | None = None
    # The channel taxonomy (kpi_definitions/taxonomy/channels.yaml), None without the file.
    taxonomy: Taxonomy | None = None
    taxonomy_location: Location | None = None

    def kpi(self, kpi_id: str) -> Kpi:
        return self.kpis[kpi_id]

    def is_sparse(self, dims: tuple[str, ...]) -> bool:
        """True when the slice by ``dims`` is sparse: one of its dimensions is declared
        sparse, so rows exist only where the row's window has data. The total and slices by
        dense dimensions alone are gap-filled (every period x every value seen)."""
        return any(d in self.sparse_dimensions for d in dims)

    def dependencies(self, kpi_id: str) -> list[Kpi]:
        """All KPIs ``kpi_id`` is computed from, transitively, without itself."""
        seen: dict[str, Kpi] = {}
        stack = list(self.kpis[kpi_id].referenced_kpis())
        while stack:
            ref = stack.pop()
            if ref in seen or ref not in self.kpis or ref == kpi_id:
                continue
            seen[ref] = self.kpis[ref]
            stack.extend(self.kpis[ref].referenced_kpis())
        return list(seen.values())

    def sources_of(self, kpi_id: str) -> list[SourceSpec]:
        """The sources a KPI reads, directly or through the KPIs it is computed from."""
        names: list[str] = []
        for k in [self.kpis[kpi_id], *self.dependencies(kpi_id)]:
            for _, m in k.measures:
                if m.source not in names:
                    names.append(m.source)
        return [self.sources[n] for n in names if n in self.sources]

    def stored_sources(self, name: str) -> list[str]:
        """The sources whose tables hold ``name``'s rows: its members for a union source
        (``union_of``), else itself."""
        spec = self.sources.get(name)
        return list(spec.union_of) if spec is not None and spec.union_of else [name]

    @cached_property
    def versions(self) -> dict[str, str]:
        # Once, not per KPI it decides: a dump and hash of the whole taxonomy.
        taxonomy = self.taxonomy.fingerprint if self.taxonomy is not None else None
        return {
            kid: definition_version(
                k,
                self.dependencies(kid),
                self.sources_of(kid),
                [d for d in k.dimension_names if d in self.sparse_dimensions],
                self._taxonomy_fingerprint(kid, taxonomy),
            )
            for kid, k in self.kpis.items()
        }

    def _taxonomy_fingerprint(self, kpi_id: str, fingerprint: str | None) -> str | None:
        """The taxonomy's ``fingerprint`` when it decides a slice of ``kpi_id``: a changed
        rule moves rows between channels, so those KPIs are recomputed."""
        if fingerprint is None:
            return None
        kpi = self.kpis[kpi_id]
        sliced = set(kpi.dimension_names) | {
            d for dep in self.dependencies(kpi_id) for d in dep.dimension_names
        }
        for src in self.sources_of(kpi_id):
            for dim, mapping in src.dimensions.items():
                if mapping.classify is not None and (dim in sliced or _filters_on(kpi, dim)):
                    return fingerprint
        return None

    def evaluation_order(self) -> list[str]:
        """KPI ids with every KPI after the ones it is computed from."""
        order: list[str] = []
        visiting: set[str] = set()

        def visit(kid: str) -> None:
            if kid in order or kid in visiting:
                return
            visiting.add(kid)
            for ref in self.kpis[kid].referenced_kpis():
                if ref in self.kpis:
                    visit(ref)
            visiting.discard(kid)
            order.append(kid)

        for kid in self.kpis:
            visit(kid)
        return order


def _filters_on(kpi: Kpi, dim: str) -> bool:
    return any(m.filter and dim in m.filter for _, m in kpi.measures)
