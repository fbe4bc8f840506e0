"""The ``kpi`` command line: validate, list, show and compile, as a data engineer uses them.

Compiled SQL is checked two ways: stable, meaningful fragments for every dialect, and the
full text of one small KPI against ``tests/snapshots/<kpi>_<dialect>_<grain>.sql``. Run
``UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/kpi/test_cli.py`` to (re)write snapshots
after an intended change, and review the diff.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from kpi import cli
from kpi.cli import compile_sql, format_sql, load_dialect, main
from kpi.compute.compiler import KpiCompiler
from kpi.compute.periods import Calendar, day_periods
from kpi.language.catalog import DEFAULT_DEFINITIONS_DIR
from kpi.language.loader import load_catalog
from kpi.language.models import Grain

SNAPSHOTS = Path(__file__).resolve().parents[1] / "snapshots"
DIALECTS = ("duckdb", "postgresql", "bigquery", "snowflake")

GOOD_SOURCES = """\
reporting: {time_zone: Europe/Copenhagen, currency: EUR}
dimensions:
  channel: {description: marketing channel}
sources:
  traffic:
    table: raw.traffic
    time: {column: date, type: date, time_zone: Europe/Copenhagen}
    columns:
      date: {type: date}
      channel_group: {type: string}
      sessions: {type: integer, additivity: additive}
    dimensions:
      channel: {column: channel_group}
"""
VISITS = """\
area: web
kpis:
  - id: visits
    name: Visits
    description: Sessions on the site.
    owner: web@example.com
    unit: count
    direction: higher_is_better
    type: simple
    measure: {source: traffic, agg: sum, expr: sesions}
