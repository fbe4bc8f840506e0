"""GA4 reports declared in YAML (``kpi_definitions/ga4/reports.yaml``), checked before any call.

A report names its dimensions, metrics, optional filters (see :mod:`ingest.ga4.filters`) and
the warehouse table it fills::

    reports:
      - name: traffic
        description: Sessions and e-commerce by day, channel, source/medium, campaign, device.
        table: raw.ga4_traffic
        dimensions: [date, sessionDefaultChannelGroup, deviceCategory]
        metrics: [sessions, engagedSessions]
        dimension_filter: {field: sessionMedium, in_list: [cpc, organic]}

The table's columns are declared in ``kpi_definitions/sources.yaml`` like every other table.
Loading checks each report against the API limits (9 dimensions, 10 metrics, one time
dimension, ...: :meth:`ingest.ga4.spec.ReportSpec.located_problems`) and against that declaration:
every dimension and metric must land in a declared column (``sessionSource`` ->
``session_source``; the time dimension -> the source's time column), every declared column must
be filled, the report's grain must be the source's, and a metric GA4 cannot add up (users,
rates) must not be declared additive. Every problem is reported at once, with file, line and
report: ``reports.yaml:12 [traffic]: unknown column `sesions`: did you mean `sessions`?``.

Weeks: GA4's ``yearWeek`` weeks start on Sunday and restart at week 01 on January 1st, so the
week spanning New Year comes back as two partial weeks, and user counts cannot be re-added
into one. Weekly reports must therefore use ``isoYearIsoWeek`` (ISO weeks, Monday to Sunday),
which is only allowed when ``reporting.week_start`` is ``monday``.

No Dagster here.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ingest.ga4.filters import FilterSyntaxError, ReportFilter, parse_filter
from ingest.ga4.rows import snake_case
from ingest.ga4.spec import TIME_DIMENSIONS, ReportSpec
from kpi.language.catalog import Catalog
from kpi.language.expressions import did_you_mean
from kpi.language.problems import Problem
from kpi.language.yaml_source import LocatedYaml, YamlSyntaxError, load_located_yaml

# GA4 metrics that count distinct users or are ratios/averages: summing them across days (or
# across any dimension) gives a wrong number, so their columns must not be declared additive.
NON_ADDITIVE_METRICS = frozenset(
    {
        "totalUsers",
        "activeUsers",
        "active1DayUsers",
        "active7DayUsers",
        "active28DayUsers",
        "totalPurchasers",
        "engagementRate",
        "bounceRate",
        "sessionKeyEventRate",
        "userKeyEventRate",
        "averageSessionDuration",
        "averagePurchaseRevenue",
        "averageRevenuePerUser",
        "sessionsPerUser",
        "screenPageViewsPerSession",
        "screenPageViewsPerUser",
        "purchaserRate",
        "dauPerMau",
        "dauPerWau",
        "wauPerMau",
    }
)
# Columns every GA4 table may declare that no dimension or metric fills.
PROPERTY_COLUMN = "property_id"
OTHER_ROW_COLUMN = "is_other_row"
_API_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(:[A-Za-z0-9_]+)?$")
_REPORT_NAME_RE = r"^[a-z][a-z0-9_]*$"

Location = tuple[str | int, ...]


@dataclass(frozen=True)
class TableDeclaration:
    """What ``sources.yaml`` declares about one table: enough to check a report against it."""

    source: str
    table: str
    time_column: str
    time_type: str
    grain: str
    # column -> declared additivity ("additive", "non_additive", ...; None for attributes)
    columns: Mapping[str, str | None]


@dataclass(frozen=True)
class GA4Report:
    """One checked report: its API spec and where its rows go."""

    spec: ReportSpec
    description: str
    table: TableDeclaration
    # snake_case column of each API name in the response -> the warehouse column it fills
    columns: Mapping[str, str]
    file: Path
    line: int

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def grain(self) -> str:
        grain = self.spec.grain
        assert grain is not None  # checked at load
        return grain

    @property
    def source(self) -> str:
        """The source (and Dagster asset) name of the target table."""
        return self.table.source

    @property
    def keeps_other_rows(self) -> bool:
        """Whether the table can hold GA4's ``(other)`` row (it declares ``is_other_row``)."""
        return OTHER_ROW_COLUMN in self.table.columns


