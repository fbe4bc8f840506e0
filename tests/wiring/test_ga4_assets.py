"""The GA4 assets in real Dagster runs: the official client over gRPC against the fake Data API,
a real warehouse (DuckDB file, and PostgreSQL where marked by the ``warehouse_url`` fixture).

Fixture (``_rows``): days from Monday 2026-03-02, each with 2 channels x 3 devices = 6 rows;
on day d (1-based) row j (1..6) has ``sessions = 10 * d + j``, so day d holds
``60 * d + 21`` sessions; every row has ``transactions = 1`` and ``purchaseRevenue = 2.5``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import grpc
import pandas as pd
import pytest
import sqlalchemy as sa
from dagster import (
    AssetCheckSeverity,
    AssetKey,
    AssetsDefinition,
    DagsterInstance,
    ExecuteInProcessResult,
    materialize,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

import ingest.ga4.loading as loading
from assets.ga4.reports import GA4_ASSETS, flags_result, ga4_assets, ga4_reports
from assets.settings import catalog
from demo.fake_ga4 import FakeGA4Server, FakeProperty
from ingest.ga4.load_log import ga4_load_log_table, log_frame
from ingest.ga4.loading import write_log
from kpi.warehouse.connection import Warehouse
from resources.ga4 import GA4Resource
from resources.warehouse import WarehouseResource
from tests.support import quality_resource

PROPERTY = "123456789"
ZONE = "Europe/Copenhagen"
START = dt.date(2026, 3, 2)
DAYS = [START + dt.timedelta(days=i) for i in range(7)]
TRAFFIC = GA4_ASSETS["ga4_traffic"]


def _rows(days: Sequence[dt.date] = DAYS, bump_last: int = 0) -> pd.DataFrame:
    records = []
    for d, day in enumerate(days, start=1):
        j = 0
        for channel, medium in (("Organic Search", "organic"), ("Paid Search", "cpc")):
            for device in ("desktop", "mobile", "tablet"):
                j += 1
                records.append(
                    {
                        "date": day,
                        "sessionDefaultChannelGroup": channel,
                        "sessionSource": "google",
                        "sessionMedium": medium,
                        "sessionCampaignName": "(organic)" if medium == "organic" else "spring",
                        "deviceCategory": device,
                        "sessions": 10 * d + j + (bump_last if day == days[-1] else 0),
                        "engagedSessions": j,
                        "newUsers": 1,
                        "keyEvents": 1,
                        "transactions": 1,
                        "purchaseRevenue": 2.5,
                        "totalUsers": j,
                        "activeUsers": j,
                        "addToCarts": 3,
                        "checkouts": 2,
                        "ecommercePurchases": 1,
                    }
                )
    return pd.DataFrame(records)


def _prop(
    property_id: str = PROPERTY, rows: pd.DataFrame | None = None, **kwargs: object
) -> FakeProperty:
    """A fake property in the reporting zone and currency unless told otherwise."""
    options: dict[str, object] = {"time_zone": ZONE, "currency_code": "EUR", **kwargs}
    rows = _rows() if rows is None else rows
    return FakeProperty(property_id, rows, **options)  # type: ignore[arg-type]


def _day_sessions(d: int) -> int:
    return 60 * d + 21


def _run(
    server: FakeGA4Server,
    url: str,
    first: dt.date,
    last: dt.date,
    *,
    assets: Sequence[AssetsDefinition] = (TRAFFIC,),
    properties: Sequence[str] = (PROPERTY,),
    **ga4_options: object,
) -> ExecuteInProcessResult:
    ga4 = GA4Resource(
        property_ids=list(properties),
        api_endpoint=server.endpoint,
        initial_backoff_s=0.0,
        **ga4_options,  # type: ignore[arg-type]
    )
    return materialize(
        list(assets),
        resources={
            "ga4": ga4,
            "warehouse": WarehouseResource(url=url),
            "quality": quality_resource(),
        },
        tags={
            ASSET_PARTITION_RANGE_START_TAG: first.isoformat(),
            ASSET_PARTITION_RANGE_END_TAG: last.isoformat(),
        },
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def _read(url: str, sql: str) -> pd.DataFrame:
    wh = Warehouse(url)
    try:
        return wh.read(sa.text(sql))
    finally:
        wh.dispose()


def _checks(result: ExecuteInProcessResult) -> dict[str, object]:
    return {c.check_name: c for c in result.get_asset_check_evaluations()}


def _failure(result: ExecuteInProcessResult, step: str = "ga4_traffic") -> str:
    data = result.failure_data_for_node(step)
    assert data is not None and data.error is not None
    return data.error.message


# -- loads, (other) rows, load log -------------------------------------------------------------


def test_other_rows_are_kept_with_their_day_and_the_load_log_says_everything(
    warehouse_url: str,
) -> None:
    prop = FakeProperty(
        PROPERTY,
        _rows(),
        time_zone=ZONE,
        currency_code="EUR",
        sampled=True,
        thresholded=True,
        other_row_threshold=2,
    )
    with FakeGA4Server([prop]) as server:
        result = _run(server, warehouse_url, DAYS[0], DAYS[2], page_size=2)
    assert result.success

    raw = _read(warehouse_url, "select * from raw.ga4_traffic order by date, sessions desc")
    assert len(raw) == 9  # per day: the 2 biggest rows and the (other) row
    other = raw[raw["is_other_row"].astype(bool)]
    assert other["date"].tolist() == DAYS[:3]
    assert set(other["device_category"]) == {"(other)"}
    # Nothing lost, nothing counted twice: each day's rows add up to the day's sessions.
    by_day = raw.groupby("date")["sessions"].sum().to_dict()
    assert by_day == {DAYS[d - 1]: _day_sessions(d) for d in (1, 2, 3)}
    assert raw["_source_file"].iloc[0] == f"ga4:properties/{PROPERTY}/traffic/2026-03-02"

    checks = _checks(result)
    assert checks["quality_suite"].passed  # the (other) rows fit the unique key and device set
    flags = checks["ga4_flags"]
    assert not flags.passed and flags.severity == AssetCheckSeverity.WARN
    issues = flags.metadata["issues"].value
    assert "sampled on 2026-03-02, 2026-03-03, 2026-03-04" in issues
    assert "thresholded" in issues and "folded into the (other) row" in issues

    log = _read(warehouse_url, "select * from raw.ga4_load_log order by date")
    assert log["date"].tolist() == DAYS[:3]
    first = log.iloc[0].to_dict()
    assert first["run_id"] == result.run_id
    assert (first["property_id"], first["report"], first["target_table"], first["grain"]) == (
        PROPERTY,
        "traffic",
        "raw.ga4_traffic",
        "day",
    )
    assert first["start_date"] == first["end_date"] == DAYS[0]
    assert (first["status"], first["error"], first["rows"], first["other_rows"]) == (
        "loaded",
        None,
        3,
        1,
    )
    assert (first["pages"], first["requests"]) == (2, 2)
    assert (first["time_zone"], first["currency_code"]) == (ZONE, "EUR")
    assert bool(first["period_complete"]) is True
    assert bool(first["sampled"]) and first["sampling_ratio"] == pytest.approx(0.1)
    assert bool(first["thresholded"]) and bool(first["data_loss_from_other_row"])
    assert first["tokens_per_day_consumed"] == 20  # 2 pages x 10 tokens
    assert first["tokens_per_hour_consumed"] == 20
    assert 200_000 - 60 <= first["tokens_per_day_remaining"] < 200_000
    assert 40_000 - 60 <= first["tokens_per_hour_remaining"] < 40_000
    assert pd.Timestamp(first["requested_at"]).tzinfo is not None

    materialization = result.asset_materializations_for_node("ga4_traffic")[0]
    table = materialization.metadata["ga4_load_log"]
    names = [c.name for c in table.schema.columns]
    assert names[:6] == ["property_id", "date", "status", "rows", "other_rows", "pages"]
    rows = [r.data for r in table.records]
    day = next(r for r in rows if r["date"] == "2026-03-04")
    assert (day["property_id"], day["status"], day["rows"]) == (PROPERTY, "loaded", 3)
    assert (day["other_rows"], day["pages"]) == (1, 2)
    assert materialization.metadata["ga4_requests"].value == len(rows)


def test_load_log_writes_are_idempotent_per_run_property_report_and_date(duckdb_url: str) -> None:
    with FakeGA4Server([_prop()]) as server:
        result = _run(server, duckdb_url, DAYS[0], DAYS[1])
    assert result.success
    wh = Warehouse(duckdb_url)
    try:
        log_table = ga4_load_log_table(sa.MetaData())
        frame = wh.read(sa.select(log_table))
        write_log(wh, log_table, frame, result.run_id, ga4_reports()["traffic"])
        assert wh.count(log_table) == 2
    finally:
        wh.dispose()


def test_late_data_re_pull_replaces_values(warehouse_url: str) -> None:
    days = DAYS[:3]
    with FakeGA4Server([_prop(rows=_rows(days))]) as server:
        assert _run(server, warehouse_url, days[0], days[-1]).success
        before = _read(
            warehouse_url,
            "select date, sum(sessions) s, count(*) n from raw.ga4_traffic "
            "group by date order by date",
        )

        server.set_rows(PROPERTY, _rows(days, bump_last=100))  # GA4 revised the last day
        assert _run(server, warehouse_url, days[-1], days[-1]).success
    after = _read(
        warehouse_url,
        "select date, sum(sessions) s, count(*) n from raw.ga4_traffic group by date order by date",
    )

    assert before["n"].tolist() == after["n"].tolist() == [6, 6, 6]
    assert before["s"].tolist() == [_day_sessions(1), _day_sessions(2), _day_sessions(3)]
    assert after["s"].tolist() == [_day_sessions(1), _day_sessions(2), _day_sessions(3) + 600]
    log = _read(warehouse_url, "select run_id, date from raw.ga4_load_log")
    assert len(log) == 4 and log["run_id"].nunique() == 2


# -- properties and time zones -----------------------------------------------------------------


def test_two_properties_in_other_time_zones_load_their_own_days(duckdb_url: str) -> None:
    west = FakeProperty("111", _rows(), time_zone="America/Los_Angeles", currency_code="EUR")
    east = FakeProperty("222", _rows(), time_zone="Asia/Tokyo", currency_code="EUR")
    with FakeGA4Server([west, east]) as server:
        result = _run(server, duckdb_url, DAYS[0], DAYS[1], properties=["111", "222"])
        requested = {
            (r.property, r.date_ranges[0].start_date, r.date_ranges[0].end_date)
            for r in server.requests
        }
    assert result.success
    # The partition's date is requested as is: GA4 answers with the property's own day.
    assert requested == {
        (f"properties/{p}", d.isoformat(), d.isoformat()) for p in ("111", "222") for d in DAYS[:2]
    }
    raw = _read(
        duckdb_url,
        "select property_id, date, sum(sessions) s from raw.ga4_traffic "
        "group by 1, 2 order by 1, 2",
    )
    assert raw.values.tolist() == [
        ["111", DAYS[0], _day_sessions(1)],
        ["111", DAYS[1], _day_sessions(2)],
        ["222", DAYS[0], _day_sessions(1)],
        ["222", DAYS[1], _day_sessions(2)],
    ]
    log = _read(duckdb_url, "select distinct property_id, time_zone from raw.ga4_load_log")
    assert dict(log.values.tolist()) == {"111": "America/Los_Angeles", "222": "Asia/Tokyo"}

    checks = _checks(result)
    assert checks["quality_suite"].passed
    flags = checks["ga4_flags"]
    assert not flags.passed and flags.severity == AssetCheckSeverity.WARN
    issues = flags.metadata["issues"].value
    assert "property 111 reports in America/Los_Angeles, not the reporting zone" in issues
    assert "property 222 reports in Asia/Tokyo" in issues


def _spy_writes(monkeypatch: pytest.MonkeyPatch, fail_on: int | None = None) -> list[int]:
    """The periods of each group ``load_report`` writes, in order.

    A spy, not a mock: the real ``write_with_quarantine`` runs on the real warehouse. With
    ``fail_on``, that write (counting from 1) raises instead of running: a warehouse that
    fails on exactly one write in the middle of a run cannot be arranged for real here.
    """
    real = loading.write_with_quarantine
    written: list[int] = []

    def spy(wh, table, where, frame, *args, **kwargs):
        written.append(frame["date"].nunique())
        if len(written) == fail_on:
            raise RuntimeError("warehouse went away")
        return real(wh, table, where, frame, *args, **kwargs)

    monkeypatch.setattr(loading, "write_with_quarantine", spy)
    return written


@pytest.mark.parametrize(
    ("periods", "rows", "writes"),
    [
        (35, 200_000, [7]),  # the defaults: the whole week in one write
        (3, 200_000, [4, 3]),  # written once 3 periods are pending: after 2 API batches
        (35, 1, [2, 2, 2, 1]),  # a row bound of 1: each API batch of 2 days on its own
    ],
)
def test_pulled_days_are_written_in_bounded_groups(
    duckdb_url: str, monkeypatch: pytest.MonkeyPatch, periods: int, rows: int, writes: list[int]
) -> None:
    """Validating and writing a group costs about the same whatever its size, so pulled days
    are written together; WRITE_PERIODS and WRITE_ROWS bound a group (memory), and the rows
    loaded are the same however the days are grouped."""
    # The bounds are the module's own settings, set smaller so that a week shows them.
    monkeypatch.setattr(loading, "WRITE_PERIODS", periods)
    monkeypatch.setattr(loading, "WRITE_ROWS", rows)
    written = _spy_writes(monkeypatch)
    with FakeGA4Server([_prop()]) as server:
        result = _run(server, duckdb_url, DAYS[0], DAYS[6], batch_size=2)
    assert result.success
    assert written == writes
    loaded = _read(
        duckdb_url, "select date, sum(sessions) s from raw.ga4_traffic group by 1 order by 1"
    )
    assert loaded["s"].tolist() == [_day_sessions(d) for d in range(1, 8)]
    log = _read(duckdb_url, "select status from raw.ga4_load_log")
    assert log["status"].tolist() == ["loaded"] * 7


def test_every_report_loads_at_its_grain(duckdb_url: str) -> None:
    # Wednesday to Friday of ISO week 2026-10: the week and the month are pulled whole.
    with FakeGA4Server([_prop()]) as server:
        result = _run(server, duckdb_url, DAYS[2], DAYS[4], assets=ga4_assets)
        ranges = sorted(
            (r.date_ranges[0].start_date, r.date_ranges[0].end_date, len(r.dimensions))
            for r in server.requests
        )
    assert result.success
    assert {AssetKey(k) for k in GA4_ASSETS} == {a.key for a in ga4_assets}
    assert ("2026-03-02", "2026-03-08", 1) in ranges  # the ISO week, Monday to Sunday
    assert ("2026-03-01", "2026-03-31", 1) in ranges  # the month

    weekly = _read(duckdb_url, "select * from raw.ga4_users_weekly")
    assert weekly[["property_id", "week", "total_users"]].values.tolist() == [
        [PROPERTY, DAYS[0], 7 * 21]  # the fake sums users over the week's 7 days
    ]
    monthly = _read(duckdb_url, "select month, total_users from raw.ga4_users_monthly")
    assert monthly.values.tolist() == [[dt.date(2026, 3, 1), 7 * 21]]
    shop = _read(
        duckdb_url,
        "select date, sum(sessions) s, sum(add_to_carts) a, sum(ecommerce_purchases) p "
        "from raw.ga4_ecommerce group by date order by date",
    )
    assert shop.values.tolist() == [[DAYS[d - 1], _day_sessions(d), 18, 6] for d in (3, 4, 5)]
    log = _read(duckdb_url, "select report, grain, count(*) n from raw.ga4_load_log group by 1, 2")
    assert sorted(log.values.tolist()) == [
        ["ecommerce", "day", 3],
        ["traffic", "day", 3],
        ["users_monthly", "month", 1],
        ["users_weekly", "week", 1],
    ]
    assert all(c.passed for c in result.get_asset_check_evaluations())


# -- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "details", "expected"),
    [
        (grpc.StatusCode.PERMISSION_DENIED, "", "add its client_email as a Viewer"),
        (grpc.StatusCode.UNAUTHENTICATED, "", "the credentials were rejected"),
        (grpc.StatusCode.INVALID_ARGUMENT, "", "not a G-XXXX measurement id"),
        (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "Exhausted property tokens per day quota.",
            "resume after the daily quota resets at midnight Pacific time",
        ),
    ],
)
def test_api_errors_fail_the_run_at_once_with_the_cause(
    duckdb_url: str, fault: grpc.StatusCode, details: str, expected: str
) -> None:
    with FakeGA4Server([_prop()]) as server:
        server.inject_faults(fault, details=details)
        result = _run(server, duckdb_url, DAYS[0], DAYS[2])
        calls = server.calls
    assert not result.success
    assert calls == 1  # never retried
    message = _failure(result)
    assert "GA4 report `traffic` (raw.ga4_traffic) failed for 1 of 1 property" in message
    assert f"property {PROPERTY}:" in message and expected in message
    assert "loaded: nothing; not loaded: 2026-03-02, 2026-03-03, 2026-03-04" in message
    assert _read(duckdb_url, "select count(*) n from raw.ga4_traffic")["n"].iloc[0] == 0
    log = _read(duckdb_url, "select status, error from raw.ga4_load_log")
    status = "deferred" if fault == grpc.StatusCode.RESOURCE_EXHAUSTED else "failed"
    assert log["status"].tolist() == [status] * 3
    assert expected in log["error"].iloc[0]


def test_one_failing_property_does_not_stop_the_others(duckdb_url: str) -> None:
    props = [_prop(p) for p in ("111", "222")]
    with FakeGA4Server(props) as server:
        server.inject_faults(grpc.StatusCode.PERMISSION_DENIED)  # the first call: property 111
        result = _run(server, duckdb_url, DAYS[0], DAYS[1], properties=["111", "222"])
    assert not result.success
    message = _failure(result)
    assert "failed for 1 of 2 properties" in message and "property 111:" in message
    assert "The other properties were loaded." in message
    loaded = _read(duckdb_url, "select distinct property_id from raw.ga4_traffic")
    assert loaded["property_id"].tolist() == ["222"]


def test_measurement_id_fails_before_any_call(duckdb_url: str) -> None:
    with FakeGA4Server([_prop()]) as server:
        result = _run(server, duckdb_url, DAYS[0], DAYS[0], properties=["G-ABC123XYZ"])
        assert server.calls == 0
    assert "looks like a measurement id (G-XXXX)" in _failure(result)


def test_resource_exhausted_then_success(duckdb_url: str) -> None:
    with FakeGA4Server([_prop()]) as server:
        server.inject_faults(grpc.StatusCode.RESOURCE_EXHAUSTED)  # the hourly bucket, briefly
        result = _run(server, duckdb_url, DAYS[0], DAYS[6])
        calls = server.calls
    assert result.success
    assert calls == 3  # the refused batch, its retry, and the batch of the last 2 days
    log = _read(duckdb_url, "select date, requests, status from raw.ga4_load_log order by date")
    assert log["requests"].tolist() == [2] * 5 + [1] * 2
    assert set(log["status"]) == {"loaded"}
    assert _read(duckdb_url, "select count(*) n from raw.ga4_traffic")["n"].iloc[0] == 42


def test_retries_exhausted_fail_with_the_attempts(duckdb_url: str) -> None:
    with FakeGA4Server([_prop()]) as server:
        server.inject_faults(*[grpc.StatusCode.UNAVAILABLE] * 3)
        result = _run(server, duckdb_url, DAYS[0], DAYS[0], max_attempts=3)
    assert "GA4 RunReport for property 123456789 still failing after 3 attempts" in _failure(result)


def test_quota_floor_stops_a_backfill_and_says_when_to_resume(duckdb_url: str) -> None:
    # 10 tokens a request and 60 a day; with 2 days a batch, 40 are left after the first
    # batch and 20 after the second, below the floor of 35: days 5-7 wait for tomorrow.
    prop = _prop()
    with FakeGA4Server([prop], tokens_per_day=60, tokens_per_request=10) as server:
        result = _run(server, duckdb_url, DAYS[0], DAYS[6], batch_size=2, min_daily_tokens=35)
        assert server.calls == 2
    assert not result.success
    message = _failure(result)
    assert "20 daily tokens left, below the floor of 35" in message
    assert "Resume after" in message
    assert "not loaded: 2026-03-06, 2026-03-07, 2026-03-08" in message
    loaded = _read(duckdb_url, "select distinct date from raw.ga4_traffic order by date")
    assert loaded["date"].tolist() == DAYS[:4]
    log = _read(duckdb_url, "select date, status from raw.ga4_load_log order by date")
    assert log["status"].tolist() == ["loaded"] * 4 + ["deferred"] * 3


def test_days_pulled_before_the_quota_floor_load_in_their_groups(
    duckdb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Groups of 3 periods, 2 days an API batch: days 1-4 are written as a group, days 5-6
    are still pending when the floor stops the pull, and load all the same; day 7 waits."""
    monkeypatch.setattr(loading, "WRITE_PERIODS", 3)
    written = _spy_writes(monkeypatch)
    # 20 tokens a batch of 2 requests: 80 - 3 * 20 = 20 left after 3 batches, below 35.
    with FakeGA4Server([_prop()], tokens_per_day=80, tokens_per_request=10) as server:
        result = _run(server, duckdb_url, DAYS[0], DAYS[6], batch_size=2, min_daily_tokens=35)
    assert not result.success
    assert written == [4, 2]
    loaded = _read(duckdb_url, "select distinct date from raw.ga4_traffic order by date")
    assert loaded["date"].tolist() == DAYS[:6]
    log = _read(duckdb_url, "select date, status from raw.ga4_load_log order by date")
    assert log["status"].tolist() == ["loaded"] * 6 + ["deferred"]
    assert "not loaded: 2026-03-08" in _failure(result)


