"""GA4 reports declared in YAML: checked when loaded, before any API call, with file and line.

Each test writes a reports file and loads it against the tables of the shipped
``kpi_definitions/sources.yaml`` (or a small declaration of its own).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from assets.ga4.reports import REPORTS_FILE, reports_path
from ingest.ga4.filters import FieldFilter, FilterGroup, FilterSyntaxError, parse_filter, to_proto
from ingest.ga4.reports import GA4ReportsError, TableDeclaration, load_reports, table_declarations
from ingest.ga4.spec import TRAFFIC_REPORT, USERS_MONTHLY_REPORT
from kpi.language.catalog import DEFAULT_DEFINITIONS_DIR
from kpi.language.loader import load_catalog

TABLES = table_declarations(load_catalog(DEFAULT_DEFINITIONS_DIR))

TRAFFIC = """\
reports:
  - name: traffic
    description: Sessions by day and channel.
    table: raw.ga4_traffic
    dimensions:
      - date
      - sessionDefaultChannelGroup
      - sessionSource
      - sessionMedium
      - sessionCampaignName
      - deviceCategory
    metrics:
      - sessions
      - engagedSessions
      - newUsers
      - keyEvents
      - transactions
      - purchaseRevenue
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "reports.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _problems(tmp_path: Path, text: str, **kwargs: object) -> list[str]:
    path = _write(tmp_path, text)
    with pytest.raises(GA4ReportsError) as info:
        load_reports(path, kwargs.pop("tables", TABLES), **kwargs)  # type: ignore[arg-type]
    return [str(p) for p in info.value.problems]


def _line(text: str, needle: str) -> int:
    return next(i for i, t in enumerate(textwrap.dedent(text).splitlines(), 1) if needle in t)


# -- the shipped file ----------------------------------------------------------------------------


def test_shipped_reports_load_and_keep_the_existing_tables() -> None:
    assert reports_path() == DEFAULT_DEFINITIONS_DIR / REPORTS_FILE
    reports = load_reports(reports_path(), TABLES)

    assert {r.name: (r.source, r.grain) for r in reports.values()} == {
        "traffic": ("ga4_traffic", "day"),
        "ecommerce": ("ga4_ecommerce", "day"),
        "users_weekly": ("ga4_users_weekly", "week"),
        "users_monthly": ("ga4_users_monthly", "month"),
    }
    assert reports["traffic"].spec == TRAFFIC_REPORT
    assert reports["users_monthly"].spec == USERS_MONTHLY_REPORT
    assert reports["users_weekly"].columns["iso_year_iso_week"] == "week"
    assert reports["users_monthly"].columns["year_month"] == "month"
    assert reports["traffic"].keeps_other_rows and not reports["users_monthly"].keeps_other_rows


def test_the_example_traffic_file_is_valid(tmp_path: Path) -> None:
    assert load_reports(_write(tmp_path, TRAFFIC), TABLES)["traffic"].spec == TRAFFIC_REPORT


# -- API limits and names ----------------------------------------------------------------------


def test_too_many_dimensions_names_file_line_and_report(tmp_path: Path) -> None:
    text = TRAFFIC.replace(
        "      - deviceCategory\n",
        "      - deviceCategory\n"
        + "".join(f"      - {d}\n" for d in ("country", "city", "region", "language")),
    )
    path = tmp_path / "reports.yaml"
    (problem,) = _problems(tmp_path, text)
    assert problem.startswith(f"{path}:{_line(text, 'dimensions:')} [traffic]: ")
    assert "10 dimensions requested; the GA4 Data API allows at most 9" in problem


def test_too_many_metrics_names_file_line_and_report(tmp_path: Path) -> None:
    more = "".join(
        f"      - {m}\n"
        for m in ("checkouts", "addToCarts", "eventCount", "itemsViewed", "screenPageViews")
    )
    text = TRAFFIC + more
    (problem,) = _problems(tmp_path, text)
    assert f"reports.yaml:{_line(text, 'metrics:')} [traffic]: 11 metrics requested" in problem
    assert "at most 10" in problem


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    text = TRAFFIC.replace("    dimensions:", "    dimensons:")
    (problem,) = _problems(tmp_path, text)
    assert f":{_line(text, 'dimensons:')} [traffic]: dimensons: unknown field" in problem
    assert "did you mean `dimensions`?" in problem
    # Not also "dimensions: required field is missing": that is the same mistake.


