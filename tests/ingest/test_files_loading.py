"""Loading landing files into a real warehouse (DuckDB file and PostgreSQL) in real Dagster
runs of the file assets: re-deliveries, bad files, missing exchange rates, Parquet and a
Danish Excel export in a ``memory://`` landing folder."""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from pathlib import Path

import duckdb
import fsspec
import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, ExecuteInProcessResult, materialize
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from assets.files.sources import file_assets
from kpi.warehouse.connection import Warehouse
from resources.landing import LandingResource
from resources.warehouse import WarehouseResource
from tests.support import quality_resource

D = dt.date
JANUARY = (D(2026, 1, 1), D(2026, 1, 10))
# The days AD_ROWS and FX (and the rows the tests add) cover: a test that expects the quality
# check to pass loads exactly these, since ad_spend's freshness rightly warns when a window
# ends days after the last row delivered.
FIXTURE_DAYS = (D(2026, 1, 5), D(2026, 1, 7))
AD_HEADER = "date,platform,channel,campaign,impressions,clicks,cost,currency"
FX = "date,currency,rate\n2026-01-05,USD,0.9\n2026-01-06,USD,0.8\n2026-01-07,USD,0.85\n"
AD_ROWS = [
    "2026-01-05,google_ads,search,brand,1000,50,100.00,EUR",
    "2026-01-05,meta,social,spring,2000,20,50.50,USD",
    "2026-01-06,google_ads,search,brand,1100,55,110.00,EUR",
]


def load(
    url: str,
    root: str | Path,
    *,
    raise_on_error: bool = True,
    window=JANUARY,
    names=("fx_rates", "ad_spend"),
) -> ExecuteInProcessResult:
    """A real run of the ``names`` file assets (fx_rates then ad_spend) for ``window``."""
    assets = {a.key.to_user_string(): a for a in file_assets}
    return materialize(
        [assets[n] for n in names],
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
        raise_on_error=raise_on_error,
    )


def query(url: str, sql: str) -> list[tuple]:
    wh = Warehouse(url)
    try:
        frame = wh.read(sa.text(sql))
        frame = frame.astype(object).where(frame.notna(), None)  # NULL, not NaN
        return [tuple(r) for r in frame.itertuples(index=False)]
    finally:
        wh.dispose()


def ad_rows(url: str) -> list[tuple]:
    return query(
        url,
        "select date, platform, campaign, cost, original_cost, fx_rate, _source_file, "
        "_source_line from raw.ad_spend order by date, platform, campaign",
    )


def metadata(result: ExecuteInProcessResult, asset: str) -> dict:
    """The metadata of a run's materialization (one per partition day, all the same)."""
    events = result.asset_materializations_for_node(asset)
    assert events
    return {k: v.value for k, v in events[0].metadata.items()}


def write_landing(root: Path, ad_files: dict[str, str]) -> None:
    (root / "fx_rates").mkdir(parents=True, exist_ok=True)
    (root / "fx_rates" / "fx.csv").write_text(FX)
    (root / "ad_spend").mkdir(parents=True, exist_ok=True)
    for name, text in ad_files.items():
        (root / "ad_spend" / name).write_text(text)


def failure_message(result: ExecuteInProcessResult) -> tuple[str, dict]:
    (event,) = result.get_step_failure_events()
    data = event.step_failure_data
    meta = {k: v.value for k, v in data.user_failure_data.metadata.items()}
    return data.error.message, meta


