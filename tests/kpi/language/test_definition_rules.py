"""Every definition rule, seen from the author's side: a broken folder, one located problem.

Each test writes a small ``kpi_definitions``-style folder into ``tmp_path`` (a minimal
``sources.yaml`` plus an area file), loads it with ``load_catalog`` and checks that the
``DefinitionError`` names the right file, the right line (computed from the YAML text the
test wrote), the KPI and a message that says what to do.

Tests marked ``xfail(strict=True, reason="BUG: ...")`` pin down a known gap in ``kpi/``: they
start passing (and so fail the suite) as soon as the gap is fixed, and the mark goes.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from kpi.compute.compiler import KpiCompiler
from kpi.language.catalog import DEFAULT_DEFINITIONS_DIR
from kpi.language.loader import load_catalog
from kpi.language.problems import DefinitionError, Problem

# A minimal sources file: a daily source, a timestamped one, a balance and a source that is
# pre-aggregated by month. Tests that need a broken source replace a line of it.
SOURCES = """\
reporting:
  time_zone: Europe/Copenhagen
  currency: EUR
dimensions:
  channel:
    description: marketing channel
  device:
    description: desktop, mobile or tablet
sources:
  traffic:
    table: raw.traffic
    time: {column: date, type: date, time_zone: Europe/Copenhagen}
    columns:
      date: {type: date}
      channel_group: {type: string}
      device_category: {type: string}
      sessions: {type: integer, additivity: additive}
      transactions: {type: integer, additivity: additive}
      users: {type: integer, additivity: non_additive}
    dimensions:
      channel: {column: channel_group}
      device: {column: device_category}
  orders:
    table: raw.orders
    time: {column: ordered_at, type: timestamp, time_zone: UTC}
    columns:
      ordered_at: {type: timestamp}
      customer_id: {type: string}
      channel: {type: string}
      campaign: {type: string}
      revenue: {type: number, additivity: additive}
    dimensions:
      channel: {column: channel}
  balances:
    table: raw.balances
    time: {column: date, type: date, time_zone: Europe/Copenhagen}
    columns:
      date: {type: date}
      balance: {type: number, additivity: semi_additive}
  users_monthly:
    table: raw.users_monthly
    grain: month
    time: {column: month, type: date, time_zone: Europe/Copenhagen}
    columns:
      month: {type: date}
      active_users: {type: integer, additivity: non_additive}
