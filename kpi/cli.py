"""The ``kpi`` command: check, list, explain and compile the KPI definitions.

::

    kpi validate [--definitions DIR]
    kpi list [--area AREA]
    kpi show ID
    kpi compile ID [--dialect duckdb] [--grain month] [--dimension channel]

The definitions are read from ``--definitions``, else from ``$KPI_DEFINITIONS_DIR``, else
from the ``kpi_definitions/`` folder of the project. Exit codes: 0 fine, 1 the definitions
have problems, 2 the command line is wrong (an unknown KPI, area, grain or dimension).

Plain argparse and SQLAlchemy only: the command works without Dagster or a warehouse.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Dialect

from kpi.language.catalog import DEFAULT_DEFINITIONS_DIR, Catalog
from kpi.language.expressions import did_you_mean
from kpi.language.loader import collect_catalog
from kpi.language.models import GRAIN_ORDER, Kpi, KpiType, Measure
from kpi.language.problems import Problem

ENV_DEFINITIONS = "KPI_DEFINITIONS_DIR"
DIALECTS = ("duckdb", "postgresql", "bigquery", "snowflake")
# The packages that bring the SQLAlchemy dialects of the cloud warehouses.
DIALECT_PACKAGES = {"bigquery": "sqlalchemy-bigquery", "snowflake": "snowflake-sqlalchemy"}

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """The command line names something that does not exist; exits with code 2."""


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kpi`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as exc:
        print(f"kpi: {exc}", file=sys.stderr)
        return EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``kpi`` subcommand."""
    definitions = argparse.ArgumentParser(add_help=False)
    definitions.add_argument(
        "--definitions",
        metavar="DIR",
        type=Path,
        default=argparse.SUPPRESS,
        help=f"folder with sources.yaml and the area files (default: ${ENV_DEFINITIONS}, "
        "else the project's kpi_definitions/)",
    )
    parser = argparse.ArgumentParser(
        prog="kpi",
        description="Check, list, explain and compile the KPI definitions.",
        parents=[definitions],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser(
        "validate",
        parents=[definitions],
        help="check every definition; print each problem as file:line [kpi]: message",
    )
    validate.set_defaults(handler=cmd_validate)

    list_ = commands.add_parser("list", parents=[definitions], help="a table of the KPIs")
    list_.add_argument("--area", help="only the KPIs of this area")
    list_.set_defaults(handler=cmd_list)

    show = commands.add_parser(
        "show", parents=[definitions], help="every field of one KPI, its formula and version"
    )
    show.add_argument("kpi_id", metavar="ID")
    show.set_defaults(handler=cmd_show)

    compile_ = commands.add_parser(
        "compile", parents=[definitions], help="the SQL that computes one KPI"
    )
    compile_.add_argument("kpi_id", metavar="ID")
    compile_.add_argument(
        "--dialect", choices=DIALECTS, default="duckdb", help="SQL dialect (default: duckdb)"
    )
    compile_.add_argument(
        "--grain",
        choices=[str(g) for g in GRAIN_ORDER],
        help="reporting grain (default: month, or the KPI's coarsest grain)",
    )
    compile_.add_argument(
        "--dimension",
        action="append",
        default=[],
        metavar="DIM",
        help="slice by this dimension (repeatable; default: the total)",
    )
    compile_.add_argument(
        "--raw", action="store_true", help="print SQLAlchemy's SQL as it is, not re-indented"
    )
    compile_.set_defaults(handler=cmd_compile)
    return parser


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    """Print every problem and exit 1, or a one-line summary and exit 0."""
    folder = definitions_dir(args)
    catalog, problems = collect_catalog(folder)
    if catalog is not None:
        from kpi.language.rules.suites import suite_problems

        problems = [*problems, *suite_problems(folder, catalog)]
    if problems:
        for problem in problems:
            print(format_problem(problem))
        print(f"{len(problems)} problem(s) in {_shown_path(folder)}", file=sys.stderr)
        return EXIT_PROBLEMS
    assert catalog is not None
    print(f"{len(catalog.kpis)} KPIs and {len(catalog.sources)} sources OK")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    """A table of the KPIs: id, name, area, type, unit, direction, owner, grains."""
    catalog = _catalog_or_problems(args)
    if catalog is None:
        return EXIT_PROBLEMS
    kpis = list(catalog.kpis.values())
    if args.area is not None:
        areas = sorted({k.area for k in kpis})
        if args.area not in areas:
            raise UsageError(
                f"unknown area `{args.area}`{did_you_mean(args.area, areas)} "
                f"(areas: {', '.join(areas)})"
            )
        kpis = [k for k in kpis if k.area == args.area]
    header = ("id", "name", "area", "type", "unit", "direction", "owner", "grains")
    rows = [
        (k.id, k.name, k.area, k.type, k.unit, k.direction, k.owner, ",".join(k.grains))
        for k in kpis
    ]
    print(render_table(header, rows))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    """Every field of one KPI, then its formula, version and dependencies."""
    catalog = _catalog_or_problems(args)
    if catalog is None:
        return EXIT_PROBLEMS
    kpi = _kpi(catalog, args.kpi_id)
    print(render_kpi(catalog, kpi))
    return EXIT_OK


def cmd_compile(args: argparse.Namespace) -> int:
    """Print the SQL that computes one KPI at one grain and slice, in one dialect."""
    catalog = _catalog_or_problems(args)
    if catalog is None:
        return EXIT_PROBLEMS
    kpi = _kpi(catalog, args.kpi_id)
    grain = args.grain or (
        "month" if "month" in kpi.grains else str(max(kpi.grains, key=GRAIN_ORDER.index))
    )
    if grain not in kpi.grains:
        raise UsageError(
            f"KPI `{kpi.id}` is not reported at grain {grain}; its grains: {', '.join(kpi.grains)}"
        )
    for dim in args.dimension:
        if dim not in kpi.dimension_names:
            known = ", ".join(kpi.dimension_names) or "none"
            raise UsageError(
                f"KPI `{kpi.id}` is not sliced by `{dim}`{did_you_mean(dim, kpi.dimension_names)} "
                f"(its dimensions: {known})"
            )
    dialect, warning = load_dialect(args.dialect)
    if warning:
        print(f"kpi: warning: {warning}", file=sys.stderr)
    sql = compile_sql(catalog, kpi.id, grain, tuple(args.dimension), dialect)
    print(sql if args.raw else format_sql(sql))
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# Pieces the commands share (public so that tests and other tools can use them)
# ---------------------------------------------------------------------------------------------


def definitions_dir(args: argparse.Namespace) -> Path:
    """``--definitions``, else ``$KPI_DEFINITIONS_DIR``, else the project's definitions."""
    given = getattr(args, "definitions", None)
    if given is not None:
        folder = Path(given)
    else:  # the command is an entry point: its default may come from the environment
        folder = Path(os.environ.get(ENV_DEFINITIONS) or DEFAULT_DEFINITIONS_DIR)
    if not folder.is_dir():
        raise UsageError(f"definitions folder {folder} does not exist")
    return folder


def format_problem(problem: Problem) -> str:
    """``file:line [kpi_id]: message``, with the file relative to the working directory."""
    where = _shown_path(problem.file)
    if problem.line:
        where = f"{where}:{problem.line}"
    who = f" [{problem.kpi_id}]" if problem.kpi_id else ""
    return f"{where}{who}: {problem.message}"


def render_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table with a rule under the header; columns as wide as their values."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def formula(kpi: Kpi) -> str:
    """How a KPI is computed, in one line."""

    def measure(m: Measure) -> str:
        text = f"{m.agg}({m.expr or '*'}) of {m.source}"
        return f"{text} where {m.filter}" if m.filter else text

    if kpi.type == KpiType.simple and kpi.measure:
        return measure(kpi.measure)
    if kpi.type == KpiType.ratio and kpi.numerator and kpi.denominator:
        return f"{measure(kpi.numerator)} / {measure(kpi.denominator)}"
    if kpi.type == KpiType.derived and kpi.expr:
        return kpi.expr
    if kpi.type == KpiType.cumulative and kpi.cumulative:
        c = kpi.cumulative
        return f"{c.of}, {c.label}"
    if kpi.type == KpiType.period_over_period and kpi.period_over_period:
        p = kpi.period_over_period
        return f"relative change of {p.of} against {p.label}"
    return "(incomplete definition)"


def render_kpi(catalog: Catalog, kpi: Kpi) -> str:
    """Every field of ``kpi`` (defaults included) and what the catalog knows about it."""
    lines: list[tuple[str, str]] = []
    for name in type(kpi).model_fields:
        lines.append((name, _value(getattr(kpi, name))))
    deps = catalog.dependencies(kpi.id)
    order = {kid: i for i, kid in enumerate(catalog.evaluation_order())}
    used_by = [k.id for k in catalog.kpis.values() if kpi.id in {d.id for d in _deps(catalog, k)}]
    lines += [
        ("formula", formula(kpi)),
        ("depends on", ", ".join(sorted((d.id for d in deps), key=order.get)) or "-"),
        ("used by", ", ".join(used_by) or "-"),
        ("reads sources", ", ".join(_source_names(catalog, kpi)) or "-"),
        ("definition version", catalog.versions[kpi.id]),
    ]
    location = catalog.kpi_locations.get(kpi.id)
    if location is not None:
        file, line = location.at()
        lines.append(("defined at", f"{_shown_path(file)}:{line}"))
    width = max(len(name) for name, _ in lines) + 2
    out = [f"{kpi.id}: {kpi.name}", ""]
    for name, value in lines:
        wrapped = textwrap.wrap(value, 100 - width) or [""]
        out.append(f"{name + ':':<{width}}{wrapped[0]}")
        out += [" " * width + more for more in wrapped[1:]]
    return "\n".join(line.rstrip() for line in out)


def load_dialect(name: str) -> tuple[Dialect, str | None]:
    """The SQLAlchemy dialect ``name`` and a warning when a generic stand-in is used.

    BigQuery and Snowflake need their dialect packages (``sqlalchemy-bigquery``,
    ``snowflake-sqlalchemy``). Without them the SQL is compiled by SQLAlchemy's generic
    dialect under the warehouse's name, so the warehouse-specific constructs of
    ``kpi.compute.compiler`` (local dates) still compile for that warehouse, but quoting and type
    names are ANSI ones.
    """
    if name == "duckdb":
        import duckdb_engine

        return duckdb_engine.Dialect(), None
    if name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.dialect(), None
    try:
        if name == "bigquery":
            from sqlalchemy_bigquery import BigQueryDialect

            return BigQueryDialect(), None
        if name == "snowflake":
            from snowflake.sqlalchemy.snowdialect import SnowflakeDialect

            return SnowflakeDialect(), None
    except ImportError:
        from sqlalchemy.engine.default import DefaultDialect

        generic = DefaultDialect()
        generic.name = name  # so that @compiles(..., name) variants are used
        package = DIALECT_PACKAGES[name]
        return generic, (
            f"{package} is not installed: the SQL below was compiled with SQLAlchemy's generic "
            f"dialect (ANSI quoting and type names), not {name}'s; install it with "
            f"`pip install {package}` (it is in the project's dev extras)"
        )
    raise UsageError(f"unknown dialect `{name}`{did_you_mean(name, DIALECTS)}")


def compile_sql(
    catalog: Catalog, kpi_id: str, grain: str, dims: tuple[str, ...], dialect: Dialect
) -> str:
    """The SQL text of ``KpiCompiler(catalog).compile(...)`` with literal values inlined."""
    from kpi.compute.compiler import KpiCompiler

    query = KpiCompiler(catalog).compile(kpi_id, grain, dims)
    return str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True})).strip()


