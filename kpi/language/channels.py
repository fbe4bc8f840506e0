"""The channel taxonomy (``kpi_definitions/taxonomy/channels.yaml``): ordered, first-match
rules that give a row its channel from its source, medium and campaign (UTM values).

This module is the language: the model, its loading, and the reference semantics in
Python (:meth:`Taxonomy.classify`). ``kpi.compute.channel_sql`` compiles the same rules to
one SQL CASE that runs in the warehouse; the tests hold the two to the same answers, and
the rules in ``kpi.language.rules.channels`` check a taxonomy before any run.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from pydantic import ConfigDict, Field, model_validator

from kpi.language.models import _Strict

TAXONOMY_FILE = Path("taxonomy") / "channels.yaml"
FIELDS = ("source", "medium", "campaign")


class Condition(_Strict):
    """One field's test: exact values, a named list of them, or a regex search."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    values: list[str] | None = Field(None, alias="in")
    in_list: str | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        given = [n for n in ("values", "in_list", "regex") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("a condition is one of `in`, `in_list` or `regex`")
        if self.values is not None and not self.values:
            raise ValueError("`in` lists no value: the condition could never hold")
        return self


class Conditions(_Strict):
    """Conditions on several fields, all of which must hold."""

    source: Condition | None = None
    medium: Condition | None = None
    campaign: Condition | None = None

    def fields(self) -> dict[str, Condition]:
        return {f: c for f in FIELDS if (c := getattr(self, f)) is not None}


class When(Conditions):
    """A rule's conditions, plus ``any``: alternatives, one of which must hold."""

    any: list[Conditions] = Field(default_factory=list)


class ChannelRule(_Strict):
    channel: str = Field(min_length=1)
    when: When = Field(default_factory=When)


class Normalise(_Strict):
    source_aliases: dict[str, str] = Field(default_factory=dict)


class Taxonomy(_Strict):
    dimension: str = "channel"  # the conformed dimension whose values the rules give
    fallback: str = "Unassigned"
    normalise: Normalise = Field(default_factory=Normalise)
    lists: dict[str, list[str]] = Field(default_factory=dict)
    rules: list[ChannelRule]

    @property
    def channels(self) -> list[str]:
        """Every channel a row can get, in rule order, the fallback last."""
        out: list[str] = []
        for rule in self.rules:
            if rule.channel not in out:
                out.append(rule.channel)
        return [*out, self.fallback] if self.fallback not in out else out

    @property
    def fingerprint(self) -> str:
        """A short hash of everything that decides a channel (part of KPI versions)."""
        blob = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def values_of(self, condition: Condition) -> list[str] | None:
        """The exact values a condition accepts (None for a regex)."""
        if condition.values is not None:
            return [normalise(v) for v in condition.values]
        if condition.in_list is not None:
            return [normalise(v) for v in self.lists.get(condition.in_list, [])]
        return None

    def source_value(self, value: str | None) -> str:
        value = normalise(value)
        return normalise(self.normalise.source_aliases.get(value, value)) if value else value

    def holds(self, condition: Condition, value: str) -> bool:
        exact = self.values_of(condition)
        if exact is not None:
            return value in exact
        return re.search(condition.regex or "", value) is not None

    def _all(self, conditions: Conditions, row: dict[str, str]) -> bool:
        return all(self.holds(c, row[f]) for f, c in conditions.fields().items())

    def matches(self, rule: ChannelRule, row: dict[str, str]) -> bool:
        if not self._all(rule.when, row):
            return False
        return not rule.when.any or any(self._all(alt, row) for alt in rule.when.any)

    def classify(self, source: str | None, medium: str | None, campaign: str | None) -> str:
        """The channel of a row: the first rule that matches its normalised values."""
        row = {
            "source": self.source_value(source),
            "medium": normalise(medium),
            "campaign": normalise(campaign),
        }
        for rule in self.rules:
            if self.matches(rule, row):
                return rule.channel
        return self.fallback


def normalise(value: str | None) -> str:
    """A UTM value as the rules read it: lower case, ``+`` and ``%20`` as spaces, trimmed.
    (Exactly what the SQL does: kpi.compute.channel_sql.)"""
    if value is None:
        return ""
    return value.replace("+", " ").replace("%20", " ").strip().lower()