"""


def kpi(kpi_id: str, body: str, *, unit: str = "count", direction: str = "higher_is_better") -> str:
    """One KPI list item with the required management fields and ``body`` below them."""
    head = (
        f"  - id: {kpi_id}\n"
        f"    name: {kpi_id.replace('_', ' ').capitalize()}\n"
        "    description: A KPI written by a test.\n"
        "    owner: tests@example.com\n"
        f"    unit: {unit}\n"
        f"    direction: {direction}\n"
    )
    return head + textwrap.indent(textwrap.dedent(body).strip("\n") + "\n", "    ")


def area(*kpis: str, name: str = "test") -> str:
    """An area file holding ``kpis``."""
    return f"area: {name}\ndescription: Written by a test.\nkpis:\n" + "".join(kpis)


SESSIONS = kpi(
    "sessions",
    """
    type: simple
    measure: {source: traffic, agg: sum, expr: sessions}
    dimensions: [channel, device]
    grains: [day, week, month]
    """,
)
ORDER_REVENUE = kpi(
    "order_revenue",
    """
    type: simple
    measure: {source: orders, agg: sum, expr: revenue}
    dimensions: [channel]
    grains: [day, week, month]
    """,
    unit="currency",
)
MONTHLY_USERS = kpi(
    "monthly_users",
    """
    type: simple
    measure: {source: users_monthly, agg: sum, expr: active_users}
    grains: [month]
    """,
)


def write_definitions(
    tmp_path: Path, files: dict[str, str], *, sources: str | None = SOURCES
) -> Path:
    """A definitions folder with ``sources.yaml`` and ``files`` (name -> YAML text)."""
    folder = tmp_path / "definitions"
    folder.mkdir()
    if sources is not None:
        (folder / "sources.yaml").write_text(sources, encoding="utf-8")
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def line_of(text: str, needle: str, *, after: str | None = None) -> int:
    """The 1-based line of the one line of ``text`` holding ``needle`` (below ``after``)."""
    lines = text.splitlines()
    start = 0
    if after is not None:
        start = line_of(text, after)
    hits = [i + 1 for i, line in enumerate(lines) if i >= start and needle in line]
    assert hits, f"{needle!r} is not in the YAML the test wrote"
    if after is None:
        assert len(hits) == 1, f"{needle!r} is on lines {hits}: make the test YAML unambiguous"
    return hits[0]


def problems_of(folder: Path) -> list[Problem]:
    """Every problem ``load_catalog`` raises for ``folder``."""
    with pytest.raises(DefinitionError) as info:
        load_catalog(folder)
    assert info.value.problems, "DefinitionError without problems"
    return info.value.problems


def shown(problems: list[Problem]) -> str:
    return "\n".join(f"  {p!r}" for p in problems)


def find(problems: list[Problem], *fragments: str) -> Problem:
    """The one problem whose message holds every fragment."""
    hits = [p for p in problems if all(f in p.message for f in fragments)]
    assert len(hits) == 1, f"{len(hits)} problems mention {fragments}:\n{shown(problems)}"
    return hits[0]


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, f"expected one problem, got:\n{shown(problems)}"
    return problems[0]


def assert_at(problem: Problem, file: Path, line: int | None, kpi_id: str | None) -> None:
    assert (Path(problem.file), problem.line, problem.kpi_id) == (file, line, kpi_id), problem


# ---------------------------------------------------------------------------------------------
# Baselines: the shipped folder and the test fixture itself are valid
# ---------------------------------------------------------------------------------------------


def test_shipped_definitions_load_without_problems():
    catalog = load_catalog(DEFAULT_DEFINITIONS_DIR)
    assert len(catalog.kpis) >= 20
    assert {"ga4_traffic", "ad_spend", "orders"} <= set(catalog.sources)
    # Every shipped KPI has a version, i.e. its dependencies resolve.
    assert set(catalog.versions) == set(catalog.kpis)


def test_a_copy_of_the_shipped_sources_with_a_valid_kpi_loads(tmp_path):
    sources = (DEFAULT_DEFINITIONS_DIR / "sources.yaml").read_text(encoding="utf-8")
    visits = kpi("visits", "type: simple\nmeasure: {source: ga4_traffic, agg: sum, expr: sessions}")
    folder = write_definitions(tmp_path, {"web.yaml": area(visits)}, sources=sources)
    assert set(load_catalog(folder).kpis) == {"visits"}


def test_the_fixture_used_below_is_valid(tmp_path):
    balance = kpi(
        "balance",
        "type: simple\nmeasure: {source: balances, agg: last, expr: balance}",
        unit="currency",
    )
    folder = write_definitions(
        tmp_path, {"test.yaml": area(SESSIONS, ORDER_REVENUE, MONTHLY_USERS, balance)}
    )
    catalog = load_catalog(folder)
    # A non-additive column of a pre-aggregated source may be read at that source's grain.
    assert set(catalog.kpis) == {"sessions", "order_revenue", "monthly_users", "balance"}
    assert catalog.kpis["sessions"].area == "test"


def test_every_rule_class_has_its_section_here():
    """A new rule in kpi/language/rules/ comes with a `# <RuleClass>` section of tests here."""
    import importlib
    import pkgutil

    from kpi.language import rules

    classes = set()
    for module in pkgutil.iter_modules(rules.__path__):
        found = vars(importlib.import_module(f"{rules.__name__}.{module.name}"))
        classes |= {
            name
            for name, obj in found.items()
            if isinstance(obj, type)
            and issubclass(obj, rules.Rule)
            and obj is not rules.Rule
            and obj.__module__ == f"{rules.__name__}.{module.name}"
        }
    assert {type(r).__name__ for r in rules.RULES} == classes, "a rule class is not in RULES"
    headers = set(re.findall(r"^# (\w+Rule)$", Path(__file__).read_text(), flags=re.M))
    assert classes <= headers, f"rules without tests: {sorted(classes - headers)}"


# ---------------------------------------------------------------------------------------------
# Shape errors found by the pydantic models
# ---------------------------------------------------------------------------------------------


def test_unknown_field_names_the_field_line_and_the_allowed_fields(tmp_path):
    text = area(
        "  - id: typo\n"
        "    nmae: Typo\n"
        "    description: d\n"
        "    owner: o\n"
        "    unit: count\n"
        "    direction: higher_is_better\n"
        "    type: simple\n"
        "    measure: {source: traffic, agg: sum, expr: sessions}\n"
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problems = problems_of(folder)
    typo = find(problems, "nmae: unknown field")
    assert_at(typo, folder / "test.yaml", line_of(text, "nmae:"), "typo")
    assert "allowed fields here:" in typo.message and " name," in typo.message
    # The field it should have been is missing, reported at the KPI's first line.
    missing = find(problems, "name: Field required")
    assert_at(missing, folder / "test.yaml", line_of(text, "- id: typo"), "typo")
    assert len(problems) == 2, shown(problems)


def test_unknown_field_suggests_the_closest_field(tmp_path):
    text = area(SESSIONS.replace("    name:", "    nmae:"))
    folder = write_definitions(tmp_path, {"test.yaml": text})
    typo = find(problems_of(folder), "nmae: unknown field")
    assert "did you mean `name`?" in typo.message


def test_unknown_field_inside_a_measure_lists_the_measure_fields(tmp_path):
    text = area(
        kpi(
            "visits",
            """
            type: simple
            measure:
              source: traffic
              agg: sum
              exprr: sessions
            """,
        )
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "exprr:"), "visits")
    assert problem.message == (
        "measure.exprr: unknown field: did you mean `expr`?; "
        "allowed fields here: agg, expr, filter, source"
    )


def test_bad_enum_value_lists_the_allowed_values(tmp_path):
    text = area(SESSIONS.replace("direction: higher_is_better", "direction: up"))
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "direction: up"), "sessions")
    assert problem.message.startswith("direction: Input should be 'higher_is_better'")
    assert "'within_band'" in problem.message and "(got 'up')" in problem.message


@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [
        ("min_sample_size: many", "min_sample_size: Input should be a valid integer"),
        ("grains: month", "grains: Input should be a valid list"),
        ("tags: {a: 1}", "tags: Input should be a valid list"),
    ],
)
def test_wrong_type_names_the_field_and_the_expected_type(tmp_path, bad_line, expected):
    text = area(SESSIONS.replace("    grains: [day, week, month]\n", f"    {bad_line}\n"))
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, bad_line), "sessions")
    assert problem.message.startswith(expected), problem.message


def test_bad_kpi_id_is_rejected(tmp_path):
    text = area(SESSIONS.replace("id: sessions", "id: Web Sessions"))
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "id: Web Sessions"), "Web Sessions")
    assert problem.message.startswith("id: String should match pattern")


def test_file_that_is_not_an_area_with_kpis(tmp_path):
    folder = write_definitions(tmp_path, {"test.yaml": "area: test\nkpi:\n  - id: x\n"})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", 1, None)
    assert problem.message == "expected a mapping with `area` and `kpis`"


def test_missing_sources_file(tmp_path):
    folder = write_definitions(tmp_path, {"test.yaml": area(SESSIONS)}, sources=None)
    problem = only(problems_of(folder))
    assert_at(problem, folder / "sources.yaml", None, None)
    assert "missing" in problem.message


# ---------------------------------------------------------------------------------------------
# YAML itself
# ---------------------------------------------------------------------------------------------

BROKEN_YAML = area(SESSIONS) + "  - id: broken\n    name: [Broken\n    owner: o\n"


def test_invalid_yaml_is_reported_with_its_file(tmp_path):
    folder = write_definitions(tmp_path, {"test.yaml": BROKEN_YAML})
    problem = only(problems_of(folder))
    assert Path(problem.file) == folder / "test.yaml"
    assert problem.message.startswith("invalid YAML:"), problem.message


def test_invalid_yaml_reports_the_line(tmp_path):
    folder = write_definitions(tmp_path, {"test.yaml": BROKEN_YAML})
    problem = only(problems_of(folder))
    # PyYAML notices the unclosed `[` at the next key, one line below it.
    assert problem.line in {
        line_of(BROKEN_YAML, "name: [Broken"),
        line_of(BROKEN_YAML, "owner: o", after="name: [Broken"),
    }


def test_duplicate_key_in_a_mapping_is_reported(tmp_path):
    text = area(
        SESSIONS.replace(
            "    grains: [day, week, month]\n",
            "    grains: [day, week, month]\n    grains: [month]\n",
        )
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = find(problems_of(folder), "duplicate")
    assert_at(problem, folder / "test.yaml", line_of(text, "grains: [month]"), "sessions")


# ---------------------------------------------------------------------------------------------
# SourceDeclarationRule
# ---------------------------------------------------------------------------------------------


def test_unknown_time_column_of_a_source(tmp_path):
    sources = SOURCES.replace(
        "time: {column: ordered_at, type: timestamp, time_zone: UTC}",
        "time: {column: order_at, type: timestamp, time_zone: UTC}",
    )
    folder = write_definitions(tmp_path, {"test.yaml": area(SESSIONS)}, sources=sources)
    problem = only(problems_of(folder))
    assert_at(problem, folder / "sources.yaml", line_of(sources, "column: order_at"), None)
    assert problem.message == (
        "source `orders`: unknown time column `order_at`: did you mean `ordered_at`?"
    )


@pytest.mark.parametrize("column", ["_cube_day", "_CUBE_dim_channel"])
def test_a_source_column_named_as_the_cubes_name_theirs_is_refused(tmp_path, column):
    sources = SOURCES.replace(
        "      campaign: {type: string}\n",
        f"      campaign: {{type: string}}\n      {column}: {{type: date}}\n",
    )
    folder = write_definitions(tmp_path, {"test.yaml": area(SESSIONS)}, sources=sources)
    problem = only(problems_of(folder))
    assert_at(problem, folder / "sources.yaml", line_of(sources, f"{column}: {{type"), None)
    assert problem.message == (
        f"source `orders`: column `{column}`: names starting with `_cube_` are reserved for "
        "the engine's daily cubes; rename the column"
    )


def test_source_maps_a_dimension_that_is_not_conformed(tmp_path):
    sources = SOURCES.replace(
        "      channel: {column: channel}\n", "      chanel: {column: channel}\n"
    )
    folder = write_definitions(tmp_path, {"test.yaml": area(SESSIONS)}, sources=sources)
    problem = only(problems_of(folder))
    assert_at(problem, folder / "sources.yaml", line_of(sources, "chanel: {column"), None)
    assert problem.message == (
        "source `orders`: `chanel` is not a conformed dimension: did you mean `channel`?"
    )


def test_source_dimension_mapped_to_an_unknown_column(tmp_path):
    sources = SOURCES.replace("device: {column: device_category}", "device: {column: device_cat}")
    folder = write_definitions(tmp_path, {"test.yaml": area(SESSIONS)}, sources=sources)
    problem = only(problems_of(folder))
    assert_at(problem, folder / "sources.yaml", line_of(sources, "device_cat}"), None)
    assert problem.message == (
        "source `traffic`: unknown column `device_cat`: did you mean `device_category`?"
    )


def test_unknown_source_time_zone(tmp_path):
    sources = SOURCES.replace(
        "time: {column: ordered_at, type: timestamp, time_zone: UTC}",
        "time: {column: ordered_at, type: timestamp, time_zone: Mars/Olympus}",
    )
    folder = write_definitions(tmp_path, {"test.yaml": area(SESSIONS)}, sources=sources)
    problem = only(problems_of(folder))
    assert_at(problem, folder / "sources.yaml", line_of(sources, "Mars/Olympus"), None)
    assert problem.message == "unknown time zone `Mars/Olympus`"


def test_date_source_in_another_time_zone_than_reporting(tmp_path):
    sources = SOURCES.replace(
        "  balances:\n    table: raw.balances\n"
        "    time: {column: date, type: date, time_zone: Europe/Copenhagen}\n",
        "  balances:\n    table: raw.balances\n"
        "    time:\n      column: date\n      type: date\n      time_zone: America/New_York\n",
    )
    folder = write_definitions(tmp_path, {"test.yaml": area(SESSIONS)}, sources=sources)
    problem = only(problems_of(folder))
    assert_at(problem, folder / "sources.yaml", line_of(sources, "America/New_York"), None)
    assert problem.message.startswith(
        "source `balances` has calendar dates in America/New_York, but reporting is in "
        "Europe/Copenhagen: a date cannot be moved to another zone"
    )


def test_timestamp_source_in_another_time_zone_is_fine(tmp_path):
    # `orders` is a UTC timestamp source under a Europe/Copenhagen reporting zone.
    folder = write_definitions(tmp_path, {"test.yaml": area(ORDER_REVENUE)})
    assert set(load_catalog(folder).kpis) == {"order_revenue"}


def test_unknown_reporting_time_zone(tmp_path):
    sources = SOURCES.replace("  time_zone: Europe/Copenhagen\n", "  time_zone: Europe/Copenhagn\n")
    # Date sources would now also differ from the reporting zone; keep that out of the way.
    sources = sources.replace("time_zone: Europe/Copenhagen}", "time_zone: Europe/Copenhagn}")
    folder = write_definitions(tmp_path, {"test.yaml": area(SESSIONS)}, sources=sources)
    problems = problems_of(folder)
    problem = find(problems, "unknown reporting time zone `Europe/Copenhagn`")
    assert Path(problem.file) == folder / "sources.yaml"
    assert problem.line == line_of(sources, "  time_zone: Europe/Copenhagn")


def test_unknown_reporting_time_zone_without_sources_is_a_problem_not_a_crash(tmp_path):
    sources = "reporting: {time_zone: Nope/Zone}\ndimensions: {}\nsources: {}\n"
    folder = write_definitions(tmp_path, {}, sources=sources)
    problem = only(problems_of(folder))
    assert_at(problem, folder / "sources.yaml", 1, None)
    assert problem.message.startswith("unknown reporting time zone `Nope/Zone`; expected an IANA")


def test_currency_conversion_of_an_unknown_column(tmp_path):
    sources = SOURCES.replace(
        "  orders:\n    table: raw.orders\n",
        "  orders:\n    table: raw.orders\n    currency_conversion: {amount: revenu}\n",
    )
    folder = write_definitions(tmp_path, {"test.yaml": area(SESSIONS)}, sources=sources)
    problem = find(problems_of(folder), "`revenu`")
    assert_at(problem, folder / "sources.yaml", line_of(sources, "amount: revenu"), None)
    assert "did you mean `revenue`?" in problem.message


# ---------------------------------------------------------------------------------------------
# UnknownSourceRule
# ---------------------------------------------------------------------------------------------


def test_unknown_source(tmp_path):
    text = area(
        kpi(
            "visits",
            """
            type: simple
            measure:
              source: trafic
              agg: sum
              expr: sessions
            """,
        )
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "source: trafic"), "visits")
    assert problem.message == "measure: unknown source `trafic`: did you mean `traffic`?"


# ---------------------------------------------------------------------------------------------
# UnionSourceRule
# ---------------------------------------------------------------------------------------------

_UNION = """\
  all_orders:
    table: raw.all_orders
    union_of: [orders, shop_orders]
    time: {column: ordered_at, type: timestamp, time_zone: UTC}
    columns:
      ordered_at: {type: timestamp}
      revenue: {type: number, additivity: additive}
      channel: {type: integer}
      coupon: {type: string}
