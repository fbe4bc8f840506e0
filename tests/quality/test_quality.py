"""Tests for the ``quality`` package: YAML suites and their validation with GX."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from quality import SuiteError, load_suite, parse_suite, validate_frame
from quality.gx_session import FRAME_SOURCE, gx_context
from quality.suites import Between, ColumnType, NotNull, Unique
from quality.validate import ExpectationOutcome, ValidationReport

KINDS = (
    "between, column_type, columns_present, date_in_partition, freshness, in_set, not_null, "
    "row_count, unique, volume"
)


def suite_of(*expectations: dict[str, Any], name: str = "t") -> Any:
    return parse_suite({"suite": name, "expectations": list(expectations)}, "mem.yaml")


def only(report: ValidationReport) -> ExpectationOutcome:
    assert len(report.outcomes) == 1
    return report.outcomes[0]


def ga4_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-02", "2024-01-02"]),
            "channel_group": ["Organic", "Paid", "Organic", "Organic"],
            "device": ["desktop", "mobile", "desktop", "tablet"],
            "sessions": [10, 0, 7, 3],
            "engaged_sessions": [5, 0, 7, 1],
            "engagement_rate": [0.5, 0.0, 1.0, 1 / 3],
        }
    )


GA4_YAML = """\
suite: ga4_traffic
expectations:
  - {type: columns_present, columns: [date, sessions, engaged_sessions]}
  - {type: not_null, column: date}
  - {type: between, column: sessions, min: 0}
  - {type: between, column: engagement_rate, min: 0, max: 1}
  - {type: unique, columns: [date, channel_group, device]}
  - {type: in_set, column: device, values: [desktop, mobile, tablet]}
  - {type: column_type, column: sessions, dtype: integer}