def test_a_failing_write_after_the_quota_floor_keeps_the_floor_as_its_cause(
    duckdb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first group (days 1-4) loads; the write of days 5-6, after the floor, fails.
    monkeypatch.setattr(loading, "WRITE_PERIODS", 3)
    _spy_writes(monkeypatch, fail_on=2)
    with FakeGA4Server([_prop()], tokens_per_day=80, tokens_per_request=10) as server:
        result = _run(server, duckdb_url, DAYS[0], DAYS[6], batch_size=2, min_daily_tokens=35)
    assert not result.success
    data = result.failure_data_for_node("ga4_traffic")
    assert data is not None
    chain, error = [], data.error  # Dagster's step error, then its causes
    while error is not None:
        chain.append((error.cls_name, error.message))
        error = error.cause
    names = [name for name, _ in chain]
    assert names[-2:] == ["RuntimeError", "GA4QuotaFloorError"], names
    assert "warehouse went away" in chain[-2][1]
    assert "below the floor of 35" in chain[-1][1]


def test_flags_warn_about_a_day_still_open_in_the_property_zone() -> None:
    row = {
        "property_id": "111",
        "date": DAYS[0],
        "status": "loaded",
        "time_zone": ZONE,
        "currency_code": "EUR",
        "period_complete": False,
        "sampled": False,
        "thresholded": False,
        "data_loss_from_other_row": False,
    }
    result = flags_result(ga4_reports()["traffic"], log_frame([row]), catalog().reporting)
    assert not result.passed and result.severity == AssetCheckSeverity.WARN
    assert "2026-03-02 not over yet in Europe/Copenhagen" in result.metadata["issues"].value
    weekly = flags_result(ga4_reports()["users_weekly"], log_frame([row]), catalog().reporting)
    assert weekly.passed  # an open week or month is expected: it is loaded to date
