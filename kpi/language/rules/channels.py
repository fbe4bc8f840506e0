"""The channel taxonomy (kpi_definitions/taxonomy/channels.yaml) is sound: every pattern
runs the same on every warehouse, every list it names exists, every rule can match, and a
source classifying channels has a taxonomy to do it with."""

from __future__ import annotations

import re

from kpi.language.catalog import Catalog
from kpi.language.channels import FIELDS, ChannelRule, Condition, Conditions, Taxonomy
from kpi.language.expressions import did_you_mean
from kpi.language.problems import Problem
from kpi.language.rules.base import Rule

# Syntax some warehouse reads otherwise or not at all (RE2 has no look-arounds or
# back-references; Snowflake's POSIX patterns have no \d \w \s classes).
_NOT_PORTABLE = re.compile(r"\(\?[=!<]|\\[1-9]|\\[dDwWsSbB]")


def _conditions(rule: ChannelRule) -> list[tuple[tuple, Condition]]:
    """Every condition of ``rule`` with its YAML path below the rule."""
    found = [(("when", f), c) for f, c in rule.when.fields().items()]
    for i, alt in enumerate(rule.when.any):
        found += [(("when", "any", i, f), c) for f, c in alt.fields().items()]
    return found


class ChannelPatternRule(Rule):
    """Patterns compile, use only portable syntax, and named lists exist."""

    name = "channel_pattern"

    def check(self, catalog: Catalog) -> list[Problem]:
        taxonomy, loc = catalog.taxonomy, catalog.taxonomy_location
        if taxonomy is None or loc is None:
            return []
        problems = []
        for i, rule in enumerate(taxonomy.rules):
            for path, condition in _conditions(rule):
                file, line = loc.at("rules", i, *path)
                where = f"rule {i + 1} ({rule.channel}), {path[-1]}"
                if condition.regex is not None:
                    try:
                        re.compile(condition.regex)
                    except re.error as exc:
                        problems.append(
                            Problem(
                                file, line, f"{where}: invalid pattern `{condition.regex}`: {exc}"
                            )
                        )
                        continue
                    upper = re.search(r"[A-Z]", re.sub(r"\\.", "", condition.regex))
                    if upper:
                        problems.append(
                            Problem(
                                file,
                                line,
                                f"{where}: pattern `{condition.regex}` has the upper-case "
                                f"`{upper.group()}`, but values are lower-cased before the "
                                "rules read them: write it in lower case",
                            )
                        )
                    bad = _NOT_PORTABLE.search(condition.regex)
                    if bad:
                        problems.append(
                            Problem(
                                file,
                                line,
                                f"{where}: pattern `{condition.regex}` uses `{bad.group()}`, "
                                "which not every warehouse reads alike: no look-arounds, "
                                "back-references or \\d \\w \\s \\b (write [0-9], [a-z0-9_]...)",
                            )
                        )
                if condition.in_list is not None and condition.in_list not in taxonomy.lists:
                    hint = did_you_mean(condition.in_list, taxonomy.lists)
                    problems.append(
                        Problem(file, line, f"{where}: unknown list `{condition.in_list}`{hint}")
                    )
        return problems


def _covers(taxonomy: Taxonomy, earlier: Conditions, later: dict[str, Condition]) -> bool:
    """True when every row meeting ``later``'s conditions meets ``earlier``'s: each field
    ``earlier`` tests, ``later`` pins to exact values that pass that test (or tests the
    same way)."""
    for field, test in earlier.fields().items():
        theirs = later.get(field)
        if theirs is None:
            return False
        if theirs == test:
            continue
        values = taxonomy.values_of(theirs)
        if values is None or not all(taxonomy.holds(test, v) for v in values):
            return False
    return True


def _alternatives(rule: ChannelRule) -> list[dict[str, Condition]]:
    """The rule as OR-ed sets of AND-ed field conditions."""
    base = rule.when.fields()
    if not rule.when.any:
        return [base]
    # An alternative testing a field the rule also tests: both must hold; the later rule's
    # own test is what is compared (a conservative reading: never a false "shadowed").
    return [{**alt.fields(), **base} for alt in rule.when.any]


class ShadowedChannelRule(Rule):
    """A rule an earlier one always matches first can never give its channel."""

    name = "shadowed_channel"

    def check(self, catalog: Catalog) -> list[Problem]:
        taxonomy, loc = catalog.taxonomy, catalog.taxonomy_location
        if taxonomy is None or loc is None:
            return []
        problems = []
        for j, rule in enumerate(taxonomy.rules):
            for i, earlier in enumerate(taxonomy.rules[:j]):
                shadows = all(
                    any(_covers(taxonomy, e, alt) for e in _earlier_alternatives(earlier))
                    for alt in _alternatives(rule)
                )
                if shadows:
                    file, line = loc.at("rules", j)
                    problems.append(
                        Problem(
                            file,
                            line,
                            f"rule {j + 1} ({rule.channel}) can never match: every row it "
                            f"matches is matched first by rule {i + 1} ({earlier.channel}); "
                            "move it above, or narrow the earlier rule",
                        )
                    )
                    break
        return problems


def _earlier_alternatives(rule: ChannelRule) -> list[Conditions]:
    """The earlier rule as conditions any of which, met, matches it."""
    if not rule.when.any:
        return [rule.when]
    return [
        Conditions(**{f: c for f, c in {**alt.fields(), **rule.when.fields()}.items()})
        for alt in rule.when.any
    ]


class ClassifyRule(Rule):
    """A dimension classified by the taxonomy has one, and its columns exist."""

    name = "classify"

    def check(self, catalog: Catalog) -> list[Problem]:
        problems = []
        for name, src in catalog.sources.items():
            for dim, mapping in src.dimensions.items():
                if mapping.classify is None:
                    continue
                loc = catalog.source_locations[name]
                if catalog.taxonomy is None:
                    file, line = loc.at("dimensions", dim, "classify")
                    problems.append(
                        Problem(
                            file,
                            line,
                            f"source `{name}`: `{dim}` is classified by the channel taxonomy, "
                            "but there is no taxonomy/channels.yaml in the definitions",
                        )
                    )
                for field in FIELDS:
                    column = getattr(mapping.classify, field)
                    if column is not None and column not in src.columns:
                        file, line = loc.at("dimensions", dim, "classify", field)
                        hint = did_you_mean(column, list(src.columns))
                        problems.append(
                            Problem(file, line, f"source `{name}`: unknown column `{column}`{hint}")
                        )
        return problems
