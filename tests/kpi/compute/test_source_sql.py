"""A source's conformed dimension values in SQL (kpi.compute.source_sql): read from
``classifiable`` rows, whose channel-rule inputs are computed once per row, a classified
channel is the one the rules written out in place give, on a real DuckDB and a real
PostgreSQL; the inputs are computed only on the rows the rules classify; and the daily
cube's statement writes each input's normalisation once."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from kpi.compute.source_sql import CLASSIFY_INPUT, classifiable, dimension_value
from kpi.compute.tables import KpiTables
from kpi.language.channels import normalise
from kpi.language.loader import load_catalog
from kpi.warehouse.connection import Warehouse

CASES = yaml.safe_load((Path(__file__).parents[1] / "language" / "channel_cases.yaml").read_text())
GA4 = "ga4_traffic"


# GA4's own group on a row: left unclassified three ways, or a group of its own; some
# mapped by the source's ``map`` into the unclassified values or out of them.
OWN = ["(not set)", "Unassigned", None, "Other", "Referral", "Paid Search", "Paid Searchh"]
MAP = {"Other": "Unassigned", "Referral": "(not set)", "(not set)": "Direct"}
MAP["Paid Searchh"] = "Paid Search"
UNCLASSIFIED = ("(not set)", "Unassigned")


def _ga4(channel_map: dict[str, str] | None = None, campaign: bool = True):
    """The shipped catalogue's GA4 source (its channel classified from source, medium and
    campaign where GA4 has no group), with a ``map`` of its own vocabulary when given, and
    without the campaign input when ``campaign`` is False."""
    catalog = load_catalog()
    src = catalog.sources[GA4]
    mapping = src.dimensions["channel"]
    if channel_map:
        mapping = mapping.model_copy(update={"map": channel_map})
    if not campaign:
        classify = mapping.classify.model_copy(update={"campaign": None})
        mapping = mapping.model_copy(update={"classify": classify})
    src = src.model_copy(update={"dimensions": {**src.dimensions, "channel": mapping}})
    return catalog, src, KpiTables.for_catalog(catalog).raw_tables[GA4]


def _rows() -> pd.DataFrame:
    """Every taxonomy case under every group of ``OWN`` (``sessions`` numbers the rows,
    ``engaged_sessions`` is the case)."""
    rows = []
    for i, case in enumerate(CASES):
        for own in OWN:
            rows.append(
                {
                    "property_id": "p",
                    "date": pd.Timestamp("2026-01-01").date(),
                    "session_default_channel_group": own,
                    "session_source": case["source"],
                    "session_medium": case["medium"],
                    "session_campaign_name": case["campaign"],
                    "device_category": "desktop",
                    "sessions": len(rows),
                    "engaged_sessions": i,
                }
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("campaign", [True, False], ids=["with_campaign", "no_campaign"])
def test_classifiable_rows_give_the_channel_the_rules_written_in_place_give(
    warehouse_url, campaign
):
    catalog, src, table = _ga4(MAP, campaign)
    frame = _rows()
    wh = Warehouse(warehouse_url)
    try:
        wh.ensure_tables([table])
        wh.replace_rows(table, None, frame)
        layered = classifiable(src, table, catalog.taxonomy)
        assert layered is not table
        in_place = dimension_value(src, table, "channel", catalog.taxonomy)
        from_inputs = dimension_value(src, layered, "channel", catalog.taxonomy)
        # The layered expression reads the computed inputs, not the raw columns.
        assert f"{CLASSIFY_INPUT}channel_source" in str(from_inputs.compile())
        a = wh.read(sa.select(table.c.sessions, in_place.label("channel")))
        b = wh.read(sa.select(layered.c.sessions, from_inputs.label("channel")))
    finally:
        wh.dispose()
    a, b = (f.sort_values("sessions").reset_index(drop=True) for f in (a, b))
    pd.testing.assert_frame_equal(a, b)
    # Worked out: a row whose group, once mapped, is none takes the taxonomy's channel from
    # its source, medium and campaign (none without the input); another keeps its group.
    taxonomy = catalog.taxonomy
    classified = 0
    for row, got in zip(frame.itertuples(), a["channel"], strict=True):
        own = row.session_default_channel_group
        mapped = None if pd.isna(own) else MAP.get(own, own)
        if mapped is None or mapped in UNCLASSIFIED:
            case = CASES[row.engaged_sessions]
            want = taxonomy.classify(
                case["source"], case["medium"], case["campaign"] if campaign else None
            )
            if campaign:
                assert want == case["channel"]
            classified += 1
        else:
            want = mapped
        assert got == want, (row, got)
    assert classified == 4 * len(CASES)  # Unassigned, NULL, and the two mapped into them


def test_the_rules_inputs_are_computed_only_on_rows_the_rules_classify(duckdb_url):
    catalog, src, table = _ga4(MAP)
    wh = Warehouse(duckdb_url)
    try:
        wh.ensure_tables([table])
        wh.replace_rows(table, None, _rows())
        layered = classifiable(src, table, catalog.taxonomy)
        inputs = [c for c in layered.c if c.name.startswith(CLASSIFY_INPUT)]
        assert [c.name for c in inputs] == [
            f"{CLASSIFY_INPUT}channel_{f}" for f in ("source", "medium", "campaign")
        ]
        got = wh.read(
            sa.select(
                layered.c.sessions,
                layered.c.engaged_sessions,
                layered.c.session_default_channel_group,
                *inputs,
            )
        )
    finally:
        wh.dispose()
    own = got["session_default_channel_group"]
    mapped = own.map(lambda v: None if pd.isna(v) else MAP.get(v, v))
    unclassified = mapped.isna() | mapped.isin(UNCLASSIFIED)
    source = got[f"{CLASSIFY_INPUT}channel_source"]
    assert unclassified.sum() == 4 * len(CASES)
    assert source[~unclassified].isna().all()
    # Normalised and aliased as the rules compare them ("Google" -> "google", "(direct)").
    taxonomy = catalog.taxonomy
    aliases = {normalise(k): normalise(v) for k, v in taxonomy.normalise.source_aliases.items()}
    cases, values = got["engaged_sessions"][unclassified], source[unclassified]
    for case_index, value in zip(cases, values, strict=True):
        raw = normalise(CASES[case_index]["source"])
        assert value == aliases.get(raw, raw), CASES[case_index]


def test_rows_no_classified_dimension_is_read_from_are_the_table_itself():
    catalog = load_catalog()
    tables = KpiTables.for_catalog(catalog)
    name = next(n for n, s in catalog.sources.items() if "channel" not in s.dimensions)
    table = tables.raw_tables[name]
    assert classifiable(catalog.sources[name], table, catalog.taxonomy) is table
    ga4, ga4_table = catalog.sources[GA4], tables.raw_tables[GA4]
    assert classifiable(ga4, ga4_table, None) is ga4_table
    # A query reading only dimensions that are not classified (the total, a slice by device).
    assert classifiable(ga4, ga4_table, catalog.taxonomy, ["device"]) is ga4_table
    assert classifiable(ga4, ga4_table, catalog.taxonomy, []) is ga4_table
    assert classifiable(ga4, ga4_table, catalog.taxonomy, ["channel"]) is not ga4_table


def test_the_daily_cube_writes_each_input_normalisation_once(duckdb_url):
    """The source alias is a CASE of dozens of values that every rule reading the source
    repeated: 15 KB of SQL that DuckDB took ~75 ms to bind and optimise on every run."""
    catalog = load_catalog()
    tables = KpiTables.for_catalog(catalog, use_cubes=True)
    cubes = tables.compiler.cubes
    wh = Warehouse(duckdb_url)
    try:
        sql = str(cubes.select(GA4).compile(wh.engine))
    finally:
        wh.dispose()
    source = catalog.sources[GA4].dimensions["channel"].classify.source
    # One normalisation per input (source, medium, campaign), and the campaign's slice.
    # (The alias CASE reads the normalised source twice: its value and its default.)
    assert sql.count(f".{source} AS VARCHAR)") == 2
    assert sql.count("lower(trim(") == 4
    assert len(sql) < 7_000