# Quoted strings and identifiers stay whole; everything else splits on spaces, parens, commas.
_SQL_TOKEN = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|`(?:[^`\\]|\\.)*`|\s+|[(),]|[^\s(),'"`]+"""
)
_CLAUSES = (
    ("LEFT", "OUTER", "JOIN"),
    ("RIGHT", "OUTER", "JOIN"),
    ("FULL", "OUTER", "JOIN"),
    ("INNER", "JOIN"),
    ("CROSS", "JOIN"),
    ("JOIN",),
    ("FROM",),
    ("WHERE",),
    ("GROUP", "BY"),
    ("HAVING",),
    ("QUALIFY",),
    ("ORDER", "BY"),
    ("LIMIT",),
    ("UNION", "ALL"),
    ("UNION", "DISTINCT"),
    ("UNION",),
)


def format_sql(sql: str, indent: str = "    ") -> str:
    """Re-indent SQLAlchemy's SQL: a clause per line, a column per line, nested subqueries.

    Only whitespace outside quotes changes (a space may become a line break, and a line
    break is added inside the parentheses of a subquery), so the statement is the same.
    """
    words: list[tuple[bool, str]] = []  # (whitespace before it in ``sql``, token)
    space = False
    for token in _SQL_TOKEN.findall(sql):
        if token.isspace():
            space = True
            continue
        words.append((space, token))
        space = False

    out: list[str] = []
    parens: list[bool] = []  # one per open paren: does it open a subquery?
    clause: list[str] = [""]  # the clause being written, per subquery level

    def newline(extra: int = 0) -> None:
        out.append("\n" + indent * (len(clause) - 1 + extra))

    def emit(token: str, space_before: bool) -> None:
        if space_before and out and not out[-1].startswith("\n"):
            out.append(" ")
        out.append(token)

    pos = 0
    cases = 0  # CASE expressions open at this point
    while pos < len(words):
        space_before, token = words[pos]
        cases += (token == "CASE") - (token == "END" and cases > 0)
        nxt = words[pos + 1][1] if pos + 1 < len(words) else ""
        pos += 1
        statement_level = not parens or parens[-1]
        phrase = _clause_at(words, pos - 1) if statement_level else None
        if token == "(":
            emit("(", space_before)
            parens.append(nxt == "SELECT")
            if parens[-1]:
                clause.append("")
                newline()
        elif token == ")":
            if parens and parens.pop():
                clause.pop()
                newline()
            out.append(")")
        elif token == "," and statement_level and clause[-1] == "SELECT":
            out.append(",")
            newline(1)
        elif phrase:
            if out and not out[-1].startswith("\n"):
                newline()
            out.append(" ".join(phrase))
            clause[-1] = phrase[-1]
            pos += len(phrase) - 1
            if phrase[0] == "UNION":
                newline()
        elif token == "WHEN" or (cases and token in ("AND", "OR", "ELSE", "IN", "THEN")):
            # A CASE's branches and their conditions, one a line: the channel taxonomy's
            # CASE (kpi.compute.channel_sql) is long.
            newline(2)
            out.append(token)
        elif token == "AND" and statement_level and clause[-1] in ("JOIN", "WHERE", "HAVING"):
            newline(1)
            out.append("AND")
        elif token == "SELECT" and statement_level:
            emit("SELECT", space_before)
            if nxt == "DISTINCT":
                out.append(" DISTINCT")
                pos += 1
            clause[-1] = "SELECT"
            newline(1)
        else:
            emit(token, space_before)
    lines = "".join(out).strip().splitlines()
    return "\n".join(line.rstrip() for line in lines if line.strip())


def _clause_at(words: list[tuple[bool, str]], pos: int) -> tuple[str, ...] | None:
    for phrase in _CLAUSES:
        if tuple(t for _, t in words[pos : pos + len(phrase)]) == phrase:
            return phrase
    return None


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _catalog_or_problems(args: argparse.Namespace) -> Catalog | None:
    """The catalog, or None after printing its problems to stderr."""
    folder = definitions_dir(args)
    catalog, problems = collect_catalog(folder)
    if problems or catalog is None:
        for problem in problems:
            print(format_problem(problem), file=sys.stderr)
        print(
            f"kpi: {len(problems)} problem(s) in {_shown_path(folder)}; "
            "fix them first (`kpi validate` lists them)",
            file=sys.stderr,
        )
        return None
    return catalog


def _kpi(catalog: Catalog, kpi_id: str) -> Kpi:
    if kpi_id not in catalog.kpis:
        raise UsageError(f"unknown KPI `{kpi_id}`{did_you_mean(kpi_id, catalog.kpis)}")
    return catalog.kpis[kpi_id]


def _deps(catalog: Catalog, kpi: Kpi) -> list[Kpi]:
    return catalog.dependencies(kpi.id)


def _source_names(catalog: Catalog, kpi: Kpi) -> list[str]:
    names: list[str] = []
    for k in [kpi, *catalog.dependencies(kpi.id)]:
        for _, m in k.measures:
            if m.source not in names:
                names.append(m.source)
    return names


def _value(value: Any) -> str:
    """A field value on one line: lists comma-separated, models as YAML flow mappings."""
    if value is None:
        return "-"
    if hasattr(value, "model_dump"):
        data = value.model_dump(mode="json", exclude_none=True)
        return _flow({k: v for k, v in data.items() if v not in ({}, [])}) or "{}"
    if isinstance(value, list):
        return ", ".join(_value(v) for v in value) or "-"
    return str(value) or "-"


def _flow(data: Any) -> str:
    if isinstance(data, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in data.items()) + "}"
    if isinstance(data, list):
        return "[" + ", ".join(_flow(v) for v in data) + "]"
    if isinstance(data, bool):
        return "true" if data else "false"
    if isinstance(data, str) and re.search(r"[:,{}\[\]#]|^\s|\s$|^$", data):
        return json.dumps(data, ensure_ascii=False)
    return str(data)


def _shown_path(path: str | Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