def test_unknown_metric_is_an_undeclared_column_with_a_suggestion(tmp_path: Path) -> None:
    text = TRAFFIC.replace("      - engagedSessions\n", "      - engagedSesions\n")
    (problem,) = _problems(tmp_path, text)
    assert (
        f":{_line(text, 'engagedSesions')} [traffic]: unknown column `engaged_sesions`" in problem
    )
    assert "did you mean `engaged_sessions`?" in problem


def test_invalid_api_name_and_missing_field(tmp_path: Path) -> None:
    text = TRAFFIC.replace("      - sessionSource\n", "      - session source\n").replace(
        "    table: raw.ga4_traffic\n", ""
    )
    problems = _problems(tmp_path, text)
    assert len(problems) == 1  # the model check stops at the missing table first
    assert "[traffic]: table: required field is missing" in problems[0]

    text = TRAFFIC.replace("      - sessionSource\n", "      - session source\n")
    (problem,) = _problems(tmp_path, text)
    assert f":{_line(text, 'session source')} [traffic]: `session source` is not a GA4" in problem


def test_every_problem_of_every_report_is_listed(tmp_path: Path) -> None:
    text = """\
    reports:
      - name: no_time
        description: No time dimension.
        table: raw.ga4_traffic
        dimensions: [deviceCategory]
        metrics: [sessions, conversions]
      - name: elsewhere
        description: A table nobody declared.
        table: raw.ga4_trafic
        dimensions: [date]
        metrics: [sessions]
    """
    problems = _problems(tmp_path, text)
    assert len(problems) == 3, problems
    assert any("[no_time]: a time dimension (date, isoYearIsoWeek" in p for p in problems)
    assert any("[no_time]: 'conversions' was renamed to 'keyEvents'" in p for p in problems)
    assert any(
        f":{_line(text, 'raw.ga4_trafic')} [elsewhere]: table raw.ga4_trafic is not declared" in p
        and "did you mean `raw.ga4_traffic`?" in p
        for p in problems
    )


def test_duplicate_names_and_tables(tmp_path: Path) -> None:
    second = TRAFFIC.split("reports:\n", 1)[1]
    problems = _problems(tmp_path, TRAFFIC + second)
    assert len(problems) == 1 and "duplicate report name; first defined on line 2" in problems[0]

    renamed = second.replace("name: traffic", "name: traffic_again")
    (problem,) = _problems(tmp_path, TRAFFIC + renamed)
    assert "[traffic_again]: raw.ga4_traffic is already filled by report `traffic`" in problem


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    text = TRAFFIC.replace("    metrics:\n", "    metrics: [\n")
    (problem,) = _problems(tmp_path, text)
    assert problem.startswith(str(tmp_path / "reports.yaml") + ":")
    assert "invalid YAML" in problem


# -- grains, weeks and additivity --------------------------------------------------------------


def test_year_week_is_refused_with_the_reason(tmp_path: Path) -> None:
    text = """\
    reports:
      - name: users_weekly
        description: Weekly users.
        table: raw.ga4_users_weekly
        dimensions: [yearWeek]
        metrics: [totalUsers, newUsers, activeUsers]
    """
    (problem,) = _problems(tmp_path, text)
    assert f":{_line(text, 'yearWeek')} [users_weekly]: yearWeek weeks start on Sunday" in problem
    assert "use isoYearIsoWeek" in problem
    good = text.replace("yearWeek", "isoYearIsoWeek")
    assert load_reports(_write(tmp_path, good), TABLES)["users_weekly"].grain == "week"


def test_iso_weeks_need_monday_weeks(tmp_path: Path) -> None:
    text = """\
    reports:
      - name: users_weekly
        description: Weekly users.
        table: raw.ga4_users_weekly
        dimensions: [isoYearIsoWeek]
        metrics: [totalUsers, newUsers, activeUsers]
    """
    (problem,) = _problems(tmp_path, text, week_start="sunday")
    assert "isoYearIsoWeek weeks start on Monday but reporting.week_start is sunday" in problem


def test_grain_must_match_the_table(tmp_path: Path) -> None:
    text = """\
    reports:
      - name: users_monthly
        description: Daily users into the monthly table.
        table: raw.ga4_users_monthly
        dimensions: [date]
        metrics: [totalUsers, newUsers, activeUsers]
    """
    (problem,) = _problems(tmp_path, text)
    assert "report is at day grain (date) but sources.yaml `ga4_users_monthly`" in problem
    assert "declared at month grain" in problem