class GA4ReportsError(ValueError):
    """The reports file has problems; ``problems`` lists every one of them."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the GA4 reports:\n{lines}")


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_REPORT_NAME_RE)
    description: str = Field(min_length=1)
    table: str = Field(min_length=1)
    dimensions: list[str] = Field(min_length=1)
    metrics: list[str] = Field(min_length=1)
    dimension_filter: dict[str, Any] | None = None
    metric_filter: dict[str, Any] | None = None


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    reports: list[Any] = Field(min_length=1)


@dataclass
class _Collector:
    doc: LocatedYaml
    problems: list[Problem] = field(default_factory=list)

    def add(self, location: Location, message: str, report: str | None = None) -> None:
        self.problems.append(
            Problem(str(self.doc.path), self.doc.line_of(location), message, report)
        )


def table_declarations(cat: Catalog) -> dict[str, TableDeclaration]:
    """Every table ``sources.yaml`` declares, as :func:`load_reports` needs it."""
    return {
        spec.table: TableDeclaration(
            source=name,
            table=spec.table,
            time_column=spec.time.column,
            time_type=spec.time.type,
            grain=str(spec.grain),
            columns={
                column: (str(col.additivity) if col.additivity else None)
                for column, col in spec.columns.items()
            },
        )
        for name, spec in cat.sources.items()
    }


def load_reports(
    path: Path, tables: Mapping[str, TableDeclaration], *, week_start: str = "monday"
) -> dict[str, GA4Report]:
    """Read and check ``path``; return the reports by name or raise :class:`GA4ReportsError`.

    ``tables`` maps each declared warehouse table (``raw.ga4_traffic``) to its declaration;
    ``week_start`` is ``reporting.week_start`` from ``sources.yaml``.
    """
    try:
        doc = load_located_yaml(path)
    except YamlSyntaxError as error:
        raise GA4ReportsError([Problem(str(path), error.line, error.problem)]) from None
    except OSError as error:
        raise GA4ReportsError([Problem(str(path), None, f"cannot read: {error}")]) from None
    out = _Collector(doc)
    for location, line in doc.duplicates:
        first = doc.lines.get(location)
        shown = ".".join(str(p) for p in location)
        out.problems.append(
            Problem(str(path), line, f"{shown}: duplicate key (first written on line {first})")
        )
    data = doc.data
    if not isinstance(data, dict):
        out.add((), "expected a mapping with `reports:`, a list of reports")
        raise GA4ReportsError(out.problems)
    try:
        _File.model_validate(data)
    except ValidationError as error:
        _pydantic_problems(out, error, (), None, _File)
    reports: dict[str, GA4Report] = {}
    used_tables: dict[str, str] = {}
    raw_reports = data.get("reports")
    for index, raw in enumerate(raw_reports if isinstance(raw_reports, list) else []):
        report = _check_report(out, raw, ("reports", index), tables, week_start)
        if report is None:
            continue
        if report.name in reports:
            first = reports[report.name].line
            out.add(
                ("reports", index, "name"),
                f"duplicate report name; first defined on line {first}",
                report.name,
            )
            continue
        if report.table.table in used_tables:
            out.add(
                ("reports", index, "table"),
                f"{report.table.table} is already filled by report "
                f"`{used_tables[report.table.table]}`; each load replaces whole periods of its "
                "table, so two reports would delete each other's rows",
                report.name,
            )
            continue
        reports[report.name] = report
        used_tables[report.table.table] = report.name
    if out.problems:
        raise GA4ReportsError(out.problems)
    return reports


def _check_report(
    out: _Collector,
    raw: Any,
    where: Location,
    tables: Mapping[str, TableDeclaration],
    week_start: str,
) -> GA4Report | None:
    name = raw.get("name") if isinstance(raw, dict) and isinstance(raw.get("name"), str) else None
    if not isinstance(raw, dict):
        out.add(where, "a report must be a mapping with name, description, table, dimensions...")
        return None
    try:
        entry = _Entry.model_validate(raw)
    except ValidationError as error:
        _pydantic_problems(out, error, where, name, _Entry)
        return None
    before = len(out.problems)
    for kind in ("dimensions", "metrics"):
        for i, api_name in enumerate(getattr(entry, kind)):
            if not _API_NAME_RE.match(api_name):
                out.add(
                    (*where, kind, i),
                    f"`{api_name}` is not a GA4 API name (letters, digits and _, or "
                    "customEvent:name / customUser:name for custom definitions)",
                    name,
                )
    filters: dict[str, ReportFilter | None] = {}
    for key, kind in (("dimension_filter", "dimension"), ("metric_filter", "metric")):
        value = getattr(entry, key)
        try:
            filters[key] = parse_filter(value, kind) if value is not None else None  # type: ignore[arg-type]
        except FilterSyntaxError as error:
            out.add((*where, key, *error.path), f"{key}: {error.message}", name)
    if len(out.problems) > before:
        return None

    spec = ReportSpec(
        entry.name,
        tuple(entry.dimensions),
        tuple(entry.metrics),
        dimension_filter=filters["dimension_filter"],
        metric_filter=filters["metric_filter"],
    )
    for fld, message in spec.located_problems():
        out.add((*where, fld), message, name)
    time_dimension = spec.time_dimension
    if time_dimension == "yearWeek":
        out.add(
            (*where, "dimensions", entry.dimensions.index("yearWeek")),
            "yearWeek weeks start on Sunday and restart at week 01 on January 1st, so the week "
            "spanning New Year comes back as two partial weeks whose users cannot be added up; "
            "use isoYearIsoWeek (ISO weeks, Monday to Sunday)",
            name,
        )
    if time_dimension == "isoYearIsoWeek" and week_start != "monday":
        out.add(
            (*where, "dimensions", entry.dimensions.index("isoYearIsoWeek")),
            f"isoYearIsoWeek weeks start on Monday but reporting.week_start is {week_start}; "
            "weekly users cannot be re-cut to other weeks (they are not additive), so weekly "
            "GA4 reports need week_start: monday",
            name,
        )
    if len(out.problems) > before:
        return None

    table = tables.get(entry.table)
    if table is None:
        hint = did_you_mean(entry.table, tables)
        out.add(
            (*where, "table"),
            f"table {entry.table} is not declared in sources.yaml{hint}; declare it there with "
            "its columns (property_id, one column per dimension and metric)",
            name,
        )
        return None
    columns = _check_columns(out, entry, spec, table, where)
    if len(out.problems) > before:
        return None
    return GA4Report(
        spec=spec,
        description=entry.description,
        table=table,
        columns=columns,
        file=out.doc.path,
        line=out.doc.line_of(where) or 1,
    )


def _check_columns(
    out: _Collector, entry: _Entry, spec: ReportSpec, table: TableDeclaration, where: Location
) -> dict[str, str]:
    name = entry.name
    source = f"sources.yaml `{table.source}` ({table.table})"
    if spec.grain != table.grain:
        out.add(
            (*where, "table"),
            f"the report is at {spec.grain} grain ({spec.time_dimension}) but {source} is "
            f"declared at {table.grain} grain; set `grain: {spec.grain}` there or change the "
            "time dimension",
            name,
        )
    if table.time_type != "date":
        out.add(
            (*where, "table"),
            f"{source} has a {table.time_type} time column; GA4 periods load into a date column",
            name,
        )
    if PROPERTY_COLUMN not in table.columns:
        out.add((*where, "table"), f"{source} must declare a `{PROPERTY_COLUMN}` column", name)
    columns: dict[str, str] = {}
    declared = list(table.columns)
    unknown = 0
    for kind in ("dimensions", "metrics"):
        for i, api_name in enumerate(getattr(entry, kind)):
            column = table.time_column if api_name in TIME_DIMENSIONS else snake_case(api_name)
            columns[snake_case(api_name)] = column
            if column not in table.columns:
                out.add(
                    (*where, kind, i),
                    f"unknown column `{column}` (from {api_name}): {source} does not declare it"
                    f"{did_you_mean(column, declared).replace(': ', '; ', 1)}",
                    name,
                )
                unknown += 1
                continue
            if api_name in NON_ADDITIVE_METRICS and table.columns[column] == "additive":
                out.add(
                    (*where, kind, i),
                    f"{api_name} is not additive (distinct users or a ratio), but {source} "
                    f"declares `{column}` additive; declare it non_additive and pull it at the "
                    "grain it is reported at",
                    name,
                )
    filled = {*columns.values(), PROPERTY_COLUMN, OTHER_ROW_COLUMN}
    unfilled = [c for c in table.columns if c not in filled]
    # A misspelt name leaves its column unfilled too; saying so twice would only add noise.
    if unfilled and not unknown:
        out.add(
            (*where, "table"),
            f"{source} declares {', '.join(unfilled)}, which no dimension or metric of this "
            "report fills",
            name,
        )
    return columns


def _closest(name: str, candidates: list[str]) -> str | None:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return close[0] if close else None


def _pydantic_problems(
    out: _Collector,
    error: ValidationError,
    where: Location,
    report: str | None,
    model: type[BaseModel],
) -> None:
    errors = error.errors()
    # A misspelt required key shows up twice: as unknown and as missing. Keep the first only.
    misspelt = {
        _closest(str(e["loc"][-1]), list(model.model_fields))
        for e in errors
        if e["type"] == "extra_forbidden"
    }
    for err in errors:
        loc = tuple(err["loc"])
        if err["type"] == "missing" and len(loc) == 1 and loc[0] in misspelt:
            continue
        field_path = ".".join(str(p) for p in loc) or "(document)"
        if err["type"] == "extra_forbidden":
            allowed = list(model.model_fields)
            hint = did_you_mean(str(loc[-1]), allowed)
            message = f"{field_path}: unknown field{hint}; allowed fields: {', '.join(allowed)}"
        elif err["type"] == "missing":
            message = f"{field_path}: required field is missing"
        else:
            got = err.get("input")
            shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
            message = f"{field_path}: {err['msg']}{shown}"
        out.add((*where, *loc), message, report)