"""


def test_a_union_source_names_every_member_problem_and_column_mismatch(tmp_path):
    sources = SOURCES + _UNION
    folder = write_definitions(tmp_path, {"test.yaml": area(SESSIONS)}, sources=sources)
    found = sorted((p.line, p.message) for p in problems_of(folder))
    assert found == [
        (
            line_of(sources, "union_of: [orders, shop_orders]"),
            "source `all_orders`: unknown member source `shop_orders`: did you mean `orders`?",
        ),
        (
            line_of(sources, "channel: {type: integer}"),
            "source `all_orders`: column `channel` is a integer, but a string in member `orders`",
        ),
        (
            line_of(sources, "coupon: {type: string}"),
            "source `all_orders`: no member has column `coupon` (members: orders)",
        ),
    ]


def test_a_union_source_over_sources_of_the_same_shape_is_accepted(tmp_path):
    sources = SOURCES + _UNION.replace("shop_orders", "orders").replace(
        "      channel: {type: integer}\n      coupon: {type: string}\n",
        "      channel: {type: string}\n",
    )
    folder = write_definitions(tmp_path, {"test.yaml": area(SESSIONS)}, sources=sources)
    assert "all_orders" in load_catalog(folder).sources


# ---------------------------------------------------------------------------------------------
# ClaimedConversionsRule
# ---------------------------------------------------------------------------------------------

_ADS = """\
  ads:
    table: raw.ads
    time: {column: date, type: date, time_zone: Europe/Copenhagen}
    columns:
      date: {type: date}
      platform: {type: string}
      cost: {type: number, additivity: additive}
      claimed: {type: number, additivity: additive, claimed_by: platform}
"""


def test_claimed_conversions_summed_across_platforms_are_refused_with_the_fix(tmp_path):
    body = "type: simple\nmeasure: {source: ads, agg: sum, expr: %s%s}"
    summed = kpi("all_claims", body % ("claimed", ""))
    in_expr = kpi("claims_plus", body % ("claimed * 2", ""))
    pinned = kpi("google_claims", body % ("claimed", ", filter: \"platform = 'google_ads'\""))
    spend = kpi("spend", body % ("cost", ""))
    reconciling = kpi("per_order", "reconciles_claims: true\n" + body % ("claimed", ""))
    files = {"test.yaml": area(summed, in_expr, pinned, spend, reconciling)}
    folder = write_definitions(tmp_path, files, sources=SOURCES + _ADS)
    found = sorted((p.kpi_id, p.message) for p in problems_of(folder))
    fix = (
        "sums `claimed`, which each platform claims by its own attribution (several claim "
        "the same order): keep one platform (filter: \"platform = '...'\"), use observed "
        "conversions (orders, GA4 key events), or declare `reconciles_claims: true` on a KPI "
        "that sets the claims against them"
    )
    assert found == [("all_claims", f"measure: {fix}"), ("claims_plus", f"measure: {fix}")]


# ---------------------------------------------------------------------------------------------
# ChannelPatternRule
# ---------------------------------------------------------------------------------------------

_TAXONOMY = """\
lists:
  search_sites: [google, bing]
rules:
  - channel: Paid Search
    when:
      source: {in_list: search_sites}
      medium: {regex: "^(cpc|ppc)$"}
  - channel: Email
    when:
      medium: {in: [email]}
"""


def _taxonomy_problems(tmp_path, taxonomy: str) -> list[Problem]:
    files = {"test.yaml": area(SESSIONS), "taxonomy/channels.yaml": taxonomy}
    return problems_of(write_definitions(tmp_path, files))


def test_a_bad_or_unportable_pattern_and_an_unknown_list_are_each_refused(tmp_path):
    taxonomy = (
        _TAXONOMY
        + """\
  - channel: Broken
    when:
      campaign: {regex: "(unclosed"}
  - channel: Lookahead
    when:
      campaign: {regex: "^(?!brand)"}
  - channel: Digits
    when:
      campaign: {regex: 'q\\d'}
  - channel: Social
    when:
      source: {in_list: socal_sites}
  - channel: Shouting
    when:
      campaign: {regex: "^Brand"}
