"""File source declarations in sources.yaml: ``required``, ``allowed`` and keys, checked by
``kpi.language.rules.file_sources.FileSourceRule`` with the file and line of each mistake."""

from __future__ import annotations

import re
import shutil

import pytest

from kpi.language.catalog import DEFAULT_DEFINITIONS_DIR
from kpi.language.loader import collect_catalog, load_catalog
from kpi.language.models import ColumnSpec
from kpi.language.rules.file_sources import FileSourceRule


def test_the_shipped_declarations_pass():
    catalog = load_catalog()
    assert FileSourceRule().check(catalog) == []
    files = {n: s for n, s in catalog.sources.items() if s.landing}
    assert all(s.key for s in files.values())
    assert catalog.sources["ad_spend"].columns["channel"].allowed == ("search", "social", "display")


def test_load_rules_do_not_change_definition_versions(tmp_path):
    """``required``/``allowed`` decide whether a file loads, not what a KPI computes."""
    assert ColumnSpec(type="string", required=True, allowed=["a"]).model_dump() == {
        "type": "string",
        "description": "",
        "additivity": None,
    }
    folder = tmp_path / "definitions"
    shutil.copytree(DEFAULT_DEFINITIONS_DIR, folder)
    sources = folder / "sources.yaml"
    text = sources.read_text()
    stripped = re.sub(r", (required: (true|false)|allowed: \[[^\]]*\])", "", text)
    assert "allowed:" not in stripped and "required:" not in stripped
    sources.write_text(stripped)
    assert load_catalog(folder).versions == load_catalog().versions


def broken(tmp_path, old: str, new: str, at: str):
    """The shipped definitions with ``old`` changed to ``new`` in sources.yaml: the rule's
    problems, the file, and the line of the (unique) line of text containing ``at``."""
    folder = tmp_path / "definitions"
    shutil.copytree(DEFAULT_DEFINITIONS_DIR, folder)
    path = folder / "sources.yaml"
    text = path.read_text()
    assert text.count(old) == 1, old
    text = text.replace(old, new)
    path.write_text(text)
    catalog, _ = collect_catalog(folder)
    (line,) = [i for i, t in enumerate(text.splitlines(), 1) if at in t]
    return [(p.file, p.line, p.message) for p in FileSourceRule().check(catalog)], str(path), line


@pytest.mark.parametrize(
    ("old", "new", "at", "message"),
    [
        (
            "      csat_score: {type: integer}",
            "      csat_score: {type: integer, allowed: ['1', '2']}",
            "csat_score: {type: integer, allowed: ['1', '2']}",
            "source `survey_answers`: `csat_score`: `allowed` values are for string columns, "
            "not integer; use a quality check (between) for ranges",
        ),
        (
            "      team: {type: string}",
            "      team: {type: string, required: false}",
            "team: {type: string, required: false}",
            "source `operations`: `team` is a key column and cannot be optional",
        ),
        (
            "      activity: {type: string}",
            "      activity: {type: string, allowed: []}",
            "activity: {type: string, allowed: []}",
            "source `volunteer_hours`: `activity`: an empty `allowed` list refuses every value",
        ),
        (
            "      activity: {type: string}",
            "      activity: {type: string, allowed: [events, events]}",
            "activity: {type: string, allowed: [events, events]}",
            "source `volunteer_hours`: `activity`: `allowed` lists events more than once",
        ),
        (
            "    key: [shift_id]",
            "    key: [shift]",
            "key: [shift]",
            "source `volunteer_hours`: key column `shift` is not declared: did you mean "
            "`shift_id`?",
        ),
        (
            "    key: [month]\n    columns:\n      month: {type: date, description: first day",
            "    key: []\n    columns:\n      month: {type: date, description: first day",
            "    landing: market",
            "source `market`: a file source needs a `key`: re-delivered files replace rows by "
            "their key, without one every delivery adds its rows again",
        ),
    ],
    ids=[
        "allowed-on-integer",
        "optional-key",
        "empty-allowed",
        "repeated",
        "unknown-key",
        "no-key",
    ],
)
def test_each_mistake_is_located(tmp_path, old, new, at, message):
    problems, path, line = broken(tmp_path, old, new, at)
    assert problems == [(path, line, message)]
