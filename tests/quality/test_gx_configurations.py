"""Validations build each GX expectation's configuration once (quality.gx_configurations),
and report exactly what GX reports when it rebuilds them on every read."""

from __future__ import annotations

import contextlib
import dataclasses

import pandas as pd
import pytest

from quality import gx_configurations, load_suite, validate
from quality.gx_configurations import GX_VERSIONS, kept_configurations
from quality.gx_session import great_expectations
from tests.quality.test_quality import GA4_YAML, VIOLATIONS, ga4_frame, suite_of

gx = great_expectations()
from great_expectations.expectations.expectation import Expectation  # noqa: E402


def _expectation():
    return gx.expectations.ExpectColumnValuesToBeBetween(column="a", min_value=0)


def test_this_gx_is_one_the_change_was_written_against() -> None:
    # A new GX version validates without the change until someone has read its
    # Expectation.configuration again and added the version here.
    assert gx.__version__.startswith(GX_VERSIONS)


def test_inside_the_block_one_configuration_per_expectation_and_the_property_back_after() -> None:
    original = Expectation.__dict__["configuration"]
    first, second = _expectation(), _expectation()
    assert first.configuration is not first.configuration  # GX builds one per read
    with kept_configurations():
        kept = first.configuration
        assert first.configuration is kept
        assert second.configuration is not kept  # another object, another configuration
        assert second.configuration.kwargs == kept.kwargs
    assert Expectation.__dict__["configuration"] is original
    assert first.configuration is not first.configuration


def test_the_property_comes_back_when_the_block_raises() -> None:
    original = Expectation.__dict__["configuration"]
    with pytest.raises(RuntimeError), kept_configurations():
        raise RuntimeError("a failed validation")
    assert Expectation.__dict__["configuration"] is original


def test_another_gx_version_is_left_as_it_is(monkeypatch) -> None:
    # Not a mock: the real GX, told it is not a version the change was checked against.
    monkeypatch.setattr(gx_configurations, "GX_VERSIONS", ("0.0.",))
    with kept_configurations():
        one = _expectation()
        assert one.configuration is not one.configuration


def _report(frame: pd.DataFrame, suite) -> dict:
    validate.VALIDATED.clear()  # GX must run, not the cache of frames already validated
    return dataclasses.asdict(validate.validate_frame(frame, suite))


CASES = [
    pytest.param(suite_of(p.values[0]), pd.DataFrame(p.values[1]), id=p.id) for p in VIOLATIONS
] + [pytest.param(None, None, id="ga4-suite")]


@pytest.mark.parametrize(("suite", "frame"), CASES)
def test_a_validation_reports_what_gx_reports_rebuilding_them(
    suite, frame, monkeypatch, tmp_path
) -> None:
    if suite is None:  # every expectation of a suite at once, on rows that break some
        path = tmp_path / "ga4.yaml"
        path.write_text(GA4_YAML)
        suite = load_suite(path)
        frame = ga4_frame()
        frame.loc[1, "sessions"] = -4
        frame.loc[2, "device"] = "tv"
        frame.loc[3, "engagement_rate"] = 1.5
    kept = _report(frame, suite)
    # Not a mock: the memo switched off, so that GX validates as it comes (the reference).
    monkeypatch.setattr(validate, "kept_configurations", contextlib.nullcontext)
    rebuilt = _report(frame, suite)
    assert kept == rebuilt
    assert not kept["success"]  # every case breaks an expectation: GX had rows to report
