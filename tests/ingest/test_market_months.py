"""A month-grain file source (market) in runs whose window starts after the first day of a
month (issue 13, item 10): the month's row is loaded by every run reaching that month, never
twice, and a month before the first partition is quarantined with its reason."""

from __future__ import annotations

import datetime as dt

from tests.ingest.test_files_loading import load, metadata, query

D = dt.date
MARKET = (
    "month,market_revenue\n"
    "2025-09-01,2100000.00\n"
    "2025-10-01,2400000.00\n"
    "2025-11-01,3120000.00\n"
    "2025-12-01,3120000.00\n"
)


def market(url: str) -> list[tuple]:
    return query(url, "select month, market_revenue, _source_line from raw.market order by 1")


def quarantined(url: str) -> list[tuple]:
    return query(
        url,
        "select _source_line, _failed_expectations, _partition "
        "from raw.market__quarantine order by _source_line",
    )


def test_month_rows_load_when_the_window_starts_inside_their_month(
    warehouse_url, tmp_path, monkeypatch
):
    # Partitions start on 5 October, as in the demo: the October row, dated 1 October, is
    # before the first partition but its month is not. Not a mock: KPI_HISTORY_START is read
    # once per process (resources/settings.py), so the setting is given to the asset here.
    monkeypatch.setattr("assets.files.sources.history_start", lambda: "2025-10-05")
    root = tmp_path / "landing"
    (root / "market").mkdir(parents=True)
    (root / "market" / "market.csv").write_text(MARKET)

    result = load(warehouse_url, root, window=(D(2025, 10, 5), D(2025, 11, 30)), names=["market"])
    assert result.success
    assert market(warehouse_url) == [
        (D(2025, 10, 1), 2_400_000.0, 3),
        (D(2025, 11, 1), 3_120_000.0, 4),
    ]
    # September is before the month of the first partition: quarantined, with the reason.
    ((line, reason, partition),) = quarantined(warehouse_url)
    assert (line, partition) == (2, D(2025, 9, 1))
    assert "2025-09-01 is before the first partition (2025-10-01)" in reason
    meta = metadata(result, "market")
    # Conservation: 4 rows received (December waits for its own run) = 2 + 1 + 1 later.
    assert (meta["rows_loaded"], meta["rows_quarantined"]) == (2, 1)

    # A daily run inside November reloads November's row, and only it: nothing twice.
    result = load(warehouse_url, root, window=(D(2025, 11, 14), D(2025, 11, 16)), names=["market"])
    assert result.success
    assert [r[0] for r in market(warehouse_url)] == [D(2025, 10, 1), D(2025, 11, 1)]
    assert len(quarantined(warehouse_url)) == 1
    # A run of the first days of December takes December's row.
    result = load(warehouse_url, root, window=(D(2025, 12, 2), D(2025, 12, 3)), names=["market"])
    assert result.success
    assert [r[0] for r in market(warehouse_url)] == [D(2025, m, 1) for m in (10, 11, 12)]
