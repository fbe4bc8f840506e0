"""A bad re-delivery never displaces good rows (issue 13, item 22), and row conservation
(received = loaded + quarantined) is checked after every load and fails loudly.

Real Dagster runs of the real file assets on a DuckDB file and on PostgreSQL, with real
landing files; the conservation check itself is exercised directly with counts."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from dagster import AssetCheckSeverity

from tests.ingest.test_files_loading import (
    AD_HEADER,
    AD_ROWS,
    FIXTURE_DAYS,
    load,
    query,
    write_landing,
)

D = dt.date


def test_a_quarantined_redelivery_keeps_the_good_rates(warehouse_url, tmp_path):
    root = tmp_path / "landing"
    write_landing(root, {"a.csv": "\n".join([AD_HEADER, *AD_ROWS]) + "\n"})
    assert load(warehouse_url, root, window=FIXTURE_DAYS).success
    good = query(warehouse_url, "select date, currency, rate from raw.fx_rates order by date")
    assert good == [
        (D(2026, 1, 5), "USD", 0.9),
        (D(2026, 1, 6), "USD", 0.8),
        (D(2026, 1, 7), "USD", 0.85),
    ]

    # The re-delivery: a rate of 0 and a negative rate for days with good rates, and one
    # valid correction (07: 0.85 -> 0.86), which must still supersede.
    time.sleep(0.01)  # a later modification time too: the new file is the later delivery
    (root / "fx_rates" / "fx_resent.csv").write_text(
        "date,currency,rate\n2026-01-05,USD,0\n2026-01-06,USD,-0.8\n2026-01-07,USD,0.86\n"
    )
    result = load(warehouse_url, root, window=FIXTURE_DAYS)
    assert result.success

    assert query(warehouse_url, "select date, currency, rate from raw.fx_rates order by date") == [
        (D(2026, 1, 5), "USD", 0.9),  # the good rate stays
        (D(2026, 1, 6), "USD", 0.8),
        (D(2026, 1, 7), "USD", 0.86),  # a valid later delivery still wins
    ]
    resent = str(root / "fx_rates" / "fx_resent.csv")
    assert query(
        warehouse_url,
        "select date, rate, _source_file, _source_line, _failed_expectations "
        "from raw.fx_rates__quarantine order by date",
    ) == [
        (D(2026, 1, 5), 0.0, resent, 2, "between(rate, min=1e-06)"),
        (D(2026, 1, 6), -0.8, resent, 3, "between(rate, min=1e-06)"),
    ]
    # The USD cost of the 5th still converts at 0.9: 50.50 * 0.9 = 45.45.
    assert query(
        warehouse_url, "select cost, fx_rate from raw.ad_spend where platform = 'meta'"
    ) == [(45.45, 0.9)]
    checks = {c.asset_key.path[0]: c for c in result.get_asset_check_evaluations()}
    assert checks["fx_rates"].passed
    # No ad spend row lacks its rate: nothing quarantined and no ERROR (ad_spend's freshness
    # rightly warns, as the window ends a day after its last row).
    assert checks["ad_spend"].metadata["rows_quarantined"].value == 0
    assert checks["ad_spend"].severity == AssetCheckSeverity.WARN
    # 3 + 3 rows received: the 3 loaded, 2 quarantined, 1 (07 of fx.csv) superseded.
    meta = result.asset_materializations_for_node("fx_rates")[0].metadata
    assert [meta[k].value for k in ("rows_received", "rows_loaded", "rows_quarantined")] == [
        5,
        3,
        2,
    ]
    # Per file in the registry: what each file gave this run adds up.
    per_file = query(
        warehouse_url,
        "select file_path, rows_in_file, rows_superseded, rows_received, rows_loaded, "
        "rows_quarantined from raw.file_loads where source = 'fx_rates' and run_id = "
        f"'{result.run_id}' order by file_path",
    )
    assert per_file == [
        (str(root / "fx_rates" / "fx.csv"), 3, 1, 2, 2, 0),
        (resent, 3, 0, 3, 1, 2),
    ]


def test_a_quarantined_row_does_not_displace_good_rows_of_any_source(warehouse_url, tmp_path):
    """Not only exchange rates: operations re-sent with negative hours for a loaded day."""
    root = tmp_path / "landing"
    ops = root / "operations"
    ops.mkdir(parents=True)
    header = "date,team,output_units,hours_worked\n"
    (ops / "a.csv").write_text(header + "2026-01-05,north,10,8.0\n2026-01-06,north,12,7.5\n")
    assert load(warehouse_url, root, window=FIXTURE_DAYS, names=["operations"]).success
    time.sleep(0.01)
    (ops / "b.csv").write_text(header + "2026-01-06,north,12,-7.5\n")
    assert load(warehouse_url, root, window=FIXTURE_DAYS, names=["operations"]).success
    assert query(warehouse_url, "select date, hours_worked from raw.operations order by date") == [
        (D(2026, 1, 5), 8.0),
        (D(2026, 1, 6), 7.5),
    ]
    assert query(
        warehouse_url,
        "select hours_worked, _source_line, _failed_expectations from raw.operations__quarantine",
    ) == [(-7.5, 2, "between(hours_worked, min=0)")]


def test_only_the_latest_bad_delivery_after_the_good_row_is_quarantined(warehouse_url, tmp_path):
    """A bad row a later good row corrected stays superseded (not quarantined), and of two
    bad re-deliveries after a good row only the latest is quarantined: a key never has two
    quarantined rows a replay could load twice."""
    root = tmp_path / "landing"
    ops = root / "operations"
    ops.mkdir(parents=True)
    header = "date,team,output_units,hours_worked\n"
    deliveries = {
        "a.csv": "2026-01-05,north,10,-1.0\n2026-01-06,north,12,7.5\n",  # 05 bad, 06 good
        "b.csv": "2026-01-05,north,10,8.0\n2026-01-06,north,12,-7.5\n",  # 05 fixed, 06 bad
        "c.csv": "2026-01-06,north,12,-9.0\n",  # 06 bad again
    }
    for name, rows in deliveries.items():
        (ops / name).write_text(header + rows)
        time.sleep(0.01)  # later files are later deliveries
    assert load(warehouse_url, root, window=FIXTURE_DAYS, names=["operations"]).success
    assert query(warehouse_url, "select date, hours_worked from raw.operations order by date") == [
        (D(2026, 1, 5), 8.0),
        (D(2026, 1, 6), 7.5),
    ]
    assert query(
        warehouse_url,
        "select date, hours_worked, _failed_expectations from raw.operations__quarantine",
    ) == [(D(2026, 1, 6), -9.0, "between(hours_worked, min=0)")]
    superseded = query(
        warehouse_url,
        "select file_path, rows_superseded from raw.file_loads where source = 'operations'",
    )
    # a.csv's -1.0 (by b.csv's 8.0) and b.csv's -7.5 (by c.csv's -9.0): 5 received = 2 + 1 + 2.
    assert {str(f).rsplit("/", 1)[-1]: n for f, n in superseded} == {
        "a.csv": 1,
        "b.csv": 1,
        "c.csv": 0,
    }


def test_conservation_that_does_not_hold_fails_with_the_counts():
    from quality.quarantine import Conservation, ConservationError

    Conservation(5, 3, 2).require("fx_rates: fx.csv")  # holds: nothing raised
    with pytest.raises(ConservationError) as error:
        Conservation(14, 13, 0).require("market: data/landing/market/market.csv")
    assert str(error.value) == (
        "market: data/landing/market/market.csv: rows not conserved: received 14 != loaded 13 "
        "+ quarantined 0 (1 row(s) unaccounted for)"
    )


def test_every_file_of_a_load_is_checked_and_each_bad_one_named():
    from quality.quarantine import Conservation, ConservationError, require_conserved

    per_file = require_conserved(
        "fx_rates",
        Conservation(5, 3, 2),
        {"a.csv": 2, "b.csv": 3},
        {"a.csv": 2, "b.csv": 1},
        {"b.csv": 2},
    )
    assert per_file == {"a.csv": Conservation(2, 2, 0), "b.csv": Conservation(3, 1, 2)}
    # The totals add up (4 = 3 + 1) while one file lost a row and another gained one.
    with pytest.raises(ConservationError) as error:
        require_conserved(
            "market",
            Conservation(4, 3, 1),
            {"m1.csv": 2, "m2.csv": 2},
            {"m1.csv": 1, "m2.csv": 2},
            {"m2.csv": 1},
        )
    assert str(error.value) == (
        "market: m1.csv: rows not conserved: received 2 != loaded 1 + quarantined 0 "
        "(1 row(s) unaccounted for)\n"
        "market: m2.csv: rows not conserved: received 2 != loaded 2 + quarantined 1 "
        "(1 row(s) too many)"
    )
