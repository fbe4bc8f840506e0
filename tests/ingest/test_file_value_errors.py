"""Values that used to crash a load or slip through it (issue 13, items 12, 13, 14, 24).

An integer past int64, a 5 MB field, a cost of 1e308 (or one that overflows to infinity)
and a NUL character each become one quarantined row whose reason names the file, the line,
the field, the value and what was expected; the other rows of the same file load, and
received = loaded + quarantined. Parsing is tested directly (it is what both the landing
sensor and the run call); the warehouse part in real runs on DuckDB and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, materialize
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from assets.files.sources import file_assets
from assets.settings import catalog
from ingest.files import FileFormatError, file_schema, parse_file, read_source
from ingest.landing import Landing
from ingest.landing_changes import LandingState, scan_landing
from kpi.language.models import SourceSpec
from kpi.warehouse.connection import Warehouse
from resources.landing import LandingResource
from resources.warehouse import WarehouseResource
from tests.support import quality_resource

D = dt.date
ZONE = "Europe/Copenhagen"
AD_HEADER = "date,platform,channel,campaign,impressions,clicks,cost,currency"
GOOD = "2026-01-05,google_ads,search,brand,1000,50,100.00,EUR"
BIG = "x" * 5_000_000  # a 5 MB value (the csv module's own limit is 131072 characters)
HUGE_INT = "99999999999999999999"  # 1e20 > int64's 9.22e18
# "expected" texts, written out: the range is the default one (no min/max in sources.yaml).
WHOLE_IN_RANGE = "a whole number from -1e+12 to 1e+12 (the default range of `impressions`)"
COST_IN_RANGE = "a number from -1e+12 to 1e+12 (the default range of `cost`)"
FINITE = "a finite number like 1234.56 (not infinite or NaN)"
NO_NUL = "text without NUL characters (\\x00), which PostgreSQL cannot store"


def spec(name: str = "ad_spend") -> SourceSpec:
    return catalog().sources[name]


def csv_text(*rows: str) -> str:
    return "\n".join([AD_HEADER, *rows]) + "\n"


def parse(text: str, path: str = "in/ad.csv"):
    return parse_file(text.encode(), path, spec())


# ---------------------------------------------------------------------------------------------
# Parsing (shared by the landing sensor and the run)
# ---------------------------------------------------------------------------------------------


def test_an_integer_past_int64_is_a_row_problem_not_a_crash():
    parsed = parse(csv_text(GOOD, f"2026-01-05,meta,social,huge,{HUGE_INT},1,2.00,EUR"))
    assert [str(p) for p in parsed.problems] == [
        f"in/ad.csv:3: field `impressions` value '{HUGE_INT}': expected {WHOLE_IN_RANGE}"
    ]
    assert parsed.usable
    # The bad value is null in the frame; the row is kept for the quarantine.
    assert list(parsed.frame["impressions"].astype(object).where(lambda s: s.notna(), None)) == [
        1000,
        None,
    ]
    assert list(parsed.frame["campaign"]) == ["brand", "huge"]


def test_a_5_mb_field_is_a_row_problem_and_the_following_lines_keep_their_numbers():
    text = csv_text(GOOD, f"2026-01-05,meta,social,{BIG},1,1,2.00,EUR", GOOD.replace("brand", "b"))
    parsed = parse(text)
    (problem,) = parsed.problems
    assert (problem.file, problem.line, problem.field) == ("in/ad.csv", 3, "campaign")
    assert problem.expected == "a value of at most 131072 characters (this one has 5000000)"
    assert str(problem) == (
        f"in/ad.csv:3: field `campaign` value '{'x' * 200}...': expected a value of at most "
        "131072 characters (this one has 5000000)"
    )
    assert parsed.usable
    assert list(parsed.frame["_source_line"]) == [2, 3, 4]
    # The 5 MB value is not kept: the quarantine holds the row without it.
    assert list(parsed.frame["campaign"]) == ["brand", None, "b"]


def test_a_file_of_one_5_mb_line_names_the_file_and_is_not_a_crash():
    parsed = parse(BIG)  # no header, no line end: one 5 MB line
    assert not parsed.usable
    assert parsed.problems
    assert {(p.file, p.line) for p in parsed.problems} == {("in/ad.csv", 1)}
    first = str(parsed.problems[0])
    assert first.startswith("in/ad.csv:1: field `date`: expected a column `date` separated by")
    # The header is shown cut, never 5 MB into a log line.
    assert all(len(str(p)) < 1000 for p in parsed.problems)


@pytest.mark.parametrize(
    ("cost", "expected"),
    [
        ("1e308", COST_IN_RANGE),  # finite, but a day's sum of two is infinite
        ("-1e308", COST_IN_RANGE),
        ("1e309", FINITE),  # a valid number spelling that overflows to infinity
        ("inf", FINITE),
        ("-Infinity", FINITE),
        ("nan", FINITE),
        ("NaN", FINITE),
        ("1000000000001", COST_IN_RANGE),  # just past the default maximum
    ],
)
def test_non_finite_and_absurd_money_is_a_row_problem(cost, expected):
    parsed = parse(csv_text(GOOD, f"2026-01-05,meta,social,bad,1,1,{cost},EUR"))
    assert [str(p) for p in parsed.problems] == [
        f"in/ad.csv:3: field `cost` value '{cost}': expected {expected}"
    ]
    assert list(parsed.frame["cost"].isna()) == [False, True]


def test_the_default_maximum_itself_loads_and_a_declared_range_overrides_it():
    parsed = parse(csv_text(GOOD, "2026-01-05,meta,social,max,1,1,1000000000000,EUR"))
    assert parsed.problems == []
    assert list(parsed.frame["cost"]) == [100.0, 1e12]

    data = spec().model_dump()
    data["columns"]["cost"]["max"] = 500
    data["columns"]["clicks"]["min"] = 10
    narrow = SourceSpec.model_validate(data)
    (cost,) = [c for c in file_schema(narrow) if c.name == "cost"]
    assert (cost.low, cost.high, cost.range_declared) == (-1e12, 500, True)
    parsed = parse_file(
        csv_text(GOOD, GOOD.replace("brand,", "b,").replace("100.00", "500.01")).encode(),
        "a.csv",
        narrow,
    )
    assert [str(p) for p in parsed.problems] == [
        "a.csv:3: field `cost` value '500.01': expected a number from -1e+12 to 500 "
        "(the range of `cost` declared in sources.yaml)",
    ]
    # brand's 50 clicks pass min 10; the declared min is the rule, not the default.
    parsed = parse_file(csv_text(GOOD.replace(",50,", ",9,")).encode(), "a.csv", narrow)
    assert [str(p) for p in parsed.problems] == [
        "a.csv:2: field `clicks` value '9': expected a whole number from 10 to 1e+12 "
        "(the range of `clicks` declared in sources.yaml)",
    ]


def test_a_range_that_is_not_a_number_range_is_refused():
    data = spec().model_dump()
    data["columns"]["cost"]["min"] = 10
    data["columns"]["cost"]["max"] = 1
    with pytest.raises(ValueError, match=r"min 10\.0 is above max 1\.0"):
        SourceSpec.model_validate(data)
    data = spec().model_dump()
    data["columns"]["campaign"]["max"] = 1
    with pytest.raises(ValueError, match="only a number or integer column has a range"):
        SourceSpec.model_validate(data)


def test_a_nul_character_is_a_row_problem_and_never_kept():
    parsed = parse(csv_text(GOOD, "2026-01-05,meta,social,spr\x00ing,1,1,2.00,EUR"))
    assert [str(p) for p in parsed.problems] == [
        f"in/ad.csv:3: field `campaign` value 'spr\\x00ing': expected {NO_NUL}"
    ]
    assert list(parsed.frame["campaign"]) == ["brand", None]


def test_the_landing_sensor_scan_counts_the_problems_instead_of_crashing(tmp_path):
    folder = tmp_path / "landing" / "ad_spend"
    folder.mkdir(parents=True)
    (folder / "huge.csv").write_text(
        csv_text(GOOD, f"2026-01-06,meta,social,huge,{HUGE_INT},1,2.00,EUR")
    )
    (folder / "big.csv").write_text(BIG)
    (folder / "long.csv").write_text(csv_text(f"2026-01-07,meta,social,{BIG},1,1,2.00,EUR", GOOD))
    scan = scan_landing(Landing(tmp_path / "landing"), {"ad_spend": spec()}, LandingState(), ZONE)
    changes = {Path(c.path).name: (c.first, c.last, c.problems) for c in scan.changes}
    assert changes == {
        "huge.csv": (D(2026, 1, 5), D(2026, 1, 6), 1),
        "long.csv": (D(2026, 1, 5), D(2026, 1, 7), 1),
    }
    (message,) = scan.messages
    assert message.startswith(f"ad_spend: {folder / 'big.csv'} has no row with a valid date")


def test_read_source_keeps_good_rows_and_rejects_each_bad_one(tmp_path):
    folder = tmp_path / "ad_spend"
    folder.mkdir()
    rows = [
        GOOD,
        f"2026-01-05,meta,social,huge,{HUGE_INT},1,2.00,EUR",
        f"2026-01-05,meta,social,{BIG},1,1,2.00,EUR",
        "2026-01-05,meta,social,overflow,1,1,1e308,EUR",
        "2026-01-05,meta,social,nul\x00,1,1,2.00,EUR",
        "2026-01-05,linkedin,display,b2b,10,1,5.00,EUR",
    ]
    (folder / "a.csv").write_text(csv_text(*rows))
    batch = read_source(Landing(tmp_path), spec(), ZONE, strict=False)
    assert sorted(batch.frame["campaign"]) == ["b2b", "brand"]
    assert sorted(batch.rejected["_source_line"]) == [3, 4, 5, 6]
    # Conservation: 6 received = 2 loaded + 4 rejected.
    assert len(batch.frame) + len(batch.rejected) == len(rows)
    with pytest.raises(FileFormatError) as err:  # strict: the whole file is refused, named
        read_source(Landing(tmp_path), spec(), ZONE, strict=True)
    assert len(err.value.problems) == 4
    assert "a.csv:5: field `cost` value '1e308'" in str(err.value)


# ---------------------------------------------------------------------------------------------
# In the warehouse: DuckDB and PostgreSQL alike
# ---------------------------------------------------------------------------------------------


def _load(url: str, root: Path, window: tuple[dt.date, dt.date]):
    assets = {a.key.to_user_string(): a for a in file_assets}
    return materialize(
        [assets["fx_rates"], assets["ad_spend"]],
        resources={
            "landing": LandingResource(root=str(root)),
            "quality": quality_resource(),
            "warehouse": WarehouseResource(url=url),
        },
        instance=DagsterInstance.ephemeral(),
        tags={
            ASSET_PARTITION_RANGE_START_TAG: window[0].isoformat(),
            ASSET_PARTITION_RANGE_END_TAG: window[1].isoformat(),
        },
    )


def _query(url: str, sql: str) -> list[tuple]:
    wh = Warehouse(url)
    try:
        frame = wh.read(sa.text(sql))
        frame = frame.astype(object).where(frame.notna(), None)
        return [tuple(r) for r in frame.itertuples(index=False)]
    finally:
        wh.dispose()


def test_bad_values_are_quarantined_and_the_rest_of_the_file_loads(warehouse_url, tmp_path):
    root = tmp_path / "landing"
    (root / "fx_rates").mkdir(parents=True)
    (root / "fx_rates" / "fx.csv").write_text("date,currency,rate\n2026-01-05,USD,0.9\n")
    (root / "ad_spend").mkdir()
    rows = [
        GOOD,  # 2
        f"2026-01-05,meta,social,huge,{HUGE_INT},1,2.00,EUR",  # 3
        f"2026-01-05,meta,social,{BIG},1,1,2.00,EUR",  # 4
        "2026-01-05,meta,social,overflow,1,1,1e308,EUR",  # 5
        "2026-01-05,linkedin,social,overflow,1,1,1e308,EUR",  # 6: with 5, an infinite sum
        "2026-01-05,meta,display,inf,1,1,inf,EUR",  # 7
        "2026-01-05,meta,social,nul\x00,1,1,2.00,EUR",  # 8
        "2026-01-05,linkedin,display,b2b,10,1,5.00,USD",  # 9: 5.00 USD at 0.9 = 4.50 EUR
    ]
    path = root / "ad_spend" / "a.csv"
    path.write_text(csv_text(*rows))
    result = _load(warehouse_url, root, (D(2026, 1, 5), D(2026, 1, 5)))

    assert result.success
    assert _query(warehouse_url, "select campaign, cost from raw.ad_spend order by campaign") == [
        ("b2b", 4.5),
        ("brand", 100.0),
    ]
    total = _query(warehouse_url, "select sum(cost) from raw.ad_spend")[0][0]
    assert math.isfinite(total) and total == pytest.approx(104.5)
    quarantined = _query(
        warehouse_url,
        "select _source_line, campaign, impressions, original_cost, _failed_expectations "
        "from raw.ad_spend__quarantine order by _source_line",
    )
    assert quarantined == [
        (
            3,
            "huge",
            None,
            2.0,
            f"parse: {path}:3: field `impressions` value '{HUGE_INT}': expected {WHOLE_IN_RANGE}",
        ),
        (
            4,
            None,
            1,
            2.0,
            f"parse: {path}:4: field `campaign` value '{'x' * 200}...': "
            "expected a value of at most 131072 characters (this one has 5000000)",
        ),
        (
            5,
            "overflow",
            1,
            None,
            f"parse: {path}:5: field `cost` value '1e308': expected {COST_IN_RANGE}",
        ),
        (
            6,
            "overflow",
            1,
            None,
            f"parse: {path}:6: field `cost` value '1e308': expected {COST_IN_RANGE}",
        ),
        (7, "inf", 1, None, f"parse: {path}:7: field `cost` value 'inf': expected {FINITE}"),
        (8, None, 1, 2.0, f"parse: {path}:8: field `campaign` value 'nul\\x00': expected {NO_NUL}"),
    ]
    meta = result.asset_materializations_for_node("ad_spend")[0].metadata
    # 8 received = 2 loaded + 6 quarantined.
    assert (meta["rows_received"].value, meta["rows_loaded"].value) == (8, 2)
    assert (meta["rows_quarantined"].value, meta["rows_conserved"].value) == (6, True)


def test_a_nul_in_one_value_quarantines_that_row_only(warehouse_url, tmp_path):
    """PostgreSQL refused the whole file (0 good rows loaded) while DuckDB stored the NUL."""
    root = tmp_path / "landing"
    (root / "fx_rates").mkdir(parents=True)
    (root / "fx_rates" / "fx.csv").write_text("date,currency,rate\n2026-01-05,USD,0.9\n")
    (root / "ad_spend").mkdir()
    path = root / "ad_spend" / "a.csv"
    path.write_text(csv_text(GOOD, "2026-01-05,meta,social,sp\x00ring,1,1,2.00,EUR"))
    result = _load(warehouse_url, root, (D(2026, 1, 5), D(2026, 1, 5)))

    assert result.success
    assert _query(warehouse_url, "select campaign, cost from raw.ad_spend") == [("brand", 100.0)]
    assert _query(
        warehouse_url,
        "select _source_file, _source_line, campaign, original_cost, _failed_expectations "
        "from raw.ad_spend__quarantine",
    ) == [
        (
            str(path),
            3,
            None,
            2.0,
            f"parse: {path}:3: field `campaign` value 'sp\\x00ring': expected {NO_NUL}",
        )
    ]
    meta = result.asset_materializations_for_node("ad_spend")[0].metadata
    assert [meta[k].value for k in ("rows_received", "rows_loaded", "rows_quarantined")] == [
        2,
        1,
        1,
    ]
