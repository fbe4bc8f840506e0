"""The channel taxonomy's reference semantics (kpi.language.channels) on the shipped rules:
cases worked out from GA4's default channel group definitions, as YAML data, and the demo's
GA4 segments, each of which names the channel GA4 gives it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from demo.generator.catalogue import _SEGMENTS
from kpi.language.channels import normalise
from kpi.language.loader import load_catalog

CASES = yaml.safe_load((Path(__file__).parent / "channel_cases.yaml").read_text())


@pytest.fixture(scope="module")
def taxonomy():
    found = load_catalog().taxonomy
    assert found is not None, "the shipped definitions have a taxonomy"
    return found


@pytest.mark.parametrize(
    "case", CASES, ids=[f"{c['source']}/{c['medium']}/{c['campaign']}" for c in CASES]
)
def test_a_row_gets_the_channel_worked_out_by_hand(taxonomy, case):
    got = taxonomy.classify(case["source"], case["medium"], case["campaign"])
    assert got == case["channel"]


def test_every_demo_segment_gets_the_channel_ga4_gives_it(taxonomy):
    wrong = [
        (s.source, s.medium, s.campaign, s.channel, got)
        for s in _SEGMENTS
        if (got := taxonomy.classify(s.source, s.medium, s.campaign)) != s.channel
    ]
    assert wrong == []
    assert len({s.channel for s in _SEGMENTS}) >= 7


def test_utm_values_are_normalised_as_the_sql_reads_them():
    assert normalise("  Paid+Social%20Ads ") == "paid social ads"
    assert normalise(None) == ""
    assert normalise("CPC") == "cpc"


def test_the_vocabulary_is_every_rule_channel_then_the_fallback(taxonomy):
    assert taxonomy.channels[0] == "Direct" and taxonomy.channels[-1] == "Unassigned"
    assert len(taxonomy.channels) == len(set(taxonomy.channels)) == 19