"""


# --------------------------------------------------------------------------------------
# One violation per expectation type: name, count and exact row positions


VIOLATIONS = [
    pytest.param(
        {"type": "not_null", "column": "a"},
        {"a": [1.0, None, 3.0, np.nan]},
        ("not_null(a)", "expect_column_values_to_not_be_null", 2, [1, 3], [None]),
        id="not_null",
    ),
    pytest.param(
        {"type": "not_null", "column": "s"},
        {"s": ["x", None, "z"]},  # pandas 3 default ``str`` dtype
        ("not_null(s)", "expect_column_values_to_not_be_null", 1, [1], [None]),
        id="not_null-str-dtype",
    ),
    pytest.param(
        {"type": "not_null", "column": "n"},
        {"n": pd.array([1, None, 3], dtype="Int64")},
        ("not_null(n)", "expect_column_values_to_not_be_null", 1, [1], [None]),
        id="not_null-nullable-int",
    ),
    pytest.param(
        {"type": "between", "column": "a", "min": 0},
        {"a": [5, -1, 0, -3]},
        ("between(a, min=0)", "expect_column_values_to_be_between", 2, [1, 3], [-1, -3]),
        id="between-min",
    ),
    pytest.param(
        {"type": "between", "column": "r", "min": 0, "max": 1},
        {"r": [0.5, 1.5, None, -0.1, 1.0]},  # bounds inclusive, nulls are not_null's job
        ("between(r, min=0, max=1)", "expect_column_values_to_be_between", 2, [1, 3], [1.5, -0.1]),
        id="between-min-max",
    ),
    pytest.param(
        {"type": "between", "column": "d", "min": "2024-01-02"},
        {"d": pd.to_datetime(["2024-01-01", "2024-01-02", None, "2023-12-31"])},
        (
            "between(d, min=2024-01-02)",
            "expect_column_values_to_be_between",
            2,
            [0, 3],
            ["2024-01-01T00:00:00", "2023-12-31T00:00:00"],
        ),
        id="between-dates",
    ),
    pytest.param(
        {"type": "in_set", "column": "device", "values": ["desktop", "mobile"]},
        {"device": ["desktop", "tv", "mobile", None, "fax"]},
        ("in_set(device)", "expect_column_values_to_be_in_set", 2, [1, 4], ["tv", "fax"]),
        id="in_set",
    ),
    pytest.param(
        {"type": "unique", "columns": ["id"]},
        {"id": [1, 2, 1, 3]},
        ("unique(id)", "expect_column_values_to_be_unique", 2, [0, 2], [1]),
        id="unique-single",
    ),
    pytest.param(
        {"type": "unique", "columns": ["date", "device"]},
        {"date": ["d1", "d1", "d2", "d1"], "device": ["m", "t", "m", "m"]},
        (
            "unique(date, device)",
            "expect_compound_columns_to_be_unique",
            2,
            [0, 3],
            [{"date": "d1", "device": "m"}],
        ),
        id="unique-compound",
    ),
    pytest.param(
        {"type": "column_type", "column": "v", "dtype": "string", "row_level": True},
        {"v": pd.Series(["a", 1, None, 2.5], dtype=object)},
        ("column_type(v: string)", "expect_column_values_to_be_in_type_list", 2, [1, 3], [1, 2.5]),
        id="column_type-object-values",
    ),
]


@pytest.mark.parametrize(("expectation", "data", "expected"), VIOLATIONS)
def test_violation_reports_name_count_and_rows(
    expectation: dict[str, Any], data: dict[str, Any], expected: tuple
) -> None:
    name, gx_type, count, rows, samples = expected
    report = validate_frame(pd.DataFrame(data), suite_of(expectation))
    outcome = only(report)
    assert (outcome.name, outcome.gx_type, outcome.success) == (name, gx_type, False)
    assert outcome.unexpected_count == count
    assert outcome.failing_rows == rows
    assert outcome.sample_values == samples
    assert outcome.error is None
    assert not report.success
    assert report.failed == [outcome]
    assert report.failing_rows() == {r: [name] for r in rows}


def test_columns_present_is_table_level() -> None:
    suite = suite_of({"type": "columns_present", "columns": ["a", "b", "c", "Sessions"]})
    outcome = only(validate_frame(pd.DataFrame({"a": [1], "sessions": [2]}), suite))
    assert outcome.name == "columns_present(a, b, c, Sessions)"
    assert outcome.gx_type == "expect_table_columns_to_match_set"
    assert not outcome.success
    assert outcome.unexpected_count == 3
    assert sorted(outcome.sample_values) == ["Sessions", "b", "c"]  # GX compares case-sensitively
    assert outcome.failing_rows == [] and outcome.unexpected_percent is None


def test_column_type_checks_dtype_of_typed_columns() -> None:
    suite = suite_of({"type": "column_type", "column": "sessions", "dtype": "integer"})
    outcome = only(validate_frame(pd.DataFrame({"sessions": [1.5, 2.0]}), suite))
    assert not outcome.success
    assert (outcome.unexpected_count, outcome.sample_values) == (1, ["float64"])
    assert outcome.failing_rows == []


@pytest.mark.parametrize(
    ("dtype", "values"),
    [
        ("integer", [1, 2]),
        ("integer", pd.array([1, None], dtype="Int64")),
        ("integer", np.array([1, 2], dtype="int32")),
        ("number", [1.5, None]),
        ("number", [1, 2]),
        ("string", ["a", None]),  # pandas 3 ``str`` dtype
        ("string", pd.Series(["a", None], dtype=object)),
        ("string", pd.array(["a", None], dtype="string")),
        ("date", pd.to_datetime(["2024-01-01", None])),
        ("date", pd.to_datetime(["2024-01-01", None]).tz_localize("UTC")),
        ("date", [dt.date(2024, 1, 1), None]),
        ("boolean", [True, False]),
        ("boolean", pd.array([True, None], dtype="boolean")),
    ],
)
def test_column_type_accepts_matching_dtypes(dtype: str, values: Any) -> None:
    suite = suite_of({"type": "column_type", "column": "c", "dtype": dtype})
    outcome = only(validate_frame(pd.DataFrame({"c": values}), suite))
    assert outcome.success, outcome


# --------------------------------------------------------------------------------------
# Whole reports


def test_clean_frame_passes(tmp_path: Path) -> None:
    path = tmp_path / "ga4.yaml"
    path.write_text(GA4_YAML)
    report = validate_frame(ga4_frame(), load_suite(path))
    assert report.success, report.markdown()
    assert report.suite == "ga4_traffic" and report.row_count == 4
    assert [o.success for o in report.outcomes] == [True] * 7
    assert report.failed == [] and report.failing_rows() == {}
    assert report.success_percent == 100.0
    assert "7/7 expectations passed" in report.markdown()
    assert report.to_metadata()["failed_expectations"] == 0


def test_positions_not_labels_and_frame_untouched() -> None:
    df = pd.DataFrame({"a": [None, 1.0, None], "s": ["x", "y", "x"]}, index=[10, 3, 7])
    df.index.name = "row_id"
    before = df.copy()
    report = validate_frame(
        df, suite_of({"type": "not_null", "column": "a"}, {"type": "unique", "columns": ["s"]})
    )
    assert report.failing_rows() == {
        0: ["not_null(a)", "unique(s)"],
        2: ["not_null(a)", "unique(s)"],
    }
    pd.testing.assert_frame_equal(df, before)


def test_warn_severity_does_not_fail_the_report() -> None:
    suite = suite_of(
        {"type": "not_null", "column": "a"},
        {"type": "between", "column": "a", "max": 1, "severity": "warn"},
    )
    report = validate_frame(pd.DataFrame({"a": [0, 5]}), suite)
    assert report.success
    assert [o.name for o in report.failed] == ["between(a, max=1)"]
    assert report.failed[0].severity == "warn"
    assert report.success_percent == 50.0
    assert report.failing_rows() == {1: ["between(a, max=1)"]}
    meta = report.to_metadata()
    assert (meta["success"], meta["failed_errors"], meta["failed_warnings"]) == (True, 0, 1)


def test_row_level_false_keeps_counts_but_not_rows() -> None:
    suite = suite_of({"type": "not_null", "column": "a", "row_level": False})
    outcome = only(validate_frame(pd.DataFrame({"a": [None, 1.0]}), suite))
    assert (outcome.success, outcome.unexpected_count, outcome.failing_rows) == (False, 1, [])


def test_markdown_and_metadata() -> None:
    df = ga4_frame()
    df.loc[1, "sessions"] = -4
    df.loc[[2, 3], "device"] = ["tv", "fax|x"]
    report = validate_frame(df, parse_suite(_yaml(GA4_YAML), "ga4.yaml"))
    assert not report.success
    md = report.markdown()
    assert "**ga4_traffic** FAILED: 5/7 expectations passed on 4 rows" in md
    assert "| between(sessions, min=0) | error | 1 | -4 |" in md
    assert "| in_set(device) | error | 2 | `tv`, `fax\\|x` |" in md
    meta = report.to_metadata()
    assert json.loads(json.dumps(meta)) == meta
    assert meta["unexpected_counts"] == {"between(sessions, min=0)": 1, "in_set(device)": 2}
    assert (meta["row_count"], meta["failing_row_count"], meta["success_percent"]) == (4, 3, 71.43)


def test_missing_column_is_a_failed_outcome_not_a_crash() -> None:
    suite = suite_of(
        {"type": "not_null", "column": "sessions"}, {"type": "not_null", "column": "x"}
    )
    report = validate_frame(pd.DataFrame({"Sessions": [1], "x": [None]}), suite)
    missing, present = report.outcomes
    assert not missing.success and missing.failing_rows == []
    assert missing.error == "column(s) not in frame: 'sessions' (frame has 'Sessions')"
    assert present.failing_rows == [0]


def test_columns_differing_only_by_case_are_refused() -> None:
    # GX matches column names case-insensitively and would check whichever comes first.
    frame = pd.DataFrame({"i": [1, 2], "I": pd.array([1, None], dtype="Int64")})
    with pytest.raises(ValueError, match="differ only by case"):
        validate_frame(frame, suite_of({"type": "not_null", "column": "I"}))


def test_gx_errors_surface_in_the_outcome() -> None:
    # GX turns a date bound into a date and refuses to compare it with strings.
    suite = suite_of({"type": "between", "column": "d", "min": "2024-01-01"})
    outcome = only(validate_frame(pd.DataFrame({"d": ["2024-01-02"]}), suite))
    assert not outcome.success
    assert outcome.error is not None and "same type" in outcome.error


def test_repeated_calls_do_not_collide_or_leak() -> None:
    """Every call's frame is a batch of one data source: each gets its own frame's result
    (not the batch before it, which has the same batch id), and nothing of it is kept."""
    suite = suite_of({"type": "in_set", "column": "a", "values": [1]})
    first = validate_frame(pd.DataFrame({"a": [1, 2]}), suite)
    second = validate_frame(pd.DataFrame({"a": [3, 1, 1]}), suite)
    other = suite_of({"type": "between", "column": "a", "min": 2, "max": 9}, name="other")
    third = validate_frame(pd.DataFrame({"a": [1, 1, 1, 7]}), other)
    fourth = validate_frame(pd.DataFrame({"a": [1, 1, 1, 7]}), suite)
    assert (first.outcomes[0].failing_rows, second.outcomes[0].failing_rows) == ([1], [0])
    assert (third.outcomes[0].failing_rows, fourth.outcomes[0].failing_rows) == ([0, 1, 2], [3])
    assert list(gx_context().data_sources.all()) == [FRAME_SOURCE]
    # Nor does its execution engine keep a frame or a metric of them: the process would hold
    # every row-level expectation's boolean Series of every frame it validated.
    engine = gx_context().data_sources.get(FRAME_SOURCE).get_execution_engine()
    assert engine._metric_cache == {}
    assert engine.batch_manager.batch_data_cache == {}
    assert engine.batch_manager.batch_cache == {}


def test_great_expectations_is_loaded_on_first_use_and_left_out_of_the_collector() -> None:
    """The GX import makes ~300,000 objects that live as long as the process: it runs
    without the cyclic collector and freezes them (quality.gx_session.great_expectations),
    so the collector's passes later in a run do not rescan them. A fresh interpreter: this
    one has GX loaded."""
    code = """