def test_users_must_not_be_declared_additive(tmp_path: Path) -> None:
    tables = {
        "raw.daily_users": TableDeclaration(
            source="daily_users",
            table="raw.daily_users",
            time_column="date",
            time_type="date",
            grain="day",
            columns={"property_id": None, "date": None, "total_users": "additive"},
        )
    }
    text = """\
    reports:
      - name: daily_users
        description: Users by day.
        table: raw.daily_users
        dimensions: [date]
        metrics: [totalUsers]
    """
    (problem,) = _problems(tmp_path, text, tables=tables)
    assert "totalUsers is not additive" in problem and "declares `total_users` additive" in problem


def test_columns_the_report_leaves_empty_are_reported(tmp_path: Path) -> None:
    text = TRAFFIC.replace("      - keyEvents\n", "")
    (problem,) = _problems(tmp_path, text)
    assert "declares key_events, which no dimension or metric of this report fills" in problem


# -- filters -------------------------------------------------------------------------------------


def test_filters_load_and_become_filter_expressions(tmp_path: Path) -> None:
    text = TRAFFIC + textwrap.indent(
        textwrap.dedent(
            """\
            dimension_filter:
              and:
                - {field: sessionMedium, in_list: [cpc, ppc]}
                - not: {field: sessionCampaignName, contains: Test, case_sensitive: true}
            metric_filter: {field: sessions, greater_than: 0}
            """
        ),
        "    ",
    )
    spec = load_reports(_write(tmp_path, text), TABLES)["traffic"].spec
    assert spec.dimension_filter == FilterGroup(
        "and",
        (
            FieldFilter("sessionMedium", "in_list", ("cpc", "ppc")),
            FilterGroup("not", (FieldFilter("sessionCampaignName", "contains", ("Test",), True),)),
        ),
    )
    proto = to_proto(spec.dimension_filter)  # type: ignore[arg-type]
    inner = proto.and_group.expressions[1].not_expression.filter
    assert (inner.field_name, inner.string_filter.value, inner.string_filter.case_sensitive) == (
        "sessionCampaignName",
        "Test",
        True,
    )
    metric = to_proto(spec.metric_filter).filter.numeric_filter  # type: ignore[arg-type]
    assert metric.value.int64_value == 0


@pytest.mark.parametrize(
    ("block", "needle", "message"),
    [
        (
            "dimension_filter: {field: sessionMedium, equals: cpc, contains: pc}",
            "dimension_filter",
            "exactly one operator (found equals, contains)",
        ),
        (
            "dimension_filter: {field: sessionMedium, greater_than: 3}",
            "dimension_filter",
            "`greater_than` belongs in a metric_filter",
        ),
        (
            "dimension_filter: {field: sessionMedium, regex: cpc}",
            "dimension_filter",
            "unknown filter key `regex`",
        ),
        (
            "dimension_filter: {field: sessionMedium, full_regexp: '(cpc'}",
            "dimension_filter",
            "invalid regular expression",
        ),
        (
            "metric_filter: {field: sessions, between: [10, 1]}",
            "metric_filter",
            "`between` low 10 is above high 1",
        ),
        (
            "dimension_filter: {field: sessions, in_list: [1]}",
            "dimension_filter",
            "dimension_filter tests sessions, which this report requests as a metric",
        ),
    ],
)
def test_filter_mistakes_are_located(tmp_path: Path, block: str, needle: str, message: str) -> None:
    text = TRAFFIC + f"    {block}\n"
    (problem,) = _problems(tmp_path, text)
    assert f":{_line(text, needle)} [traffic]: " in problem
    assert message in problem


def test_filter_groups_need_two_items() -> None:
    with pytest.raises(FilterSyntaxError, match="at least 2 filters") as info:
        parse_filter({"or": [{"field": "deviceCategory", "empty": True}]}, "dimension")
    assert info.value.path == ("or",)


# -- the code location -------------------------------------------------------------------------


def test_a_broken_reports_file_stops_the_code_location_from_loading(tmp_path: Path) -> None:
    broken = tmp_path / "defs"
    shutil.copytree(DEFAULT_DEFINITIONS_DIR, broken)
    reports = broken / REPORTS_FILE
    text = reports.read_text(encoding="utf-8").replace(
        "metrics: [sessions, addToCarts", "metrics: [sesions, addToCarts", 1
    )
    reports.write_text(text, encoding="utf-8")
    env = {**os.environ, "KPI_DEFINITIONS_DIR": str(broken)}
    result = subprocess.run(
        [sys.executable, "-c", "import assets.ga4.reports"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode != 0
    assert "GA4ReportsError" in result.stderr
    line = _line(text, "metrics: [sesions")
    assert f"reports.yaml:{line} [ecommerce]: unknown column `sesions`" in result.stderr