def test_redeliveries_never_duplicate_rows(warehouse_url, tmp_path):
    root = tmp_path / "landing"
    first = "\n".join([AD_HEADER, *AD_ROWS]) + "\n"
    write_landing(root, {"a.csv": first, "empty.csv": "", "header_only.csv": AD_HEADER + "\n"})
    a = str(root / "ad_spend" / "a.csv")

    result = load(warehouse_url, root)
    assert result.success
    rows = ad_rows(warehouse_url)
    assert rows == [
        (D(2026, 1, 5), "google_ads", "brand", 100.0, 100.0, 1.0, a, 2),
        (D(2026, 1, 5), "meta", "spring", 45.45, 50.5, 0.9, a, 3),
        (D(2026, 1, 6), "google_ads", "brand", 110.0, 110.0, 1.0, a, 4),
    ]
    meta = metadata(result, "ad_spend")
    assert meta["rows_loaded"] == 3
    assert sorted(Path(p).name for p in meta["empty_files"]) == ["empty.csv", "header_only.csv"]

    # The same file again, and the same bytes under another name: nothing changes.
    shutil.copy(root / "ad_spend" / "a.csv", root / "ad_spend" / "a_resent.csv")
    result = load(warehouse_url, root, names=["ad_spend"])
    assert result.success
    assert ad_rows(warehouse_url) == rows
    meta = metadata(result, "ad_spend")
    assert (meta["rows_loaded"], meta["rows_replaced"]) == (3, 3)
    assert [Path(p).name for p in meta["duplicate_files"]] == ["a_resent.csv"]

    # A corrected delivery under a new name replaces the rows of its keys, adds new ones.
    fix = "\n".join(
        [
            AD_HEADER,
            "2026-01-06,google_ads,search,brand,1100,55,130.00,EUR",
            "2026-01-07,meta,social,spring,900,9,20.00,USD",
        ]
    )
    write_landing(root, {"b_fix.csv": fix + "\n"})
    b = str(root / "ad_spend" / "b_fix.csv")
    result = load(warehouse_url, root, names=["ad_spend"])
    assert result.success
    assert ad_rows(warehouse_url) == [
        (D(2026, 1, 5), "google_ads", "brand", 100.0, 100.0, 1.0, a, 2),
        (D(2026, 1, 5), "meta", "spring", 45.45, 50.5, 0.9, a, 3),
        (D(2026, 1, 6), "google_ads", "brand", 130.0, 130.0, 1.0, b, 2),
        (D(2026, 1, 7), "meta", "spring", 17.0, 20.0, 0.85, b, 3),
    ]
    assert metadata(result, "ad_spend")["rows_superseded"] == 1

    # The registry: one row per file per load, keyed by content; copies point at the original.
    registry = query(
        warehouse_url,
        "select file_path, status, duplicate_of, rows_in_file, rows_loaded, rows_superseded, "
        "first_date, last_date, run_id from raw.file_loads where source = 'ad_spend' "
        "order by loaded_at, file_path",
    )
    last_run = [r[:-1] for r in registry if r[-1] == result.run_id]
    empty = str(root / "ad_spend" / "empty.csv")
    assert last_run == [
        (a, "read", None, 3, 2, 1, D(2026, 1, 5), D(2026, 1, 6)),
        (
            str(root / "ad_spend" / "a_resent.csv"),
            "duplicate",
            a,
            3,
            0,
            0,
            D(2026, 1, 5),
            D(2026, 1, 6),
        ),
        (b, "read", None, 2, 2, 0, D(2026, 1, 6), D(2026, 1, 7)),
        (empty, "empty", None, 0, 0, 0, None, None),
        (str(root / "ad_spend" / "header_only.csv"), "empty", None, 0, 0, 0, None, None),
    ]
    assert len({r[-1] for r in registry}) == 3  # three loads, nothing updated in place


def quarantined(url: str) -> list[tuple]:
    return query(
        url,
        "select _source_line, campaign, _failed_expectations, _partition "
        "from raw.ad_spend__quarantine order by _source_line",
    )