import gc, json, sys
import pandas as pd
from quality import parse_suite, validate_frame

during = []  # collections that started while GX was being imported


def watch(phase, info):
    gx = sys.modules.get("great_expectations")
    if phase == "start" and gx is not None and not hasattr(gx, "get_context"):
        during.append(info["generation"])


gc.callbacks.append(watch)
assert "great_expectations" not in sys.modules
before = gc.get_freeze_count()
suite = parse_suite({"suite": "t", "expectations": [{"type": "not_null", "column": "a"}]}, "m")
report = validate_frame(pd.DataFrame({"a": [1, None]}), suite)
print(json.dumps([report.outcomes[0].failing_rows, gc.get_freeze_count() - before,
                  gc.isenabled(), during]))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    failing, frozen, enabled, during = json.loads(done.stdout.splitlines()[-1])
    assert failing == [1] and frozen > 100_000 and enabled and during == []


def test_duplicate_names_get_an_index_suffix() -> None:
    suite = suite_of({"type": "not_null", "column": "a"}, {"type": "not_null", "column": "a"})
    assert suite.names() == ["not_null(a)#0", "not_null(a)#1"]
    named = suite_of({"type": "not_null", "column": "a", "name": "date present"})
    assert only(validate_frame(pd.DataFrame({"a": [1]}), named)).name == "date present"