"""
    )
    found = [(p.line, p.message) for p in _taxonomy_problems(tmp_path, taxonomy)]
    assert found == [
        (
            line_of(taxonomy, "(unclosed"),
            "rule 3 (Broken), campaign: invalid pattern `(unclosed`: missing ), unterminated "
            "subpattern at position 0",
        ),
        (
            line_of(taxonomy, "^(?!brand)"),
            "rule 4 (Lookahead), campaign: pattern `^(?!brand)` uses `(?!`, which not every "
            "warehouse reads alike: no look-arounds, back-references or \\d \\w \\s \\b (write "
            "[0-9], [a-z0-9_]...)",
        ),
        (
            line_of(taxonomy, "q\\d"),
            "rule 5 (Digits), campaign: pattern `q\\d` uses `\\d`, which not every warehouse "
            "reads alike: no look-arounds, back-references or \\d \\w \\s \\b (write [0-9], "
            "[a-z0-9_]...)",
        ),
        (
            line_of(taxonomy, "socal_sites"),
            "rule 6 (Social), source: unknown list `socal_sites`: did you mean `search_sites`?",
        ),
        (
            line_of(taxonomy, "^Brand"),
            "rule 7 (Shouting), campaign: pattern `^Brand` has the upper-case `B`, but values "
            "are lower-cased before the rules read them: write it in lower case",
        ),
    ]


# ---------------------------------------------------------------------------------------------
# ShadowedChannelRule
# ---------------------------------------------------------------------------------------------


def test_a_rule_an_earlier_one_always_matches_first_is_refused(tmp_path):
    taxonomy = (
        _TAXONOMY
        + """\
  - channel: Google Ads
    when:
      source: {in: [google]}
      medium: {in: [cpc]}
  - channel: Bing organic
    when:
      source: {in: [bing]}
      medium: {in: [organic]}
  - channel: Everything
  - channel: Never
    when:
      medium: {in: [sms]}