def test_bad_rows_are_quarantined_with_reasons_and_good_rows_load(duckdb_url, tmp_path):
    root = tmp_path / "landing"
    write_landing(root, {"a.csv": "\n".join([AD_HEADER, *AD_ROWS]) + "\n"})
    assert load(duckdb_url, root, window=FIXTURE_DAYS).success

    bad_rows = [
        "2026-01-07,meta,social,x,10,1,2.00,EUR,surplus",  # malformed line
        "2026-01-07,meta,social,y,lots,1,2.00,EUR",  # wrong type
        "2026-01-07,meta,tv,z,10,1,2.00,EUR",  # unknown channel
        "2026-01-07,,social,w,10,1,2.00,EUR",  # missing required platform
        "2026-01-07,meta,social,neg,10,1,-2.00,EUR",  # suite: between(cost, min=0)
        "2026-01-07,meta,social,good,10,1,2.00,EUR",
    ]
    write_landing(root, {"bad.csv": "\n".join([AD_HEADER, *bad_rows]) + "\n"})
    result = load(duckdb_url, root, window=FIXTURE_DAYS)

    assert result.success  # row problems no longer stop the load
    bad = root / "ad_spend" / "bad.csv"
    rows = quarantined(duckdb_url)
    day = D(2026, 1, 7)
    assert [(r[0], r[1], r[3]) for r in rows] == [
        (2, None, day),  # never became a row: only its file and line are known
        (3, "y", day),
        (4, "z", day),
        (5, "w", day),
        (6, "neg", day),
    ]
    reasons = [r[2] for r in rows]
    assert reasons[0] == (
        f"parse: {bad}:2: value '{bad_rows[0]}': expected 8 fields separated by ',' as in "
        "the header, found 9"
    )
    assert (
        reasons[1]
        == f"parse: {bad}:3: field `impressions` value 'lots': expected a whole number like 1234"
    )
    assert "field `channel` value 'tv': expected one of search, social, display" in reasons[2]
    assert "field `platform` value '': expected a value" in reasons[3]
    assert reasons[4] == "between(cost, min=0)"
    assert query(duckdb_url, "select campaign from raw.ad_spend where date = '2026-01-07'") == [
        ("good",)
    ]
    meta = result.asset_materializations_for_node("ad_spend")[0].metadata
    # Conservation over the window: 3 + 6 received = 4 loaded + 5 quarantined.
    assert (meta["rows_received"].value, meta["rows_loaded"].value) == (9, 4)
    assert (meta["rows_quarantined"].value, meta["rows_conserved"].value) == (5, True)
    check = next(
        c for c in result.get_asset_check_evaluations() if c.asset_key.path == ["ad_spend"]
    )
    assert check.passed and check.metadata["rows_quarantined"].value == 5
    assert Path(check.metadata["data_docs"].value).read_text().count("<tr class=") >= 5

    # Loading again replaces the window's quarantine rows: never duplicated.
    assert load(duckdb_url, root, window=FIXTURE_DAYS).success
    assert [r[0] for r in quarantined(duckdb_url)] == [2, 3, 4, 5, 6]


def test_a_file_with_a_missing_column_fails_the_load_and_changes_nothing(duckdb_url, tmp_path):
    root = tmp_path / "landing"
    write_landing(root, {"a.csv": "\n".join([AD_HEADER, *AD_ROWS]) + "\n"})
    assert load(duckdb_url, root).success
    before = query(duckdb_url, "select * from raw.ad_spend order by _source_line")
    header = AD_HEADER.replace(",clicks", "")
    write_landing(root, {"bad.csv": header + "\n2026-01-07,meta,social,x,10,2.00,EUR\n"})
    result = load(duckdb_url, root, raise_on_error=False)
    assert not result.success
    message, meta = failure_message(result)
    assert meta["files_with_problems"] == [str(root / "ad_spend" / "bad.csv")]
    assert "clicks" in message
    assert query(duckdb_url, "select * from raw.ad_spend order by _source_line") == before


def test_missing_exchange_rate_quarantines_the_row(duckdb_url, tmp_path):
    root = tmp_path / "landing"
    rows = [AD_ROWS[0], "2026-01-06,meta,social,nordic,10,1,75.00,SEK"]
    write_landing(root, {"a.csv": "\n".join([AD_HEADER, *rows]) + "\n"})
    result = load(duckdb_url, root)
    assert result.success
    ((line, campaign, reason, day),) = quarantined(duckdb_url)
    assert (line, campaign, day) == (3, "nordic", D(2026, 1, 6))
    assert (
        f"{root / 'ad_spend' / 'a.csv'}:3: field `currency` value 'SEK': expected an exchange "
        "rate SEK -> EUR for 2026-01-06 in the fx_rates source" in reason
    )
    assert query(duckdb_url, "select count(*) from raw.fx_rates") == [(3,)]
    assert query(duckdb_url, "select count(*) from raw.ad_spend") == [(1,)]
    assert query(
        duckdb_url, "select original_currency, original_cost from raw.ad_spend__quarantine"
    ) == [("SEK", 75.0)]