# --------------------------------------------------------------------------------------
# Suite YAML


def _yaml(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def test_load_suite_models_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "ga4.yaml"
    path.write_text(GA4_YAML)
    suite = load_suite(path)
    assert suite.name == "ga4_traffic" and suite.source == str(path)
    kinds = [type(e).__name__ for e in suite.expectations]
    assert kinds == [
        "ColumnsPresent",
        "NotNull",
        "Between",
        "Between",
        "Unique",
        "InSet",
        "ColumnType",
    ]
    assert [e.row_level for e in suite.expectations] == [False, True, True, True, True, True, False]
    assert {e.severity for e in suite.expectations} == {"error"}
    assert suite.expectations[3] == Between(type="between", column="engagement_rate", min=0, max=1)
    assert isinstance(suite.expectations[1], NotNull)
    assert isinstance(suite.expectations[6], ColumnType)
    assert suite.expectations[6].dtype == "integer"
    assert suite.names()[2] == "between(sessions, min=0)"
    single = suite_of({"type": "unique", "column": "id"}).expectations[0]
    assert single == Unique(type="unique", columns=["id"])


def _error(tmp_path: Path, body: str, name: str = "ga4.yaml") -> str:
    (tmp_path / "suites").mkdir(exist_ok=True)
    path = tmp_path / "suites" / name
    path.write_text(body)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    return str(info.value).replace(str(tmp_path) + "/", "")


def test_unknown_type_message(tmp_path: Path) -> None:
    body = GA4_YAML.replace("{type: between, column: engagement_rate", "{type: notnull, column: x")
    assert _error(tmp_path, body) == (
        f"suites/ga4.yaml: expectations[3].type: unknown type 'notnull'; expected one of {KINDS}"
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "{column: a}",
            f"expectations[0].type: required field is missing; expected one of {KINDS}",
        ),
        ("{type: not_null}", "expectations[0].column: required field is missing"),
        (
            "{type: not_null, colum: a}",
            "expectations[0].column: required field is missing\n"
            "suites/ga4.yaml: expectations[0].colum: unknown field 'colum'; "
            "expected only: type, severity, row_level, name, column",
        ),
        (
            "{type: not_null, column: a, severity: fatal}",
            "expectations[0].severity: Input should be 'error' or 'warn'; got 'fatal'",
        ),
        (
            "{type: not_null, column: a, row_level: maybe}",
            "expectations[0].row_level: Input should be a valid boolean; got 'maybe'",
        ),
        ("{type: between, column: a}", "expectations[0]: needs 'min' and/or 'max'"),
        (
            "{type: between, column: a, min: '5'}",
            "expectations[0].min: expected a number or an ISO date/datetime; got '5'",
        ),
        (
            "{type: between, column: a, min: 2, max: 1}",
            "expectations[0]: min 2 is greater than max 1",
        ),
        (
            "{type: in_set, column: a, values: [x, null]}",
            "expectations[0].values[1]: expected a string, number or boolean; got None",
        ),
        (
            "{type: in_set, column: a, values: x}",
            "expectations[0].values: Input should be a valid list; got 'x'",
        ),
        (
            "{type: unique, columns: []}",
            "expectations[0].columns: List should have at least 1 item after validation, "
            "not 0; got []",
        ),
        (
            "{type: column_type, column: a, dtype: int}",
            "expectations[0].dtype: Input should be 'integer', 'number', 'string', 'date' or "
            "'boolean'; got 'int'",
        ),
        (
            "not_null",
            "expectations[0]: expected a mapping like {type: not_null, column: x}; got 'not_null'",
        ),
    ],
)
def test_field_errors_name_file_index_field_and_value(
    tmp_path: Path, entry: str, message: str
) -> None:
    body = f"suite: s\nexpectations:\n  - {entry}\n"
    assert _error(tmp_path, body) == f"suites/ga4.yaml: {message}"


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    body = "suite: ''\nextra: 1\nexpectations:\n  - {type: not_null, column: a}\n  - {type: x}\n"
    assert _error(tmp_path, body).splitlines() == [
        "suites/ga4.yaml: unknown top-level field(s) 'extra'; "
        "expected only: suite, expectations, description",
        "suites/ga4.yaml: suite: expected a non-empty suite name; got ''",
        f"suites/ga4.yaml: expectations[1].type: unknown type 'x'; expected one of {KINDS}",
    ]