"""
    )
    found = [(p.line, p.message) for p in _taxonomy_problems(tmp_path, taxonomy)]
    assert found == [
        (
            line_of(taxonomy, "channel: Google Ads"),
            "rule 3 (Google Ads) can never match: every row it matches is matched first by "
            "rule 1 (Paid Search); move it above, or narrow the earlier rule",
        ),
        (
            line_of(taxonomy, "channel: Never"),
            "rule 6 (Never) can never match: every row it matches is matched first by rule 5 "
            "(Everything); move it above, or narrow the earlier rule",
        ),
    ]  # Bing organic is reachable: rule 1 wants cpc or ppc


# ---------------------------------------------------------------------------------------------
# ClassifyRule
# ---------------------------------------------------------------------------------------------


def test_a_classified_dimension_needs_its_columns(tmp_path):
    sources = SOURCES.replace(
        "      channel: {column: channel_group}\n",
        "      channel:\n        column: channel_group\n"
        "        classify: {source: utm_source, medium: channel_group}\n",
    )
    folder = write_definitions(tmp_path, {"test.yaml": area(SESSIONS)}, sources=sources)
    found = [(p.line, p.message) for p in problems_of(folder)]
    # Without a taxonomy of its own the folder uses the shipped one: only the column is wrong.
    assert found == [
        (
            line_of(sources, "classify: {source: utm_source"),
            "source `traffic`: unknown column `utm_source`",
        ),
    ]


# ---------------------------------------------------------------------------------------------
# ExpressionRule
# ---------------------------------------------------------------------------------------------


def test_unknown_column_in_expr(tmp_path):
    text = area(
        kpi(
            "visits",
            """
            type: simple
            measure:
              source: traffic
              agg: sum
              expr: sesions
            """,
        )
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "expr: sesions"), "visits")
    assert problem.message == (
        "measure.expr: unknown column `sesions` in source `traffic`: did you mean `sessions`?"
    )


def test_unknown_column_in_filter(tmp_path):
    text = area(
        kpi(
            "mobile_visits",
            """
            type: simple
            measure:
              source: traffic
              agg: sum
              expr: sessions
              filter: device_categry == 'mobile'
            """,
        )
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "filter:"), "mobile_visits")
    assert problem.message == (
        "measure.filter: unknown column `device_categry` in source `traffic`: "
        "did you mean `device_category`?"
    )


def test_filter_may_use_a_conformed_dimension_the_source_maps(tmp_path):
    text = area(
        kpi(
            "paid_visits",
            """
            type: simple
            measure:
              source: traffic
              agg: sum
              expr: sessions
              filter: "channel in ('Paid Search', 'Paid Social')"
            """,
        )
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    assert set(load_catalog(folder).kpis) == {"paid_visits"}


def test_one_value_in_list_written_like_sql(tmp_path):
    text = area(
        kpi(
            "paid_visits",
            """
            type: simple
            measure: {source: traffic, agg: sum, expr: sessions, filter: "channel in ('Paid')"}
            """,
        )
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    assert set(load_catalog(folder).kpis) == {"paid_visits"}


def test_unknown_column_in_the_shipped_sources_suggests_sessions(tmp_path):
    sources = (DEFAULT_DEFINITIONS_DIR / "sources.yaml").read_text(encoding="utf-8")
    text = area(
        kpi(
            "visits",
            """
            type: ratio
            numerator: {source: ga4_traffic, agg: sum, expr: engaged_sessions}
            denominator:
              source: ga4_traffic
              agg: sum
              expr: sesions
            """,
            unit="percent",
        )
    )
    folder = write_definitions(tmp_path, {"web.yaml": text}, sources=sources)
    problem = only(problems_of(folder))
    assert_at(problem, folder / "web.yaml", line_of(text, "expr: sesions"), "visits")
    assert problem.message == (
        "denominator.expr: unknown column `sesions` in source `ga4_traffic`: "
        "did you mean `sessions`?"
    )


def test_summing_measure_without_expr(tmp_path):
    text = area(kpi("visits", "type: simple\nmeasure: {source: traffic, agg: sum}"))
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "measure:"), "visits")
    assert problem.message == "measure: `sum` needs an `expr`"


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("exec(sessions)", "function `exec` is not allowed; allowed: abs, coalesce,"),
        ("__import__('os')", "function `__import__` is not allowed"),
        ("sessions.__class__", "Attribute is not allowed here"),
        ("sessions[0]", "Subscript is not allowed here"),
        ("lambda: sessions", "Lambda is not allowed here"),
        ("sessions +", "cannot parse `sessions +`"),
        ("coalesec(sessions, 0)", "function `coalesec` is not allowed: did you mean `coalesce`?"),
    ],
)
def test_disallowed_or_broken_measure_expression(tmp_path, expr, expected):
    text = area(
        kpi(
            "visits",
            f"""
            type: simple
            measure:
              source: traffic
              agg: sum
              expr: "{expr}"
            """,
        )
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "expr:"), "visits")
    assert problem.message.startswith("measure.expr: "), problem.message
    assert expected in problem.message


def test_equals_sign_inside_a_string_literal_is_kept(tmp_path):
    text = area(
        kpi(
            "tagged_revenue",
            """
            type: simple
            measure:
              source: orders
              agg: sum
              expr: revenue
              filter: "campaign = 'utm=spring' or campaign <> 'a<>b'"
            """,
            unit="currency",
        )
    )
    catalog = load_catalog(write_definitions(tmp_path, {"test.yaml": text}))
    sql = str(
        KpiCompiler(catalog)
        .compile("tagged_revenue", "month")
        .compile(compile_kwargs={"literal_binds": True})
    )
    assert "'utm=spring'" in sql and "'a<>b'" in sql


# ---------------------------------------------------------------------------------------------
# ZeroDenominatorRule
# (each constant zero it finds is tested in tests/kpi/language/test_definition_safety.py)
# ---------------------------------------------------------------------------------------------


def test_constant_zero_denominator_is_reported_between_expression_and_type_problems(tmp_path):
    # The order of the problems is the order of RULES: an unknown column (ExpressionRule), then
    # the constant zero (ZeroDenominatorRule), then a field of the wrong type (KpiTypeFieldsRule).
    per_nothing = kpi(
        "per_nothing",
        """
        type: ratio
        numerator: {source: orders, agg: sum, expr: revenu}
        denominator: {source: orders, agg: sum, expr: 1 - 1}
        expr: stray
        """,
        unit="ratio",
    )
    text = area(per_nothing)
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problems = problems_of(folder)
    messages = [p.message for p in problems]
    unknown = messages.index(find(problems, "unknown column `revenu`").message)
    zero = messages.index(find(problems, "is always zero").message)
    stray = messages.index(find(problems, "`expr` does not belong").message)
    assert unknown < zero < stray, messages
    assert_at(problems[zero], folder / "test.yaml", line_of(text, "expr: 1 - 1}"), "per_nothing")


# ---------------------------------------------------------------------------------------------
# KpiTypeFieldsRule
# ---------------------------------------------------------------------------------------------


def test_ratio_without_denominator(tmp_path):
    text = area(
        kpi(
            "rate",
            """
            type: ratio
            numerator: {source: traffic, agg: sum, expr: transactions}
            """,
            unit="percent",
        )
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "type: ratio"), "rate")
    assert problem.message == "a ratio KPI needs `denominator`"


def test_field_that_does_not_belong_to_the_kpi_type(tmp_path):
    text = area(
        kpi(
            "visits",
            """
            type: simple
            measure: {source: traffic, agg: sum, expr: sessions}
            expr: sessions * 2
            """,
        )
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "expr: sessions * 2"), "visits")
    assert problem.message == "`expr` does not belong to a simple KPI (it takes measure)"


# ---------------------------------------------------------------------------------------------
# KpiReferenceRule
# ---------------------------------------------------------------------------------------------


def test_unknown_kpi_in_a_derived_expr(tmp_path):
    text = area(
        SESSIONS,
        kpi("double_visits", "type: derived\nexpr: 2 * sesions\ngrains: [day, week, month]"),
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "expr: 2 * sesions"), "double_visits")
    assert problem.message == "unknown KPI `sesions`: did you mean `sessions`?"


def test_disallowed_function_in_a_derived_expr(tmp_path):
    text = area(SESSIONS, kpi("evil", "type: derived\nexpr: exec(sessions)"))
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "expr: exec(sessions)"), "evil")
    assert problem.message.startswith("expr: `exec(sessions)`: function `exec` is not allowed")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("type: cumulative\ncumulative:\n  of: sesions\n  to_date: month", "of: sesions"),
        ("type: period_over_period\nperiod_over_period:\n  of: sesions", "of: sesions"),
    ],
)
def test_unknown_kpi_in_cumulative_and_period_over_period(tmp_path, body, needle):
    text = area(SESSIONS, kpi("follow_up", body))
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, needle), "follow_up")
    assert problem.message == "unknown KPI `sesions`: did you mean `sessions`?"


# ---------------------------------------------------------------------------------------------
# CycleRule
# ---------------------------------------------------------------------------------------------


def test_cycle_between_derived_kpis_is_reported_once(tmp_path):
    text = area(
        kpi("a", "type: derived\nexpr: b + 1"),
        kpi("b", "type: derived\nexpr: a * 2"),
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "- id: a"), "a")
    assert problem.message == "cycle between KPIs: a -> b -> a"


def test_kpi_computed_from_itself(tmp_path):
    text = area(kpi("a", "type: cumulative\ncumulative: {of: a, window_days: 7}"))
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "- id: a"), "a")
    assert problem.message == "cycle between KPIs: a -> a"


# ---------------------------------------------------------------------------------------------
# AdditivityRule
# ---------------------------------------------------------------------------------------------


def test_non_additive_measure_summed(tmp_path):
    text = area(
        kpi(
            "users",
            """
            type: simple
            measure:
              source: traffic
              agg: sum
              expr: users
            """,
        )
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "agg: sum"), "users")
    assert problem.message.startswith(
        "measure: `users` is non-additive in `traffic` and cannot be rolled up by sum; "
        "use count_distinct"
    )


def test_non_additive_column_of_a_monthly_source_summed_at_daily_grains(tmp_path):
    text = area(MONTHLY_USERS.replace("grains: [month]", "grains: [month, quarter]"))
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problems = problems_of(folder)
    problem = find(problems, "non-additive")
    assert_at(problem, folder / "test.yaml", line_of(text, "measure:"), "monthly_users")
    # ... and the grain rule says why too.
    find(problems, "pre-aggregated by month")


def test_semi_additive_measure_summed(tmp_path):
    text = area(
        kpi(
            "balance",
            """
            type: simple
            measure:
              source: balances
              agg: sum
              expr: balance
            """,
            unit="currency",
        )
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "agg: sum"), "balance")
    assert (
        problem.message
        == "measure: `balance` is semi-additive (a balance): use agg `last`, not sum"
    )


# ---------------------------------------------------------------------------------------------
# GrainRule
# ---------------------------------------------------------------------------------------------


def users_per_session(grains: str) -> str:
    """A ratio of a monthly source over a daily one."""
    return area(
        kpi(
            "users_per_session",
            f"""
            type: ratio
            numerator: {{source: users_monthly, agg: max, expr: active_users}}
            denominator: {{source: traffic, agg: sum, expr: sessions}}
            grains: {grains}
            """,
            unit="ratio",
        )
    )


def test_ratio_sides_from_sources_at_different_grains(tmp_path):
    text = users_per_session("[day, week, month]")
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "grains:"), "users_per_session")
    for fragment in ("numerator", "`users_monthly`", "pre-aggregated by month", "day, week"):
        assert fragment in problem.message, problem.message
    assert "ratio" in problem.message, "the message should say why a ratio cannot mix grains"


def test_ratio_sides_from_different_grains_at_a_grain_both_answer(tmp_path):
    text = users_per_session("[month]")
    folder = write_definitions(tmp_path, {"test.yaml": text})
    assert set(load_catalog(folder).kpis) == {"users_per_session"}


def test_kpi_at_a_grain_its_pre_aggregated_source_cannot_answer(tmp_path):
    text = area(
        kpi(
            "peak_users",
            """
            type: simple
            measure: {source: users_monthly, agg: max, expr: active_users}
            grains: [week, month, quarter]
            """,
        )
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "grains:"), "peak_users")
    for fragment in ("`users_monthly`", "pre-aggregated by month", "week, quarter"):
        assert fragment in problem.message, problem.message


def test_derived_kpi_at_a_grain_its_pre_aggregated_dependency_cannot_answer(tmp_path):
    text = area(
        MONTHLY_USERS,
        kpi("users_k", "type: derived\nexpr: monthly_users / 1000\ngrains: [day, month]"),
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "grains: [day, month]"), "users_k")
    assert "`monthly_users`" in problem.message and "grain day" in problem.message


# ---------------------------------------------------------------------------------------------
# DimensionRule
# ---------------------------------------------------------------------------------------------


def test_unknown_dimension(tmp_path):
    text = area(
        kpi(
            "visits",
            """
            type: simple
            measure: {source: traffic, agg: sum, expr: sessions}
            dimensions:
              - device
              - chanel
            """,
        )
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "- chanel"), "visits")
    assert problem.message == "unknown dimension `chanel`: did you mean `channel`?"


def test_dimension_a_source_does_not_map(tmp_path):
    text = area(
        kpi(
            "revenue",
            """
            type: simple
            measure: {source: orders, agg: sum, expr: revenue}
            dimensions:
              - channel
              - device
            """,
            unit="currency",
        )
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "- device"), "revenue")
    assert problem.message == "source `orders` does not map dimension `device`"


def test_dimension_a_source_of_a_dependency_does_not_map(tmp_path):
    text = area(
        SESSIONS,
        ORDER_REVENUE,
        kpi(
            "revenue_per_session",
            "type: derived\nexpr: order_revenue / sessions\ndimensions: [device]",
            unit="currency",
        ),
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(
        problem, folder / "test.yaml", line_of(text, "dimensions: [device]"), "revenue_per_session"
    )
    assert problem.message == "source `orders` does not map dimension `device`"


# ---------------------------------------------------------------------------------------------
# EngineColumnNameRule
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["status", "Value", "day", "s0_total", "orders__m1_total", "_cube_day"]
)
def test_a_dimension_named_like_an_engine_column_is_refused_at_load(tmp_path, name):
    # kpi_comparisons has a `status` column beside the dimension columns, a cube a `day`
    # and numbered measure columns: a dimension of such a name loaded, then failed its
    # first refresh with a duplicate column.
    sources = SOURCES.replace("  device:\n    description", f"  {name}:\n    description")
    sources = sources.replace(
        "device: {column: device_category}", f"{name}: {{column: device_category}}"
    )
    visits = kpi("visits", "type: simple\nmeasure: {source: traffic, agg: sum, expr: sessions}")
    folder = write_definitions(tmp_path, {"test.yaml": area(visits)}, sources=sources)
    problem = only(problems_of(folder))
    line = line_of(sources, f"  {name}:", after="description: marketing channel")
    assert_at(problem, folder / "sources.yaml", line, None)
    assert problem.message.startswith(
        f"dimension `{name}`: the KPI tables already have a column of that name"
    )
    # The suggested name is one the rule accepts.
    suggested = problem.message.rsplit("e.g. `", 1)[1].rstrip("`")
    assert suggested == ("day_name" if name == "_cube_day" else f"{name}_name")
    renamed = sources.replace(f"{name}:", f"{suggested}:")
    (tmp_path / "renamed").mkdir()
    folder = write_definitions(tmp_path / "renamed", {"test.yaml": area(visits)}, sources=renamed)
    assert suggested in load_catalog(folder).dimensions


def test_a_dimension_that_only_contains_an_engine_name_loads(tmp_path):
    sources = SOURCES.replace("  device:\n    description", "  status_code:\n    description")
    sources = sources.replace(
        "device: {column: device_category}", "status_code: {column: device_category}"
    )
    visits = kpi(
        "visits",
        "type: simple\nmeasure: {source: traffic, agg: sum, expr: sessions}\n"
        "dimensions: [status_code]",
    )
    folder = write_definitions(tmp_path, {"test.yaml": area(visits)}, sources=sources)
    assert "status_code" in load_catalog(folder).dimensions


# ---------------------------------------------------------------------------------------------
# CumulativeRule
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        "{of: sessions, window_days: 28, to_date: month}",
        "{of: sessions, window: all_time, to_date: month}",
        "{of: sessions}",
    ],
    ids=["both", "all_time_and_to_date", "neither"],
)
def test_cumulative_needs_exactly_one_window(tmp_path, settings):
    text = area(SESSIONS, kpi("sessions_cumulative", f"type: cumulative\ncumulative: {settings}"))
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "cumulative: {"), "sessions_cumulative")
    assert problem.message == (
        "a cumulative KPI takes exactly one of `to_date` (month, quarter, year), "
        "`window_days` (7, 28, 90) and `window` (all_time)"
    )


def test_an_unknown_cumulative_window_is_refused_at_its_line(tmp_path):
    body = "type: cumulative\ncumulative:\n  of: sessions\n  window: forever"
    text = area(SESSIONS, kpi("sessions_cumulative", body))
    folder = write_definitions(tmp_path, {"test.yaml": text})
    found = problems_of(folder)
    assert any(
        p.line == line_of(text, "window: forever") and "all_time" in p.message for p in found
    ), [(p.line, p.message) for p in found]


def test_to_date_kpi_at_a_coarser_grain(tmp_path):
    text = area(
        SESSIONS.replace("grains: [day, week, month]", "grains: [day, month, quarter]"),
        kpi(
            "sessions_mtd",
            "type: cumulative\ncumulative: {of: sessions, to_date: month}\n"
            "grains: [day, month, quarter]",
        ),
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    line = line_of(text, "grains: [day, month, quarter]", after="- id: sessions_mtd")
    assert_at(problem, folder / "test.yaml", line, "sessions_mtd")
    assert problem.message == "month-to-date cannot be reported at a grain coarser than month"


# ---------------------------------------------------------------------------------------------
# TargetRule
# ---------------------------------------------------------------------------------------------


def with_target(target: str, *, unit: str = "count", direction: str = "higher_is_better") -> str:
    """``SESSIONS`` with a block-style ``target`` mapping written from ``target``."""
    body = (
        "type: simple\nmeasure: {source: traffic, agg: sum, expr: sessions}\n"
        "grains: [day, week, month]\ntarget:\n" + textwrap.indent(target.strip("\n"), "  ")
    )
    return area(kpi("visits", body, unit=unit, direction=direction))


def test_target_unit_differs_from_the_kpi_unit(tmp_path):
    text = with_target("value: 0.5\nunit: percent\ngrain: month")
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "unit: percent"), "visits")
    assert problem.message == "target unit `percent` does not match the KPI's unit `count`"


def test_target_currency_differs_from_the_reporting_currency(tmp_path):
    text = with_target("value: 100\ncurrency: USD", unit="currency")
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "currency: USD"), "visits")
    assert problem.message == "target currency USD differs from the KPI's EUR"


def test_within_band_kpi_without_a_band(tmp_path):
    text = with_target("value: 100\ngrain: month", direction="within_band")
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "target:"), "visits")
    assert problem.message == "a within_band KPI needs a target `band`"


def test_target_without_a_value(tmp_path):
    text = with_target("grain: month\nphasing: linear")
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "target:"), "visits")
    assert problem.message == "target needs a `value` or `per_period` values"


def test_target_grain_the_kpi_is_not_reported_at(tmp_path):
    text = with_target("value: 100\ngrain: quarter")
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "grain: quarter"), "visits")
    assert problem.message == (
        "target grain `quarter` is not one of the KPI's grains (day, week, month)"
    )


def test_thresholds_in_the_wrong_order(tmp_path):
    text = area(
        SESSIONS.replace(
            "    grains: [day, week, month]\n",
            "    grains: [day, week, month]\n"
            "    thresholds:\n      at_risk_below: 0.8\n      off_track_below: 0.9\n",
        )
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "thresholds:"), "sessions")
    assert problem.message == "off_track_below must not be above at_risk_below"


def test_benchmark_with_both_a_value_and_a_band(tmp_path):
    text = area(
        SESSIONS
        + "    benchmark:\n      value: 3\n      band: {min: 1, max: 5}\n      source: a study\n"
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "benchmark:"), "sessions")
    assert problem.message == "a benchmark takes a `value` or a `band`"


def test_band_with_min_above_max(tmp_path):
    text = with_target("band: {min: 40000, max: 30000}\ngrain: month", direction="within_band")
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "band: {min: 40000"), "visits")
    assert "min" in problem.message and "max" in problem.message


# ---------------------------------------------------------------------------------------------
# SeasonalPhasingRule
# ---------------------------------------------------------------------------------------------


def test_seasonal_phasing_of_a_rate_is_rejected(tmp_path):
    rate = kpi(
        "conversion_rate",
        """
        type: ratio
        numerator: {source: traffic, agg: sum, expr: transactions}
        denominator: {source: traffic, agg: sum, expr: sessions}
        grains: [day, week, month]
        target:
          value: 0.02
          phasing: seasonal
        """,
        unit="percent",
    )
    text = area(rate)
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "phasing: seasonal"), "conversion_rate")
    assert problem.message == (
        "seasonal phasing spreads a target over days, but `conversion_rate` does not add up "
        "over days (a rate, an average or a distinct count keeps its target at every grain): "
        "use linear or per_period"
    )


def test_seasonal_phasing_of_an_average_and_of_a_running_total_of_one(tmp_path):
    average = kpi(
        "average_order",
        """
        type: simple
        measure: {source: orders, agg: average, expr: revenue}
        grains: [day, month]
        target: {value: 70, phasing: seasonal}
        """,
        unit="currency",
    )
    running = kpi(
        "running_average_order",
        """
        type: cumulative
        cumulative: {of: average_order, to_date: month}
        grains: [day, month]
        target: {value: 70, phasing: seasonal}
        """,
        unit="currency",
    )
    text = area(average, running)
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problems = problems_of(folder)
    assert len(problems) == 2, shown(problems)
    for kpi_id in ("average_order", "running_average_order"):
        problem = next(p for p in problems if p.kpi_id == kpi_id)
        line = line_of(text, "phasing: seasonal", after=f"id: {kpi_id}")
        assert_at(problem, folder / "test.yaml", line, kpi_id)
        assert "`average_order` does not add up over days" in problem.message


def test_seasonal_phasing_needs_daily_values(tmp_path):
    weekly = kpi(
        "weekly_sessions",
        """
        type: simple
        measure: {source: traffic, agg: sum, expr: sessions}
        grains: [week, month]
        target: {value: 1000, phasing: seasonal}
        """,
    )
    text = area(weekly)
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "phasing: seasonal"), "weekly_sessions")
    assert problem.message == (
        "seasonal phasing reads last year's daily values of `weekly_sessions`, which is not "
        "reported by day: add `day` to its grains"
    )


def test_seasonal_phasing_of_a_sum_and_of_its_running_total_is_fine(tmp_path):
    running = kpi(
        "sessions_mtd",
        """
        type: cumulative
        cumulative: {of: sessions, to_date: month}
        grains: [day, month]
        target: {value: 1000, phasing: seasonal}
        """,
    )
    sessions = SESSIONS.replace(
        "    grains: [day, week, month]\n",
        "    grains: [day, week, month]\n    target: {value: 1000, phasing: seasonal}\n",
    )
    folder = write_definitions(tmp_path, {"test.yaml": area(sessions, running)})
    assert set(load_catalog(folder).kpis) == {"sessions", "sessions_mtd"}


# ---------------------------------------------------------------------------------------------
# GoalDeadlineRule
# ---------------------------------------------------------------------------------------------


def test_deadline_on_a_running_total_is_rejected(tmp_path):
    running = kpi(
        "sessions_ytd",
        """
        type: cumulative
        cumulative: {of: sessions, to_date: month}
        grains: [day, month]
        target:
          value: 1000
          deadline: 2026-12-31
        """,
    )
    text = area(SESSIONS, running)
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "deadline: 2026-12-31"), "sessions_ytd")
    assert problem.message == (
        "a running total cannot be projected to a deadline: put the deadline on `sessions`, "
        "the KPI it accumulates"
    )


def test_deadline_on_a_sum_or_a_rate_is_fine(tmp_path):
    sessions = SESSIONS.replace(
        "    grains: [day, week, month]\n",
        "    grains: [day, week, month]\n    target: {value: 1000, deadline: 2026-12-31}\n",
    )
    folder = write_definitions(tmp_path, {"test.yaml": area(sessions)})
    assert load_catalog(folder).kpis["sessions"].target.deadline.isoformat() == "2026-12-31"


# ---------------------------------------------------------------------------------------------
# Loader: duplicates, and all problems at once
# ---------------------------------------------------------------------------------------------


def test_duplicate_kpi_id_across_two_files(tmp_path):
    marketing = area(SESSIONS, name="marketing")
    sales = area(ORDER_REVENUE, SESSIONS, name="sales")
    folder = write_definitions(tmp_path, {"marketing.yaml": marketing, "sales.yaml": sales})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "sales.yaml", line_of(sales, "- id: sessions"), "sessions")
    first = f"{folder / 'marketing.yaml'}:{line_of(marketing, '- id: sessions')}"
    assert problem.message == f"duplicate KPI id; first defined at {first}"


def test_every_problem_is_reported_at_once(tmp_path):
    sources = SOURCES.replace("device: {column: device_category}", "device: {column: device_cat}")
    marketing = area(
        SESSIONS,
        kpi("visits", "type: simple\nmeasure: {source: trafic, agg: sum, expr: sessions}"),
        kpi("engaged", "type: simple\nmeasure: {source: traffic, agg: sum, expr: sesions}"),
        kpi("users", "type: simple\nmeasure: {source: traffic, agg: sum, expr: users}"),
        kpi("loop_a", "type: derived\nexpr: loop_b"),
        kpi("loop_b", "type: derived\nexpr: loop_a"),
        kpi("pointy", "type: simple\nmeasure: {source: traffic, agg: sum, expr: sessions}")
        + "    dimensions: [chanel]\n",
        name="marketing",
    )
    sales = area(
        SESSIONS.replace("direction: higher_is_better", "direction: up").replace(
            "id: sessions", "id: shaped"
        ),
        ORDER_REVENUE,
        SESSIONS,
        kpi("mtd", "type: cumulative\ncumulative: {of: order_revenue}"),
        kpi("wrong_unit", "type: simple\nmeasure: {source: orders, agg: count}")
        + "    target: {value: 0.1, unit: percent}\n",
        name="sales",
    )
    folder = write_definitions(
        tmp_path,
        {"marketing.yaml": marketing, "sales.yaml": sales, "zz_broken.yaml": "kpis: [\n"},
        sources=sources,
    )
    problems = problems_of(folder)
    got = {(Path(p.file).name, p.line, p.kpi_id) for p in problems}
    expected = {
        ("sources.yaml", line_of(sources, "device_cat}"), None),
        ("marketing.yaml", line_of(marketing, "source: trafic"), "visits"),
        ("marketing.yaml", line_of(marketing, "expr: sesions"), "engaged"),
        ("marketing.yaml", line_of(marketing, "expr: users"), "users"),
        ("marketing.yaml", line_of(marketing, "- id: loop_a"), "loop_a"),
        ("marketing.yaml", line_of(marketing, "[chanel]"), "pointy"),
        ("sales.yaml", line_of(sales, "direction: up"), "shaped"),
        ("sales.yaml", line_of(sales, "- id: sessions"), "sessions"),
        ("sales.yaml", line_of(sales, "{of: order_revenue}"), "mtd"),
        ("sales.yaml", line_of(sales, "unit: percent"), "wrong_unit"),
    }
    assert expected <= got, f"missing {expected - got}; got:\n{shown(problems)}"
    broken = [p for p in problems if Path(p.file).name == "zz_broken.yaml"]
    assert len(broken) == 1 and broken[0].message.startswith("invalid YAML")
    assert len(problems) == len(expected) + 1, shown(problems)
    # The error message itself lists them all, one per line.
    with pytest.raises(DefinitionError, match=r"^11 problem\(s\) in the KPI definitions:\n"):
        load_catalog(folder)


# ---------------------------------------------------------------------------------------------
# Definition versions
# ---------------------------------------------------------------------------------------------


def test_definition_version_changes_with_the_formula(tmp_path):
    folder = write_definitions(tmp_path, {"test.yaml": area(ORDER_REVENUE)})
    before = load_catalog(folder).versions["order_revenue"]
    text = area(ORDER_REVENUE.replace("expr: revenue}", "expr: revenue * 2}"))
    (folder / "test.yaml").write_text(text, encoding="utf-8")
    assert load_catalog(folder).versions["order_revenue"] != before


def test_definition_version_ignores_source_descriptions(tmp_path):
    folder = write_definitions(tmp_path, {"test.yaml": area(ORDER_REVENUE)})
    before = load_catalog(folder).versions["order_revenue"]
    sources = SOURCES.replace(
        "  orders:\n    table: raw.orders\n",
        "  orders:\n    table: raw.orders\n    description: Orders from the web shop\n",
    )
    (folder / "sources.yaml").write_text(sources, encoding="utf-8")
    assert load_catalog(folder).versions["order_revenue"] == before


# ---------------------------------------------------------------------------------------------
# AlertRulesRule
# ---------------------------------------------------------------------------------------------


def test_alert_rule_that_cannot_fire_is_located(tmp_path):
    # A status rule needs a target to hold the KPI against, and a grain the KPI has.
    text = area(
        SESSIONS.replace(
            "    grains: [day, week, month]\n",
            "    grains: [day, week, month]\n"
            "    alerts:\n"
            "      - {rule: status_change, to: off_track, grain: quarter, cooldown: 1d}\n",
        )
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problems = problems_of(folder)
    assert problems, "an alert rule that can never fire must be a problem"
    for problem in problems:
        assert_at(problem, folder / "test.yaml", problem.line, "sessions")
        assert problem.line >= line_of(text, "alerts:")
    messages = " ".join(p.message for p in problems)
    assert "quarter" in messages
    assert "target" in messages


def test_alert_status_is_one_a_status_change_can_reach(tmp_path):
    # `to` takes on_track, at_risk or off_track (the default); the other statuses are refused
    # with the three allowed values, at the line of `to`.
    def with_alerts(*rules: str) -> str:
        lines = "".join(f"      - {rule}\n" for rule in rules)
        target = "    target: {value: 100, grain: month}\n"
        return area(
            SESSIONS.replace(
                "    grains: [day, week, month]\n",
                f"    grains: [day, week, month]\n{target}    alerts:\n{lines}",
            )
        )

    for sub in ("good", "no_target", "offtrack"):
        (tmp_path / sub).mkdir()
    text = with_alerts("{rule: status_change, to: at_risk}", "{rule: status_change}")
    good = load_catalog(write_definitions(tmp_path / "good", {"test.yaml": text}))
    rules = good.kpis["sessions"].alerts
    assert [r.to_status for r in rules] == ["at_risk", "off_track"]
    assert [r.label for r in rules] == [
        "status_change:month:at_risk",
        "status_change:month:off_track",
    ]
    for wrong in ("no_target", "offtrack"):
        text = with_alerts(f"{{rule: status_change, to: {wrong}}}")
        folder = write_definitions(tmp_path / wrong, {"test.yaml": text})
        problem = only(problems_of(folder))
        assert_at(problem, folder / "test.yaml", line_of(text, f"to: {wrong}"), "sessions")
        assert problem.message == (
            f"alerts.0.to: Input should be 'on_track', 'at_risk' or 'off_track' (got '{wrong}')"
        )


# ---------------------------------------------------------------------------------------------
# FileSourceDeclarationRule
# (each mistake it finds is tested in tests/ingest/test_files_declarations.py)
# ---------------------------------------------------------------------------------------------


def test_file_source_rule_runs_when_definitions_load(tmp_path):
    import shutil

    from kpi.language.catalog import DEFAULT_DEFINITIONS_DIR

    folder = tmp_path / "defs"
    shutil.copytree(DEFAULT_DEFINITIONS_DIR, folder)
    sources = folder / "sources.yaml"
    text = sources.read_text().replace("    key: [shift_id]", "    key: [shift]", 1)
    sources.write_text(text)
    problem = find(problems_of(folder), "key column `shift` is not declared")
    assert_at(problem, sources, line_of(text, "key: [shift]"), None)


# ---------------------------------------------------------------------------------------------
# ShiftedGrowthRule
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", ["7 days", "4 weeks", "1 month", "2 months", "1 day"])
def test_a_fixed_offset_is_accepted(tmp_path, offset):
    body = f"type: period_over_period\nperiod_over_period: {{of: sessions, offset: {offset}}}"
    text = area(SESSIONS, kpi("sessions_growth", body))
    load_catalog(write_definitions(tmp_path, {"test.yaml": text}))  # no DefinitionError


@pytest.mark.parametrize("offset", ["7 fortnights", "last_week", "0 days", "-7 days"])
def test_an_unknown_offset_is_refused_at_its_line(tmp_path, offset):
    body = f"type: period_over_period\nperiod_over_period:\n  of: sessions\n  offset: {offset}"
    text = area(SESSIONS, kpi("sessions_growth", body))
    found = problems_of(write_definitions(tmp_path, {"test.yaml": text}))
    assert [p.line for p in found] == [line_of(text, f"offset: {offset}")], found
    assert "7 days" in found[0].message or "itself" in found[0].message


def test_a_fixed_offset_of_a_running_total_is_refused(tmp_path):
    running = kpi("sessions_mtd", "type: cumulative\ncumulative: {of: sessions, to_date: month}")
    body = "type: period_over_period\nperiod_over_period: {of: sessions_mtd, offset: 7 days}"
    text = area(SESSIONS, running, kpi("mtd_growth", body))
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert problem.message == (
        "offset `7 days` cannot shift the running total `sessions_mtd`: use previous_period "
        "or same_period_last_year"
    )


# ---------------------------------------------------------------------------------------------
# GrowthInputRule
# ---------------------------------------------------------------------------------------------

GROWTH = kpi(
    "sessions_growth",
    "type: period_over_period\nperiod_over_period: {of: sessions, offset: previous_period}",
)


@pytest.mark.parametrize(
    ("field", "body"),
    [
        (
            "period_over_period",
            "type: period_over_period\n"
            "period_over_period: {of: sessions_growth, offset: previous_period}",
        ),
        ("cumulative", "type: cumulative\ncumulative: {of: sessions_growth, to_date: month}"),
        ("expr", "type: derived\nexpr: sessions_growth * 100"),
    ],
)
def test_a_growth_as_the_input_of_another_kpi_is_refused_at_its_line(tmp_path, field, body):
    # Evaluated over an earlier or running window, the growth would still compare with the
    # period before the current one: a wrong number, so refused until windows compose.
    text = area(SESSIONS, GROWTH, kpi("on_growth", body))
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    line = line_of(text, f"{field}:", after="id: on_growth")
    assert_at(problem, folder / "test.yaml", line, "on_growth")
    assert problem.message == (
        "`sessions_growth` is a growth (period_over_period), which cannot be the input of "
        "another KPI yet: build this KPI from `sessions` instead"
    )


def test_a_growth_of_a_plain_kpi_is_accepted(tmp_path):
    load_catalog(write_definitions(tmp_path, {"test.yaml": area(SESSIONS, GROWTH)}))


# ---------------------------------------------------------------------------------------------
# DisplayFormatRule
# ---------------------------------------------------------------------------------------------


def test_a_format_no_reader_can_render_is_refused_with_its_line(tmp_path):
    body = 'type: simple\nmeasure: {source: orders, agg: count}\nformat: "%s"'
    broken = kpi("broken_format", body % "0.##")
    percent = kpi("percent_of_count", body % "0.0%")
    fine = kpi("fine_format", body % "€#,##0.00")
    text = area(broken, percent, fine)
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problems = problems_of(folder)
    bad = find(problems, "format '0.##' is not [prefix][+]digits[.decimals][%][suffix]")
    assert_at(bad, folder / "test.yaml", line_of(text, 'format: "0.##"'), "broken_format")
    scaled = find(problems, "format '0.0%' shows a percentage, but the KPI's unit is count")
    assert_at(scaled, folder / "test.yaml", line_of(text, 'format: "0.0%"'), "percent_of_count")
    assert len(problems) == 2, shown(problems)