def test_memory_landing_with_parquet_and_a_danish_excel_export(warehouse_url, tmp_path):
    root = f"memory://landing-{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    base = "/" + root.removeprefix("memory://")
    fs.pipe(f"{base}/fx_rates/fx.csv", FX.encode())
    parquet = tmp_path / "ad.parquet"
    with duckdb.connect() as con:
        con.execute(
            "COPY (SELECT * FROM (VALUES "
            "(DATE '2026-01-05', 'meta', 'social', 'p1', 10, 1, 12.5::DOUBLE, 'USD'), "
            "(DATE '2026-01-06', 'meta', 'social', 'p2', 20, 2, 7.0::DOUBLE, 'EUR')) "
            f"AS t({AD_HEADER})) TO '{parquet}' (FORMAT parquet)"
        )
    fs.pipe(f"{base}/ad_spend/ad.parquet", parquet.read_bytes())
    danish = (
        "\ufeffdate;platform;channel;campaign;impressions;clicks;cost;currency\r\n"
        "07-01-2026;google_ads;search;forår;1.234;56;1.234,56;EUR\r\n"
        "07-01-2026;google_ads;display;efterår;12;0;0,5;USD\r\n"
    )
    fs.pipe(f"{base}/ad_spend/dk.csv", danish.encode())
    try:
        result = load(warehouse_url, root)
    finally:
        fs.rm(base, recursive=True)
    assert result.success
    assert ad_rows(warehouse_url) == [
        (D(2026, 1, 5), "meta", "p1", 11.25, 12.5, 0.9, f"{root}/ad_spend/ad.parquet", 1),
        (D(2026, 1, 6), "meta", "p2", 7.0, 7.0, 1.0, f"{root}/ad_spend/ad.parquet", 2),
        (D(2026, 1, 7), "google_ads", "efterår", 0.425, 0.5, 0.85, f"{root}/ad_spend/dk.csv", 3),
        (D(2026, 1, 7), "google_ads", "forår", 1234.56, 1234.56, 1.0, f"{root}/ad_spend/dk.csv", 2),
    ]
    assert query(warehouse_url, "select impressions from raw.ad_spend order by impressions") == [
        (10,),
        (12,),
        (20,),
        (1234,),
    ]
    formats = query(
        warehouse_url,
        "select file_format from raw.file_loads where source = 'ad_spend' order by file_path",
    )
    assert formats == [("parquet",), ("csv delimiter ';' decimal ',' utf-8-sig CRLF",)]


@pytest.fixture(autouse=True)
def _quiet_beta_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_a_window_loads_without_dagster(warehouse_url, tmp_path, caplog):
    """The load itself is ingest.files.loading: no Dagster context, only a warehouse, a
    landing folder, the catalog and a logger; the counts it returns are the warehouse's."""
    import logging

    from assets.settings import catalog
    from ingest.files.loading import load_window
    from ingest.landing import Landing

    root = tmp_path / "landing"
    bad = "2026-01-07,meta,social,late,10,1,-5.00,EUR"  # a negative cost: quarantined
    write_landing(root, {"a.csv": "\n".join([AD_HEADER, *AD_ROWS, bad]) + "\n"})
    log = logging.getLogger("test_files_loading")
    wh = Warehouse(warehouse_url)
    try:
        for name in ("fx_rates", "ad_spend"):
            result = load_window(
                wh, Landing(root), catalog(), name, *FIXTURE_DAYS, "r1", D(2024, 1, 1), log
            )
    finally:
        wh.dispose()
    assert (result.start, result.end) == FIXTURE_DAYS
    assert [(f.path.rsplit("/", 1)[-1], f.status, f.rows) for f in result.files] == [
        ("a.csv", "read", 4)
    ]
    summary = result.summary()
    assert (summary["rows_received"], summary["rows_loaded"], summary["rows_quarantined"]) == (
        4,
        3,
        1,
    )
    assert summary["rows_conserved"] and summary["files_read"] == 1
    assert len(ad_rows(warehouse_url)) == 3
    assert "ad_spend: 1 row(s) quarantined in raw.ad_spend__quarantine" in caplog.text


