"""`kpi validate` checks the quality suites (item 17): known types, known parameters and
columns that exist in the suite's source, each problem with file:line and a did-you-mean."""

from __future__ import annotations

import shutil

import pytest
import yaml

from kpi.cli import main
from kpi.language.catalog import DEFAULT_DEFINITIONS_DIR
from kpi.language.rules.suites import COMMON, EXPECTATIONS

# Each case: a suite file's lines and the problems `kpi validate` must print, as
# (line, fragment) pairs. The folder is a copy of the shipped definitions.
CASES = yaml.safe_load(
    """
unknown_type:
  suite: |
    suite: orders
    expectations:
      - {type: notnull, column: order_id}
  expected: [[3, "unknown type `notnull`: did you mean `not_null`?"]]
misspelled_column:
  suite: |
    suite: orders
    expectations:
      - {type: not_null, column: order_id}
      - {type: between, column: revenu, min: 0}
  expected: [[4, "unknown column `revenu` in source `orders`: did you mean `revenue`?"]]
unknown_parameter_and_column_in_a_list:
  suite: |
    suite: orders
    expectations:
      - {type: between, column: revenue, minimum: 0}
      - {type: unique, columns: [order_id, custmer_id]}
  expected:
    - [3, "`between` takes no `minimum`"]
    - [4, "unknown column `custmer_id` in source `orders`: did you mean `customer_id`?"]
bad_values:
  suite: |
    suite: orders
    expectations:
      - {type: volume, max_drop: 1.5, lookback_days: 3}
      - {type: between, column: revenue, min: 10, max: 0}
      - {type: not_null, column: order_id, severity: fatal}
      - {type: row_count, min: -1}
      - {type: freshness, column: ordered_at, max_lag_days: "two"}
  expected:
    - [3, ".max_drop: `1.5` is not valid; expected a number between 0 and 1"]
    - [3, ".lookback_days: `3` is not valid; expected a whole number >= 7"]
    - [4, "min 10 is greater than max 0"]
    - [5, ".severity: `'fatal'` is not valid; expected one of error, warn"]
    - [6, ".min: `-1` is not valid; expected a whole number >= 0"]
    - [7, ".max_lag_days: `'two'` is not valid; expected a whole number >= 0"]
unknown_source:
  suite: |
    suite: order
    expectations:
      - {type: row_count, min: 1}
  expected: [[1, "`order` is not a source in sources.yaml: did you mean `orders`?"]]
"""
)


@pytest.mark.parametrize("case", sorted(CASES))
def test_suite_problems_are_listed_with_file_and_line(tmp_path, capsys, case):
    folder = tmp_path / "defs"
    shutil.copytree(DEFAULT_DEFINITIONS_DIR, folder)
    path = folder / "quality" / "orders.yaml"
    path.write_text(CASES[case]["suite"])
    assert main(["validate", "--definitions", str(folder)]) == 1
    out = capsys.readouterr().out.splitlines()
    for line, fragment in CASES[case]["expected"]:
        hits = [o for o in out if o.startswith(f"{path}:{line}:") and fragment in o]
        assert len(hits) == 1, (line, fragment, out)
    # Every problem listed, and only these.
    assert len(out) == len(CASES[case]["expected"]), out


def test_shipped_suites_validate(capsys):
    assert main(["validate", "--definitions", str(DEFAULT_DEFINITIONS_DIR)]) == 0


def test_vocabulary_matches_the_quality_models():
    """kpi/ keeps the expectation vocabulary as data; it must be quality.suites' own."""
    from quality.suites import _KINDS

    assert set(EXPECTATIONS) == set(_KINDS)
    for kind, model in _KINDS.items():
        fields = set(model.model_fields)
        # `unique` also accepts `column` (normalised to `columns`).
        assert set(EXPECTATIONS[kind]) | set(COMMON) >= fields, kind
        assert set(EXPECTATIONS[kind]) - {"column"} <= fields, kind


def test_alias_bomb_in_a_suite_is_refused(tmp_path, capsys):
    folder = tmp_path / "defs"
    shutil.copytree(DEFAULT_DEFINITIONS_DIR, folder)
    bomb = "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    (folder / "quality" / "orders.yaml").write_text("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + bomb)
    assert main(["validate", "--definitions", str(folder)]) == 1
    assert "aliases expand" in capsys.readouterr().out


def test_alias_bomb_in_a_suite_is_refused_at_run_time_too(tmp_path):
    """The run's own suite loader (not only `kpi validate`) refuses a bomb with file and line."""
    from quality.suites import SuiteError, load_suite

    bomb = "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    path = tmp_path / "orders.yaml"
    path.write_text("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + bomb)
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    assert f"{path}:" in str(caught.value)
    assert "aliases expand" in str(caught.value)


# One bad value per parameter the kernel checks: kpi validate and the run-time models
# (quality.suites) must both refuse each, so the two vocabularies cannot drift apart.
BAD_VALUES = [
    {"type": "not_null", "column": "order_id", "severity": "fatal"},
    {"type": "not_null", "column": "order_id", "row_level": "yes"},
    {"type": "not_null", "column": ""},
    {"type": "unique", "columns": []},
    {"type": "column_type", "column": "revenue", "dtype": "float"},
    {"type": "in_set", "column": "currency", "values": []},
    {"type": "between", "column": "revenue", "min": "soon"},
    {"type": "between", "column": "revenue", "min": 5, "max": 1},
    {"type": "between", "column": "revenue"},
    {"type": "row_count", "min": -1},
    {"type": "freshness", "column": "ordered_at", "max_lag_days": -1},
    {"type": "volume", "max_drop": 1},
    {"type": "volume", "lookback_days": 6},
    {"type": "volume", "period_days": 29},
    {"type": "volume", "same_weekday": "no"},
]


@pytest.mark.parametrize("bad", BAD_VALUES, ids=lambda bad: ",".join(map(str, bad.values())))
def test_a_bad_value_is_refused_by_validate_and_at_run_time(tmp_path, capsys, bad):
    from quality.suites import SuiteError, parse_suite

    folder = tmp_path / "defs"
    shutil.copytree(DEFAULT_DEFINITIONS_DIR, folder)
    suite = {"suite": "orders", "expectations": [bad]}
    (folder / "quality" / "orders.yaml").write_text(yaml.safe_dump(suite))
    assert main(["validate", "--definitions", str(folder)]) == 1, capsys.readouterr().out
    with pytest.raises(SuiteError):
        parse_suite(suite, "orders.yaml")