def test_duplicate_keys_and_bad_yaml_name_the_line(tmp_path: Path) -> None:
    # The brief's ``{type: column_type, ..., type: integer}`` would silently lose a key.
    body = "suite: s\nexpectations:\n  - {type: column_type, column: a, type: integer}\n"
    assert _error(tmp_path, body) == "suites/ga4.yaml: invalid YAML: duplicate key 'type' (line 3)"
    assert _error(tmp_path, "suite: s\nexpectations: [\n").startswith(
        "suites/ga4.yaml: invalid YAML:"
    )
    assert _error(tmp_path, "- 1\n") == (
        "suites/ga4.yaml: expected a mapping with keys 'suite' and 'expectations'; got [1]"
    )
    assert _error(tmp_path, "suite: s\n") == (
        "suites/ga4.yaml: expectations: expected a non-empty list of expectations; got None"
    )


def test_notes_of_passing_outcomes_show_in_the_markdown() -> None:
    # E.g. a volume check that could not judge some days: it passes, and says why.
    report = ValidationReport(
        "s",
        3,
        [
            ExpectationOutcome(
                "volume(rows)", "volume", True, "error", 0, None, note="2 day(s) not judged"
            ),
            ExpectationOutcome("not_null(a)", "x", False, "error", 1, 33.3, sample_values=[None]),
        ],
        success=False,
    )
    md = report.markdown()
    assert "| not_null(a) | error | 1 | null |" in md
    assert md.endswith("\n- volume(rows): 2 day(s) not judged\n")
    passing = ValidationReport("s", 3, report.outcomes[:1], success=True).markdown()
    assert passing.splitlines() == [
        "**s** passed: 1/1 expectations passed on 3 rows",
        "",
        "- volume(rows): 2 day(s) not judged",
    ]