def test_the_suites_and_docs_folders_are_the_arguments(warehouse_url, tmp_path, monkeypatch):
    """Below the Dagster layer the folders are arguments (#16): the load and the check use the
    suites folder passed in, and the page goes to the data-docs folder passed in, whatever
    KPI_DEFINITIONS_DIR and KPI_QUALITY_DIR say. Here the suite passed in allows a refund
    (a negative cost) that the shipped suite quarantines."""
    import logging

    from ingest.files.loading import day_expression, load_window
    from ingest.landing import Landing
    from kpi.language.catalog import DEFAULT_DEFINITIONS_DIR
    from kpi.language.loader import load_catalog
    from quality.checks import check_written_rows

    suites = tmp_path / "suites"
    shutil.copytree(DEFAULT_DEFINITIONS_DIR / "quality", suites)
    suite = suites / "ad_spend.yaml"
    shipped = "{type: between, column: cost, min: 0}"
    assert shipped in suite.read_text()
    suite.write_text(suite.read_text().replace(shipped, "{type: not_null, column: cost}"))
    monkeypatch.setenv("KPI_DEFINITIONS_DIR", str(tmp_path / "no-such-definitions"))
    monkeypatch.setenv("KPI_QUALITY_DIR", str(tmp_path / "elsewhere"))
    cat = load_catalog(DEFAULT_DEFINITIONS_DIR)
    root = tmp_path / "landing"
    refund = "2026-01-07,meta,social,refund,10,1,-5.00,EUR"
    write_landing(root, {"a.csv": "\n".join([AD_HEADER, *AD_ROWS, refund]) + "\n"})
    log = logging.getLogger("test_files_loading")
    zone = cat.reporting.time_zone
    wh = Warehouse(warehouse_url)
    try:
        for name in ("fx_rates", "ad_spend"):
            result = load_window(
                wh,
                Landing(root),
                cat,
                name,
                *FIXTURE_DAYS,
                "r1",
                D(2024, 1, 1),
                log,
                suites=suites,
            )
        day = day_expression(result.table, cat.sources["ad_spend"], zone)
        outcome = check_written_rows(
            wh,
            result.table,
            day.between(result.start, result.end),
            "ad_spend",
            result.conservation,
            day,
            (result.start, result.end),
            "r1",
            zone,
            suites=suites,
            docs_folder=tmp_path / "docs",
        )
    finally:
        wh.dispose()
    assert (result.conservation.loaded, result.conservation.quarantined) == (4, 0)
    assert len(ad_rows(warehouse_url)) == 4
    assert outcome.passed, outcome.failures_markdown
    assert outcome.docs_path == (tmp_path / "docs" / "ad_spend-r1.html").resolve()
    assert outcome.docs_path.exists() and not (tmp_path / "elsewhere").exists()


ORDERS_HEADER = (
    "order_id,ordered_at,customer_id,channel,revenue,cost_of_goods,currency,is_new_customer"
)


def test_an_order_redelivered_on_another_day_is_loaded_once(warehouse_url, tmp_path):
    """A re-delivery can move a keyed row to another day (an order's timestamp corrected from
    2 to 6 January). The run of the new day's window loads it; the row of the old day, which
    that window does not replace, must go in the same transaction: before, DuckDB held the
    order twice (revenue counted twice) and PostgreSQL's unique key refused the whole load."""
    root = tmp_path / "landing"
    (root / "orders").mkdir(parents=True)
    (root / "orders" / "a.csv").write_text(
        f"{ORDERS_HEADER}\n"
        "o-1,2026-01-02T10:00:00Z,c-1,Direct,100.00,40.00,EUR,true\n"
        "o-2,2026-01-02T11:00:00Z,c-2,Direct,50.00,20.00,EUR,false\n"
    )
    first = load(warehouse_url, root, window=(D(2026, 1, 1), D(2026, 1, 3)), names=("orders",))
    assert first.success
    (root / "orders" / "b.csv").write_text(
        f"{ORDERS_HEADER}\no-1,2026-01-06T09:00:00Z,c-1,Direct,100.00,40.00,EUR,true\n"
    )
    second = load(warehouse_url, root, window=(D(2026, 1, 5), D(2026, 1, 7)), names=("orders",))
    assert second.success
    rows = query(
        warehouse_url,
        "select order_id, cast(ordered_at as date) as day, revenue, _source_file "
        "from raw.orders order by order_id",
    )
    assert [(r[0], str(r[1]), r[2], Path(r[3]).name) for r in rows] == [
        ("o-1", "2026-01-06", 100.0, "b.csv"),
        ("o-2", "2026-01-02", 50.0, "a.csv"),
    ]
    # Re-running either window changes nothing.
    for window in [(D(2026, 1, 1), D(2026, 1, 3)), (D(2026, 1, 5), D(2026, 1, 7))]:
        assert load(warehouse_url, root, window=window, names=("orders",)).success
    assert query(warehouse_url, "select count(*), sum(revenue) from raw.orders") == [(2, 150.0)]