"""


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(DEFAULT_DEFINITIONS_DIR)


@pytest.fixture(autouse=True)
def _no_definitions_env(monkeypatch):
    # A developer's own KPI_DEFINITIONS_DIR must not leak into these tests.
    monkeypatch.delenv(cli.ENV_DEFINITIONS, raising=False)


def definitions(tmp_path: Path, kpis: str = VISITS, name: str = "defs") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "sources.yaml").write_text(GOOD_SOURCES, encoding="utf-8")
    (folder / "web.yaml").write_text(kpis, encoding="utf-8")
    return folder


def fixed(kpis: str = VISITS) -> str:
    return kpis.replace("expr: sesions", "expr: sessions")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def flat(sql: str) -> str:
    """SQL without identifier quotes and with single spaces, to match fragments anywhere."""
    return " ".join(re.sub(r'[`"]', "", sql).split())


# ---------------------------------------------------------------------------------------------
# validate
# ---------------------------------------------------------------------------------------------


def test_validate_the_shipped_definitions(capsys, catalog):
    code, out, err = run(capsys, "validate")
    assert code == 0, err
    assert out == f"{len(catalog.kpis)} KPIs and {len(catalog.sources)} sources OK\n"


def test_validate_prints_every_problem_as_file_line_kpi_message(capsys, tmp_path):
    folder = definitions(
        tmp_path,
        VISITS + "  - id: broken\n    name: Broken\n    direction: up\n",
    )
    code, out, err = run(capsys, "validate", "--definitions", str(folder))
    assert code == 1
    lines = out.splitlines()
    web = folder / "web.yaml"
    assert f"{web}:10 [visits]: measure.expr: unknown column `sesions` in source `traffic`: " in out
    assert "did you mean `sessions`?" in out
    assert f"{web}:13 [broken]: direction: Input should be" in out
    for line in lines:
        assert re.match(r"^\S+\.yaml:\d+ \[\w+\]: \S", line), line
    assert len(lines) >= 3  # the two above and the missing fields of `broken`
    assert f"{len(lines)} problem(s)" in err


def test_validate_reads_kpi_definitions_dir_and_the_flag_wins(capsys, tmp_path, monkeypatch):
    good = definitions(tmp_path, fixed(), name="good")
    bad = definitions(tmp_path, name="bad")
    monkeypatch.setenv(cli.ENV_DEFINITIONS, str(good))
    assert run(capsys, "validate") == (0, "1 KPIs and 1 sources OK\n", "")
    assert run(capsys, "validate", "--definitions", str(bad))[0] == 1
    # The flag is also accepted before the command.
    assert run(capsys, "--definitions", str(bad), "validate")[0] == 1


def test_missing_definitions_folder_is_a_usage_error(capsys, tmp_path):
    code, _, err = run(capsys, "validate", "--definitions", str(tmp_path / "nope"))
    assert code == 2
    assert "does not exist" in err


def test_relative_paths_are_shown_relative_to_the_working_directory(capsys, tmp_path, monkeypatch):
    definitions(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "validate", "--definitions", "defs")
    assert code == 1
    assert out.startswith("defs/web.yaml:10 [visits]: ")


# ---------------------------------------------------------------------------------------------
# list
# ---------------------------------------------------------------------------------------------


def test_list_is_a_table_of_every_kpi(capsys, catalog):
    code, out, _ = run(capsys, "list")
    assert code == 0
    header, rule, *rows = out.splitlines()
    assert header.split() == ["id", "name", "area", "type", "unit", "direction", "owner", "grains"]
    assert set(rule) == {"-", " "}
    assert [r.split()[0] for r in rows] == list(catalog.kpis)
    row = next(r for r in rows if r.startswith("conversion_rate "))
    for cell in ("Conversion rate", "sales", "ratio", "percent", "higher_is_better"):
        assert cell in row
    assert re.search(r"  ecommerce@example\.com +day,week,month$", row), row


def test_list_one_area(capsys, catalog):
    code, out, _ = run(capsys, "list", "--area", "sales")
    assert code == 0
    ids = [r.split()[0] for r in out.splitlines()[2:]]
    assert ids == [k.id for k in catalog.kpis.values() if k.area == "sales"]
    assert "sessions" not in ids


def test_list_unknown_area(capsys):
    code, out, err = run(capsys, "list", "--area", "sale")
    assert (code, out) == (2, "")
    assert "unknown area `sale`: did you mean `sales`?" in err


def test_list_of_broken_definitions_prints_the_problems(capsys, tmp_path):
    code, out, err = run(capsys, "list", "--definitions", str(definitions(tmp_path)))
    assert (code, out) == (1, "")
    assert "unknown column `sesions`" in err and "kpi validate" in err


# ---------------------------------------------------------------------------------------------
# show
# ---------------------------------------------------------------------------------------------


def fields(out: str) -> dict[str, str]:
    """`name: value` lines of ``kpi show`` (continuation lines joined)."""
    result: dict[str, str] = {}
    last = None
    for line in out.splitlines()[2:]:
        if line.startswith(" ") and last:
            result[last] += " " + line.strip()
            continue
        name, _, value = line.partition(":")
        last = name
        result[name] = value.strip()
    return result


def test_show_every_field_formula_version_and_dependencies(capsys, catalog):
    code, out, _ = run(capsys, "show", "gross_margin")
    assert code == 0
    assert out.startswith("gross_margin: Gross margin\n")
    shown = fields(out)
    kpi = catalog.kpis["gross_margin"]
    assert set(type(kpi).model_fields) <= set(shown)
    assert shown["type"] == "derived"
    assert shown["expr"] == shown["formula"] == "gross_profit / order_revenue"
    assert kpi.target is not None
    assert shown["target"].startswith(f"{{value: {kpi.target.value}, grain: {kpi.target.grain}")
    th = kpi.thresholds
    assert shown["thresholds"] == (
        f"{{at_risk_below: {th.at_risk_below}, off_track_below: {th.off_track_below}}}"
    )
    assert shown["grains"] == "day, week, month"
    assert shown["definition version"] == catalog.versions["gross_margin"]
    assert shown["depends on"] == "gross_profit, order_revenue"
    assert shown["reads sources"] == "orders"
    assert re.fullmatch(r"\S*sales\.yaml:\d+", shown["defined at"])


def test_show_a_ratio_and_who_uses_a_kpi(capsys, catalog):
    code, out, _ = run(capsys, "show", "conversion_rate")
    assert code == 0
    shown = fields(out)
    assert shown["formula"] == ("sum(transactions) of ga4_traffic / sum(sessions) of ga4_traffic")
    band = catalog.kpis["conversion_rate"].benchmark.band
    assert shown["benchmark"].startswith(f"{{band: {{min: {band.min}, max: {band.max}}}")
    assert shown["depends on"] == "-"
    code, out, _ = run(capsys, "show", "revenue")
    used_by = fields(out)["used by"].split(", ")
    assert {"revenue_month_to_date", "revenue_growth_mom"} <= set(used_by)


def test_show_unknown_kpi_suggests_the_closest(capsys):
    code, out, err = run(capsys, "show", "conversion_rat")
    assert (code, out) == (2, "")
    assert "unknown KPI `conversion_rat`: did you mean `conversion_rate`?" in err


# ---------------------------------------------------------------------------------------------
# compile: every dialect
# ---------------------------------------------------------------------------------------------

DOUBLE = {
    "duckdb": "DOUBLE PRECISION",  # duckdb_engine builds on the PostgreSQL dialect
    "postgresql": "DOUBLE PRECISION",
    "bigquery": "FLOAT64",
    "snowflake": "DOUBLE",
}
LOCAL_DATE = {
    "duckdb": "CAST(timezone('Europe/Copenhagen', raw.orders.ordered_at) AS DATE)",
    "postgresql": "CAST(timezone('Europe/Copenhagen', raw.orders.ordered_at) AS DATE)",
    "bigquery": "DATE(orders.ordered_at, 'Europe/Copenhagen')",
    "snowflake": "CAST(CONVERT_TIMEZONE('Europe/Copenhagen', raw.orders.ordered_at) AS DATE)",
}


def compiled(capsys, *argv: str) -> str:
    code, out, err = run(capsys, "compile", *argv)
    assert code == 0, err
    return out


@pytest.mark.parametrize("dialect", DIALECTS)
def test_compile_conversion_rate_by_month(capsys, catalog, dialect):
    sql = flat(compiled(capsys, "conversion_rate", "--dialect", dialect, "--grain", "month"))
    assert sql.startswith("SELECT 'conversion_rate' AS kpi_id, 'month' AS grain, ")
    # Safe division: the denominator is cast to a double and a zero becomes NULL.
    double = DOUBLE[dialect] if dialect in ("duckdb", "postgresql") or real(dialect) else "DOUBLE"
    assert re.search(
        rf"CAST\(anon_\d+\.value AS {double}\) / (CAST\()?nullif\(CAST\(anon_\d+\.value AS "
        rf"{double}\), 0\.0\)",
        sql,
        flags=re.IGNORECASE,
    ), sql
    # Sums of transactions and sessions, each from the daily rollup of GA4 traffic.
    assert "ga4_traffic.transactions AS x" in sql and "ga4_traffic.sessions AS x" in sql
    assert "FROM raw.ga4_traffic" in sql
    # Each day finds its period through day_periods (an equality join), then the periods.
    assert re.search(r"JOIN `?kpi_work`?\.`?day_periods`? ON", sql, flags=re.IGNORECASE)
    assert re.search(r"bucket`? = `?periods_\d+`?\.`?period_start", sql)
    assert "WHERE periods_1.grain = 'month'" in sql
    assert "JOIN kpi.periods AS p ON p.grain = 'month' AND p.period_start = " in sql
    assert sql.endswith("ORDER BY p.period_start")
    # GA4 dates are already local dates: no time zone conversion.
    assert "timezone(" not in sql.lower()
    # No dimension asked: every dimension column is NULL, the total.
    for dim in catalog.dimensions:
        assert re.search(rf"CAST\(NULL AS \w+\) AS {dim}\b", sql), dim
    assert f"'{catalog.versions['conversion_rate']}' AS definition_version" in sql


@pytest.mark.parametrize("dialect", DIALECTS)
def test_compile_timestamp_source_uses_local_dates(capsys, dialect):
    sql = flat(compiled(capsys, "order_revenue", "--dialect", dialect, "--grain", "month"))
    assert f"{local_date(dialect)} AS day" in sql, sql
    assert "coalesce(sum(anon_2.total), 0) AS value" in sql


def test_compile_by_a_dimension_slices_and_maps_it(capsys):
    sql = flat(compiled(capsys, "roas", "--dialect", "postgresql", "--dimension", "channel"))
    # The slice values come from both sources, the ad platforms' vocabulary mapped.
    assert " UNION SELECT DISTINCT " in sql
    assert "CASE raw.paid_media.channel WHEN 'search' THEN 'Paid Search'" in sql
    assert "'(not set)'" in sql
    assert re.search(r"GROUP BY periods_\d+\.period_start, anon_\d+\.channel", sql)
    assert "IN ('Paid Search', 'Paid Social', 'Display')" in sql
    assert re.search(r"ORDER BY p\.period_start, anon_\d+\.channel$", sql)


def test_compile_defaults_to_duckdb_and_month(capsys):
    assert compiled(capsys, "sessions") == compiled(
        capsys, "sessions", "--dialect", "duckdb", "--grain", "month"
    )


def test_compile_rejects_a_grain_the_kpi_is_not_reported_at(capsys):
    code, out, err = run(capsys, "compile", "revenue", "--grain", "quarter")
    assert (code, out) == (2, "")
    assert "not reported at grain quarter; its grains: day, week, month" in err


def test_compile_rejects_a_dimension_the_kpi_is_not_sliced_by(capsys):
    code, _, err = run(capsys, "compile", "revenue", "--dimension", "chanel")
    assert code == 2
    assert "`chanel`: did you mean `channel`? (its dimensions: channel, device)" in err


def test_compile_unknown_kpi(capsys):
    code, _, err = run(capsys, "compile", "conversion_rat")
    assert code == 2 and "unknown KPI `conversion_rat`: did you mean `conversion_rate`?" in err


def test_compile_rejects_an_unknown_dialect(capsys):
    with pytest.raises(SystemExit) as info:
        main(["compile", "revenue", "--dialect", "oracle"])
    assert info.value.code == 2
    assert "invalid choice: 'oracle'" in capsys.readouterr().err


def real(dialect: str) -> bool:
    """Whether the dialect package of a cloud warehouse is installed."""
    return load_dialect(dialect)[1] is None


def local_date(dialect: str) -> str:
    """The local date of an order, as compiled; generic stand-ins qualify with the schema."""
    if dialect == "bigquery" and not real(dialect):
        return LOCAL_DATE[dialect].replace("(orders.", "(raw.orders.")
    return LOCAL_DATE[dialect]


def test_cloud_dialects_use_their_own_quoting_and_types(capsys):
    pytest.importorskip("sqlalchemy_bigquery")
    pytest.importorskip("snowflake.sqlalchemy")
    bigquery = compiled(capsys, "conversion_rate", "--dialect", "bigquery")
    assert "JOIN `kpi`.`periods` AS `p` ON `p`.`grain` = 'month'" in bigquery
    assert "AS FLOAT64" in bigquery and "AS INT64" in bigquery
    snowflake = compiled(capsys, "conversion_rate", "--dialect", "snowflake")
    assert "JOIN kpi.periods AS p ON p.grain = 'month'" in snowflake
    assert "AS TIMESTAMP_TZ) AS computed_at" in snowflake


def test_bigquery_computed_at_is_a_timestamp(capsys):
    pytest.importorskip("sqlalchemy_bigquery")
    bigquery = compiled(capsys, "sessions", "--dialect", "bigquery")
    assert "CAST(CURRENT_TIMESTAMP AS TIMESTAMP) AS `computed_at`" in bigquery


@pytest.mark.parametrize(
    ("dialect", "module"),
    [("bigquery", "sqlalchemy_bigquery"), ("snowflake", "snowflake.sqlalchemy")],
)
def test_cloud_dialect_falls_back_to_a_generic_one_with_a_warning(
    capsys, monkeypatch, dialect, module
):
    monkeypatch.setitem(sys.modules, module, None)  # `import` now raises ImportError
    if module == "snowflake.sqlalchemy":
        monkeypatch.setitem(sys.modules, "snowflake.sqlalchemy.snowdialect", None)
    code, out, err = run(capsys, "compile", "order_revenue", "--dialect", dialect)
    assert code == 0
    assert "warning:" in err and cli.DIALECT_PACKAGES[dialect] in err and "generic" in err
    assert real(dialect) is False
    assert f"{local_date(dialect)} AS day" in flat(out)


# ---------------------------------------------------------------------------------------------
# compile: the SQL runs, and the re-indented SQL is the same statement
# ---------------------------------------------------------------------------------------------


def test_format_sql_leaves_quotes_and_function_calls_alone():
    sql = (
        "SELECT 'a, FROM (SELECT b' AS \"x, y\", count(*) AS n, coalesce(a, b) AS c \n"
        "FROM (SELECT a, b FROM t WHERE a = 'JOIN' AND b > 1) AS s "
        "LEFT OUTER JOIN u ON u.a = s.a AND u.b = s.b GROUP BY a, b ORDER BY a"
    )
    assert format_sql(sql) == (
        "SELECT\n"
        "    'a, FROM (SELECT b' AS \"x, y\",\n"
        "    count(*) AS n,\n"
        "    coalesce(a, b) AS c\n"
        "FROM (\n"
        "    SELECT\n"
        "        a,\n"
        "        b\n"
        "    FROM t\n"
        "    WHERE a = 'JOIN'\n"
        "        AND b > 1\n"
        ") AS s\n"
        "LEFT OUTER JOIN u ON u.a = s.a\n"
        "    AND u.b = s.b\n"
        "GROUP BY a, b\n"
        "ORDER BY a"
    )


def test_formatting_changes_only_whitespace(catalog):
    dialect, _ = load_dialect("postgresql")
    for kpi_id in ("roas", "revenue_growth_mom", "unique_customers", "net_promoter_score"):
        raw = compile_sql(catalog, kpi_id, "month", (), dialect)
        pretty = format_sql(raw)
        assert re.sub(r"\s+", "", pretty) == re.sub(r"\s+", "", raw), kpi_id
        assert re.findall(r"'[^']*'", pretty) == re.findall(r"'[^']*'", raw), kpi_id
        assert pretty.count("\n") > raw.count("\n") and max(map(len, pretty.splitlines())) < 200


def test_compiled_duckdb_sql_runs_and_counts_orders_by_local_day(catalog, capsys):
    """The printed SQL runs on DuckDB; an order late on 31 Jan UTC is February in Copenhagen."""
    compiler = KpiCompiler(catalog)
    engine = sa.create_engine("duckdb:///:memory:")
    utc = dt.UTC
    orders = [
        ("1", dt.datetime(2026, 1, 10, 12, tzinfo=utc), "web", 100.0),
        ("2", dt.datetime(2026, 1, 31, 23, 30, tzinfo=utc), "web", 50.0),
        ("3", dt.datetime(2026, 2, 3, 9, tzinfo=utc), None, 7.0),
    ]
    periods = Calendar(catalog.reporting).periods(
        dt.date(2026, 1, 1), dt.date(2026, 2, 28), [Grain.month]
    )
    sql = compiled(capsys, "order_revenue", "--dimension", "channel")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA raw; CREATE SCHEMA kpi; CREATE SCHEMA kpi_work"))
        compiler.tables["orders"].create(conn)
        compiler.periods.create(conn)
        conn.execute(sa.insert(compiler.periods), [p.as_row() for p in periods])
        compiler.day_periods.create(conn)
        day_map = day_periods(periods)
        conn.execute(
            sa.insert(compiler.day_periods),
            [dict(zip(day_map, row, strict=True)) for row in zip(*day_map.values(), strict=True)],
        )
        conn.execute(
            sa.insert(compiler.tables["orders"]),
            [
                {"order_id": i, "ordered_at": t, "customer_id": i, "channel": c, "revenue": r}
                for i, t, c, r in orders
            ],
        )
        rows = conn.execute(sa.text(sql)).mappings().all()
    got = {(str(r["period_start"]), r["channel"]): (r["value"], r["sample_size"]) for r in rows}
    assert got == {
        ("2026-01-01", "web"): (100.0, 1),
        ("2026-01-01", "(not set)"): (0.0, 0),
        ("2026-02-01", "web"): (50.0, 1),
        ("2026-02-01", "(not set)"): (7.0, 1),
    }


# ---------------------------------------------------------------------------------------------
# compile: snapshot of the full SQL
# ---------------------------------------------------------------------------------------------

# The definition version hashes the KPI *and* the declaration of every source it reads, so it
# changes with unrelated edits to sources.yaml; it is checked above, and masked here.
# BigQuery quotes the alias in backticks.
VERSION = re.compile(r"'[0-9a-f]{12}' AS (`?)definition_version\1")


@pytest.mark.parametrize(
    ("kpi_id", "dialect", "grain"),
    [
        (kpi_id, dialect, "month")
        for kpi_id in ("order_revenue", "conversion_rate")
        for dialect in ("duckdb", "postgresql", "bigquery", "snowflake")
    ],
)
def test_compiled_sql_matches_the_snapshot(capsys, kpi_id, dialect, grain):
    sql = compiled(capsys, kpi_id, "--dialect", dialect, "--grain", grain)
    sql = VERSION.sub(r"'<definition_version>' AS \1definition_version\1", sql)
    path = SNAPSHOTS / f"{kpi_id}_{dialect}_{grain}.sql"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(sql, encoding="utf-8")
    assert path.exists(), f"no snapshot {path}: run with UPDATE_SNAPSHOTS=1 to write it"
    assert sql == path.read_text(encoding="utf-8"), (
        f"compiled SQL differs from {path}; if the change is intended, rerun with "
        "UPDATE_SNAPSHOTS=1 and review the diff"
    )


# ---------------------------------------------------------------------------------------------
# The installed console script
# ---------------------------------------------------------------------------------------------


def test_console_script_validates(catalog):
    script = Path(sys.executable).with_name("kpi")
    assert script.exists(), f"{script} is missing: run `pip install -e .` (pyproject declares it)"
    result = subprocess.run(
        [str(script), "validate"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != cli.ENV_DEFINITIONS},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{len(catalog.kpis)} KPIs and {len(catalog.sources)} sources OK\n"
