"""A frame validated before in the process is not handed to GX again (quality.validated):
only when everything GX sees is the same, and then with GX's own result."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from quality import parse_suite, validate_frame
from quality import validated as validated_module
from quality.validate import VALIDATED, ValidationReport
from tests.ingest.test_files_loading import AD_HEADER, AD_ROWS, FIXTURE_DAYS, load, write_landing

D = dt.date
PARTITION = (D(2026, 1, 5), D(2026, 1, 6))
SUITE = parse_suite(
    {
        "suite": "t",
        "expectations": [
            {"type": "columns_present", "columns": ["at", "channel", "n"]},
            {"type": "not_null", "column": "channel"},
            {"type": "between", "column": "n", "min": 0, "severity": "warn"},
            {"type": "in_set", "column": "channel", "values": ["search", "social"]},
            {"type": "unique", "columns": ["at", "channel"]},
            {"type": "date_in_partition", "column": "at"},
            {"type": "column_type", "column": "x", "dtype": "number"},
        ],
    },
    "mem.yaml",
)


def loaded() -> pd.DataFrame:
    """Rows as a loader types them (one fails ``between``, a warning: it stays)."""
    return pd.DataFrame(
        {
            "at": pd.to_datetime(
                ["2026-01-05 08:00", "2026-01-05 09:30", "2026-01-06 23:00"]
            ).tz_localize("UTC"),
            "channel": pd.Series(["search", "social", "search"], dtype=object),
            "n": pd.Series([3, -1, 7], dtype="Int64"),
            "x": pd.Series([1.5, 2.0, 0.25], dtype="float64"),
        }
    )


def read_back() -> pd.DataFrame:
    """The same rows as the warehouse hands them back: numpy integers, the zone's other
    name, pandas' ``str`` strings, the table's column order."""
    frame = loaded()
    frame["at"] = frame["at"].dt.tz_convert("Etc/UTC")
    frame["channel"] = frame["channel"].astype("str")
    frame["n"] = frame["n"].astype("int64")
    return frame[["x", "n", "channel", "at"]]


def fresh(frame: pd.DataFrame, partition=PARTITION) -> ValidationReport:
    VALIDATED.clear()
    report = validate_frame(frame, SUITE, partition, "Europe/Copenhagen")
    VALIDATED.clear()
    return report


def test_the_same_rows_read_back_are_served_with_gx_s_own_result() -> None:
    first = validate_frame(loaded(), SUITE, PARTITION, "Europe/Copenhagen")
    assert VALIDATED.hits == 0
    again = validate_frame(read_back(), SUITE, PARTITION, "Europe/Copenhagen")
    assert VALIDATED.hits == 1
    assert again == first == fresh(read_back())
    between = next(o for o in again.outcomes if o.gx_type.endswith("be_between") and o.row_level)
    assert (between.failing_rows, between.sample_values) == ([1], [-1])


def _value_changed(f: pd.DataFrame) -> pd.DataFrame:
    f = f.copy()
    f.loc[2, "n"] = 8
    return f


def _rows_swapped(f: pd.DataFrame) -> pd.DataFrame:
    return f.iloc[[1, 0, 2]].reset_index(drop=True)


def _typed_column_other_dtype(f: pd.DataFrame) -> pd.DataFrame:
    f = f.copy()
    f["x"] = f["x"].astype("Float64")  # `column_type` reads it: its dtype is what GX checks
    return f


def _other_zone(f: pd.DataFrame) -> pd.DataFrame:
    f = f.copy()
    f["at"] = f["at"].dt.tz_convert("Europe/Copenhagen")
    return f


def _naive(f: pd.DataFrame) -> pd.DataFrame:
    f = f.copy()
    f["at"] = f["at"].dt.tz_localize(None)
    return f


def _column_added(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(extra=1)


CHANGES: list[Callable[[pd.DataFrame], pd.DataFrame]] = [
    _value_changed,
    _rows_swapped,
    _typed_column_other_dtype,
    _other_zone,
    _naive,
    _column_added,
]


@pytest.mark.parametrize("change", CHANGES, ids=[c.__name__.strip("_") for c in CHANGES])
def test_anything_gx_could_see_differently_is_validated_again(change) -> None:
    validate_frame(loaded(), SUITE, PARTITION, "Europe/Copenhagen")
    changed = change(loaded())
    report = validate_frame(changed, SUITE, PARTITION, "Europe/Copenhagen")
    assert VALIDATED.hits == 0
    assert report == fresh(changed)


def _served(first: pd.DataFrame, second: pd.DataFrame, suite) -> bool:
    VALIDATED.clear()
    validate_frame(first, suite)
    validate_frame(second, suite)
    return VALIDATED.hits == 1


EQUAL_BUT_NOT_THE_SAME = {
    # Python calls these equal (1 == 1.0 == True); GX's sample values and types do not.
    "int, float, bool": [pd.Series([1, 5], dtype=object), pd.Series([1.0, 5], dtype=object)],
    "bool, int": [pd.Series([True, 5], dtype=object), pd.Series([1, 5], dtype=object)],
    "None, NaN, NA": [
        pd.Series([None, 5], dtype=object),
        pd.Series([np.nan, 5], dtype=object),
        pd.Series([pd.NA, 5], dtype=object),
    ],
    "-0.0, 0.0": [pd.Series([-0.0, 5.0]), pd.Series([0.0, 5.0])],
    "text, date": [
        pd.Series(["2026-01-05", 5], dtype=object),
        pd.Series([D(2026, 1, 5), 5], dtype=object),
    ],
    # The same widened value; GX compares float32 at its own width.
    "float32, float64": [
        pd.Series([1.1, 5.0], dtype="float32"),
        pd.Series([float(np.float32(1.1)), 5.0], dtype="float64"),
    ],
    # In an object column GX judges each value's type: np.int64 is no int, np.True_ no bool.
    "numpy, Python scalars": [
        pd.Series([np.int64(1), 5], dtype=object),
        pd.Series([1, 5], dtype=object),
        pd.Series([np.True_, 5], dtype=object),
        pd.Series([True, 5], dtype=object),
    ],
    "timestamp units": [
        pd.Series(pd.to_datetime(["2026-01-05", "2026-01-06"])).astype("datetime64[ns]"),
        pd.Series(pd.to_datetime(["2026-01-05", "2026-01-06"])).astype("datetime64[us]"),
    ],
}


@pytest.mark.parametrize("variants", EQUAL_BUT_NOT_THE_SAME.values(), ids=EQUAL_BUT_NOT_THE_SAME)
def test_values_python_calls_equal_are_not_the_same_input(variants) -> None:
    suite = parse_suite(
        {"suite": "v", "expectations": [{"type": "not_null", "column": "a"}]}, "mem.yaml"
    )
    frames = [pd.DataFrame({"a": v}) for v in variants]
    for a in frames:
        for b in frames:
            assert _served(a, b, suite) == (a is b), (a["a"].tolist(), b["a"].tolist())


def test_the_number_of_rows_is_part_of_the_input() -> None:
    suite = parse_suite(
        {"suite": "r", "expectations": [{"type": "row_count", "min": 1}]}, "mem.yaml"
    )
    assert not _served(pd.DataFrame(index=range(5)), pd.DataFrame(), suite)
    assert not fresh_with(pd.DataFrame(), suite).success


def fresh_with(frame: pd.DataFrame, suite) -> ValidationReport:
    VALIDATED.clear()
    return validate_frame(frame, suite)


def test_nullable_and_numpy_numbers_are_the_same_only_against_number_bounds() -> None:
    numbers = {"suite": "n", "expectations": [{"type": "between", "column": "a", "min": 0}]}
    day = {"suite": "d", "expectations": [{"type": "between", "column": "a", "min": "2026-01-01"}]}
    nullable, numpy = pd.DataFrame({"a": pd.array([1, 2], "Int64")}), pd.DataFrame({"a": [1, 2]})
    assert _served(nullable, numpy, parse_suite(numbers, "mem.yaml"))
    # Compared with a date, each fails in its own words: not the same input.
    assert not _served(nullable, numpy, parse_suite(day, "mem.yaml"))


def test_categorical_frames_are_not_remembered() -> None:
    suite = parse_suite(
        {"suite": "c", "expectations": [{"type": "not_null", "column": "a"}]}, "mem.yaml"
    )
    frame = pd.DataFrame({"a": pd.Categorical([1, 2], categories=[1, 2, "x"])})
    assert not _served(frame, frame, suite)


def test_another_partition_or_zone_is_validated_again() -> None:
    validate_frame(loaded(), SUITE, PARTITION, "Europe/Copenhagen")
    other = validate_frame(loaded(), SUITE, (D(2026, 1, 5), D(2026, 1, 5)), "Europe/Copenhagen")
    validate_frame(loaded(), SUITE, PARTITION, "UTC")
    assert VALIDATED.hits == 0
    # The 23:00 UTC row is 7 January in Copenhagen: outside either window.
    inside = next(o for o in other.outcomes if o.name.startswith("date_in_partition"))
    assert inside.failing_rows == [2]


def test_a_served_report_is_a_copy() -> None:
    expected = fresh(loaded())
    first = validate_frame(loaded(), SUITE, PARTITION, "Europe/Copenhagen")
    first.outcomes.clear()  # the caller's report, not the one remembered
    served = validate_frame(loaded(), SUITE, PARTITION, "Europe/Copenhagen")
    served.outcomes.clear()  # as quality.checks adds volume outcomes to its report
    served.success = False
    third = validate_frame(loaded(), SUITE, PARTITION, "Europe/Copenhagen")
    assert VALIDATED.hits == 2
    assert third == expected and expected.outcomes


def test_large_frames_are_not_remembered() -> None:
    suite = parse_suite(
        {"suite": "l", "expectations": [{"type": "not_null", "column": "a"}]}, "mem.yaml"
    )
    small = pd.DataFrame({"a": range(validated_module.MAX_CELLS)})
    large = pd.DataFrame({"a": range(validated_module.MAX_CELLS + 1)})
    assert _served(small, small, suite)
    assert not _served(large, large, suite)


def test_only_the_last_inputs_are_kept() -> None:
    memo = validated_module.ValidatedFrames(keep=2)
    for key in (b"a", b"b", b"c"):
        memo.put(key, key.decode())
    assert (memo.get(b"a"), memo.get(b"b"), memo.get(b"c")) == (None, "b", "c")


def test_a_load_s_check_reuses_the_load_s_validation_unless_rows_were_quarantined(
    warehouse_url, tmp_path
) -> None:
    """Real runs of fx_rates and ad_spend: the check of the rows just written is the load's
    own validation when the rows read back are those validated. A quarantined row makes
    them differ, and the check validates what the table holds."""
    root = tmp_path / "landing"
    write_landing(root, {"a.csv": "\n".join([AD_HEADER, *AD_ROWS]) + "\n"})
    assert load(warehouse_url, root, window=FIXTURE_DAYS).success
    clean_hits = VALIDATED.hits

    VALIDATED.clear()
    bad = "2026-01-07,meta,social,neg,10,1,-2.00,EUR"  # quarantined: between(cost, min=0)
    good = "2026-01-07,meta,social,good,10,1,2.00,EUR"
    write_landing(root, {"b.csv": "\n".join([AD_HEADER, bad, good]) + "\n"})
    result = load(warehouse_url, root, window=FIXTURE_DAYS, names=["ad_spend"])
    assert result.success
    check = next(c for c in result.get_asset_check_evaluations())
    assert check.passed and check.metadata["rows_quarantined"].value == 1
    assert (clean_hits, VALIDATED.hits) == (2, 0)
