"""Loading ``kpi_definitions/`` into one checked catalog, with every problem located.

``load_catalog`` either returns a catalog that compiles, or raises ``DefinitionError``
listing every problem at once (file, line, KPI id, what is wrong and a suggestion): the
YAML is read and shaped here, then every rule of ``kpi.language.rules`` runs on it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from kpi.language.catalog import DEFAULT_DEFINITIONS_DIR, SOURCES_FILE, Catalog, Location
from kpi.language.channels import TAXONOMY_FILE, Taxonomy
from kpi.language.expressions import did_you_mean
from kpi.language.models import Kpi, KpiFile, SourcesFile
from kpi.language.problems import DefinitionError, Problem
from kpi.language.rules import run_rules
from kpi.language.yaml_source import LocatedYaml, YamlSyntaxError, load_located_yaml


def load_catalog(folder: Path | str = DEFAULT_DEFINITIONS_DIR) -> Catalog:
    """Load and validate every definition file in ``folder``; raise with all problems."""
    catalog, problems = collect_catalog(Path(folder))
    if problems:
        raise DefinitionError(problems)
    assert catalog is not None
    return catalog


def collect_catalog(folder: Path) -> tuple[Catalog | None, list[Problem]]:
    """Load ``folder`` and return the catalog (None if unusable) and every problem found."""
    problems: list[Problem] = []
    sources_path = folder / SOURCES_FILE
    if not sources_path.exists():
        return None, [Problem(str(sources_path), None, "missing: every catalog needs sources")]

    sources_doc = _read(sources_path, problems)
    sources_file = None
    if sources_doc is not None:
        sources_file = _validate(SourcesFile, sources_doc, (), problems)
    if sources_file is None:
        return None, problems

    catalog = Catalog(
        reporting=sources_file.reporting,
        dimensions=list(sources_file.dimensions),
        sparse_dimensions={n for n, d in sources_file.dimensions.items() if d.sparse},
        sources=dict(sources_file.sources),
        kpis={},
    )
    catalog.sources_location = Location(sources_doc, ())
    for name in sources_file.sources:
        catalog.source_locations[name] = Location(sources_doc, ("sources", name))

    # A folder without its own taxonomy uses the shipped one (GA4's default channel group).
    taxonomy_path = folder / TAXONOMY_FILE
    if not taxonomy_path.exists():
        taxonomy_path = DEFAULT_DEFINITIONS_DIR / TAXONOMY_FILE
    if taxonomy_path.exists():
        taxonomy_doc = _read(taxonomy_path, problems)
        if taxonomy_doc is not None:
            catalog.taxonomy = _validate(Taxonomy, taxonomy_doc, (), problems)
            catalog.taxonomy_location = Location(taxonomy_doc, ())

    for path in sorted(folder.glob("*.yaml")):
        if path.name == SOURCES_FILE:
            continue
        doc = _read(path, problems)
        if doc is None:
            continue
        _load_kpi_file(doc, catalog, problems)

    problems.extend(run_rules(catalog))
    return catalog, problems


def _load_kpi_file(doc: LocatedYaml, catalog: Catalog, problems: list[Problem]) -> None:
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("kpis"), list):
        problems.append(Problem(str(doc.path), 1, "expected a mapping with `area` and `kpis`"))
        return
    area = data.get("area")
    # Validate KPI by KPI so one bad KPI does not hide the problems of the others.
    for i, raw in enumerate(data["kpis"]):
        kpi_id = raw.get("id") if isinstance(raw, dict) else None
        if isinstance(raw, dict) and "area" not in raw and area:
            raw = {**raw, "area": area}
        kpi = _validate(Kpi, doc, ("kpis", i), problems, value=raw, kpi_id=kpi_id)
        if kpi is None:
            continue
        if kpi.id in catalog.kpis:
            first = catalog.kpi_locations[kpi.id]
            file, line = Location(doc, ("kpis", i)).at("id")
            problems.append(
                Problem(
                    file,
                    line,
                    f"duplicate KPI id; first defined at {first.doc.path}:{first.at('id')[1]}",
                    kpi.id,
                )
            )
            continue
        catalog.kpis[kpi.id] = kpi
        catalog.kpi_locations[kpi.id] = Location(doc, ("kpis", i))
    rest = {k: v for k, v in data.items() if k != "kpis"}
    _validate(KpiFile, doc, (), problems, value={**rest, "kpis": []})


def _read(path: Path, problems: list[Problem]) -> LocatedYaml | None:
    try:
        doc = load_located_yaml(path)
    except YamlSyntaxError as exc:
        problems.append(Problem(str(path), exc.line, exc.problem))
        return None
    for location, line in doc.duplicates:
        kpi_id = None
        if len(location) > 2 and location[0] == "kpis" and isinstance(doc.data, dict):
            kpis = doc.data.get("kpis") or []
            if isinstance(location[1], int) and location[1] < len(kpis):
                kpi_id = (kpis[location[1]] or {}).get("id")
        first = doc.lines.get(location)
        shown = location[2:] if kpi_id else location
        field_path = ".".join(str(p) for p in shown)
        problems.append(
            Problem(
                str(path),
                line,
                f"{field_path}: duplicate key (first written on line {first}); "
                "only one value is allowed",
                kpi_id,
            )
        )
    return doc


def _validate(model, doc, base, problems, *, value=None, kpi_id=None):
    value = doc.data if value is None else value
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        for err in exc.errors():
            loc = (*base, *err["loc"])
            field_path = ".".join(str(p) for p in err["loc"]) or "(document)"
            got = err.get("input")
            shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                fields = sorted(_allowed_fields(model, err["loc"][:-1]))
                hint = did_you_mean(str(err["loc"][-1]), fields)
                msg = f"unknown field{hint}; allowed fields here: {', '.join(fields)}"
                shown = ""
            problems.append(
                Problem(str(doc.path), doc.line_of(loc), f"{field_path}: {msg}{shown}", kpi_id)
            )
        return None


def _allowed_fields(model, loc) -> list[str]:
    """Field names allowed at ``loc`` inside ``model``, to suggest the right spelling."""
    from typing import get_args, get_origin

    current, skip_key = model, False
    for part in loc:
        if skip_key or isinstance(part, int):
            skip_key = False
            continue
        info = getattr(current, "model_fields", {}).get(part)
        if info is None:
            return []
        annotation = info.annotation
        skip_key = get_origin(annotation) is dict
        if skip_key:
            annotation = get_args(annotation)[1]
        current = _model_in(annotation)
    return list(getattr(current, "model_fields", {}))


def _model_in(annotation):
    from typing import get_args

    if hasattr(annotation, "model_fields"):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
