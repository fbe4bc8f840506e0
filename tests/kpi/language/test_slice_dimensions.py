"""Slices by several dimensions at once, and sparse dimensions, seen from the author's side.

``dimensions`` lists a KPI's slices: a dimension, or a list of dimensions sliced together.
Every dimension of a slice is checked as a single one is (a conformed dimension that every
source the KPI reads maps), a slice names a dimension once and a KPI declares a slice once;
each problem is located at its file and line.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from kpi.compute.compiler import KpiCompiler
from kpi.language.loader import load_catalog
from tests.kpi.language.test_definition_rules import (
    ORDER_REVENUE,
    SESSIONS,
    SOURCES,
    area,
    assert_at,
    kpi,
    line_of,
    only,
    problems_of,
    write_definitions,
)


def _visits(dimensions: str) -> str:
    """Sessions of the traffic source (which maps channel and device), sliced as given."""
    body = "type: simple\nmeasure: {source: traffic, agg: sum, expr: sessions}\n"
    return kpi("visits", body + textwrap.dedent(dimensions).strip("\n"))


def test_a_combined_slice_loads_as_one_slice_beside_the_single_ones(tmp_path):
    text = area(_visits("dimensions: [channel, [channel, device]]"))
    catalog = load_catalog(write_definitions(tmp_path, {"test.yaml": text}))
    visits = catalog.kpis["visits"]
    assert visits.slice_dimensions == [("channel",), ("channel", "device")]
    assert visits.dimension_names == ["channel", "device"]
    assert KpiCompiler(catalog).slices(visits) == [(), ("channel",), ("channel", "device")]


def test_a_plain_list_keeps_meaning_one_slice_per_name(tmp_path):
    text = area(_visits("dimensions: [channel, device]"))
    catalog = load_catalog(write_definitions(tmp_path, {"test.yaml": text}))
    assert catalog.kpis["visits"].slice_dimensions == [("channel",), ("device",)]


def test_unknown_dimension_in_a_combined_slice(tmp_path):
    text = area(
        _visits(
            """
            dimensions:
              - channel
              - - device
                - chanel
            """
        )
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "- chanel"), "visits")
    assert problem.message == "unknown dimension `chanel`: did you mean `channel`?"


def test_combined_slice_with_a_dimension_a_source_does_not_map(tmp_path):
    # orders maps channel only: every dimension of the slice must be one of every source.
    text = area(
        kpi(
            "revenue",
            """
            type: simple
            measure: {source: orders, agg: sum, expr: revenue}
            dimensions:
              - - channel
                - device
            """,
            unit="currency",
        )
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "- device"), "revenue")
    assert problem.message == "source `orders` does not map dimension `device`"


def test_combined_slice_checked_against_the_sources_of_dependencies(tmp_path):
    text = area(
        SESSIONS,
        ORDER_REVENUE,
        kpi(
            "revenue_per_session",
            "type: derived\nexpr: order_revenue / sessions\ndimensions: [[channel, device]]",
            unit="currency",
        ),
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(
        problem,
        folder / "test.yaml",
        line_of(text, "dimensions: [[channel, device]]"),
        "revenue_per_session",
    )
    assert problem.message == "source `orders` does not map dimension `device`"


def test_a_dimension_named_twice_in_one_slice(tmp_path):
    text = area(
        _visits(
            """
            dimensions:
              - - channel
                - channel
            """
        )
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(
        problem, folder / "test.yaml", line_of(text, "- channel", after="- - channel"), "visits"
    )
    assert problem.message == "dimension `channel` is named twice in one slice"


def test_the_same_slice_declared_twice_in_another_order(tmp_path):
    text = area(
        _visits(
            """
            dimensions:
              - channel
              - [channel, device]
              - [device, channel]
            """
        )
    )
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "- [device, channel]"), "visits")
    assert problem.message == (
        "the slice by device x channel is declared twice (also entry 2 of dimensions)"
    )


def test_a_single_dimension_declared_twice(tmp_path):
    text = area(_visits("dimensions:\n  - device\n  - [device]"))
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "- [device]"), "visits")
    assert "declared twice (also entry 1 of dimensions)" in problem.message


def test_an_empty_slice(tmp_path):
    text = area(_visits("dimensions:\n  - channel\n  - []"))
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problem = only(problems_of(folder))
    assert_at(problem, folder / "test.yaml", line_of(text, "- []"), "visits")
    assert problem.message == "an empty slice: name one dimension or more"


def test_a_slice_nested_deeper_than_a_list_is_refused(tmp_path):
    text = area(_visits("dimensions: [[channel, [device]]]"))
    folder = write_definitions(tmp_path, {"test.yaml": text})
    problems = problems_of(folder)
    assert problems and all(p.kpi_id == "visits" for p in problems)
    assert all(Path(p.file).name == "test.yaml" for p in problems)
    assert any(p.line == line_of(text, "dimensions: [[channel, [device]]]") for p in problems)


def test_sparse_must_be_true_or_false(tmp_path):
    sources = SOURCES.replace(
        "    description: desktop, mobile or tablet\n",
        "    description: desktop, mobile or tablet\n    sparse: sometimes\n",
    )
    folder = write_definitions(tmp_path, {"test.yaml": area(SESSIONS)}, sources=sources)
    problem = only(problems_of(folder))
    assert problem.file.endswith("sources.yaml")
    assert problem.line == line_of(sources, "sparse: sometimes")


def test_declaring_a_dimension_sparse_changes_the_version_of_the_kpis_sliced_by_it(tmp_path):
    text = area(SESSIONS, ORDER_REVENUE)  # sessions by channel and device, revenue by channel
    (tmp_path / "dense").mkdir()
    (tmp_path / "sparse").mkdir()
    dense = load_catalog(write_definitions(tmp_path / "dense", {"test.yaml": text}))
    sparse_sources = SOURCES.replace(
        "    description: desktop, mobile or tablet\n",
        "    description: desktop, mobile or tablet\n    sparse: true\n",
    )
    sparse = load_catalog(
        write_definitions(tmp_path / "sparse", {"test.yaml": text}, sources=sparse_sources)
    )
    assert sparse.sparse_dimensions == {"device"} and dense.sparse_dimensions == set()
    assert sparse.is_sparse(("channel", "device")) and not sparse.is_sparse(("channel",))
    # Which rows exist changes for sessions (by device) only.
    assert sparse.versions["sessions"] != dense.versions["sessions"]
    assert sparse.versions["order_revenue"] == dense.versions["order_revenue"]
