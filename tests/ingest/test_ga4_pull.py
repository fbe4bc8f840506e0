"""Pulling GA4 period by period (``ingest.ga4.pull``) and filters, against the fake Data API over
real gRPC with the official client.

Fixture (``_rows``): 7 days from Friday 2024-03-01, each with 2 channels x 3 devices = 6 rows;
on day d (1-based) row j (1..6) has ``sessions = 10 * d + j``, so day d holds
``60 * d + 21`` sessions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import grpc
import pandas as pd
import pytest
from google.api_core import exceptions as gexc

from demo.fake_ga4 import FakeGA4Server, FakeProperty
from ingest.ga4.client import make_client
from ingest.ga4.errors import GA4Error, GA4QuotaExhaustedError, GA4RequestError
from ingest.ga4.filters import FieldFilter, FilterGroup
from ingest.ga4.load_log import loaded_rows
from ingest.ga4.pull import Bucket, BucketResult, GA4QuotaFloorError, buckets_for, pull_buckets
from ingest.ga4.request import build_request
from ingest.ga4.retry import RetryPolicy
from ingest.ga4.rows import parse_time_value
from ingest.ga4.run import ReportResult
from ingest.ga4.spec import TRAFFIC_REPORT, USERS_MONTHLY_REPORT, ReportSpec

PROPERTY = "424242"
DAYS = [dt.date(2024, 3, 1) + dt.timedelta(days=i) for i in range(7)]
NO_WAIT = RetryPolicy(max_attempts=4, initial_backoff_s=0.0, jitter=False)
DEVICES = ("desktop", "mobile", "tablet")


def _rows(days: list[dt.date] = DAYS, rows_on_last_day: int = 6) -> pd.DataFrame:
    records = []
    for d, day in enumerate(days, start=1):
        j = 0
        for channel, medium in (("Organic Search", "organic"), ("Paid Search", "cpc")):
            for device in DEVICES:
                j += 1
                if day == days[-1] and j > rows_on_last_day:
                    continue
                records.append(
                    {
                        "date": day,
                        "sessionDefaultChannelGroup": channel,
                        "sessionSource": "google",
                        "sessionMedium": medium,
                        "sessionCampaignName": "(organic)" if medium == "organic" else "spring",
                        "deviceCategory": device,
                        "sessions": 10 * d + j,
                        "engagedSessions": j,
                        "newUsers": 1,
                        "keyEvents": 0,
                        "transactions": 0,
                        "purchaseRevenue": 0.0,
                        "totalUsers": j,
                        "activeUsers": j,
                    }
                )
    return pd.DataFrame(records)


def _day_sessions(d: int) -> int:
    return 60 * d + 21


Env = tuple[FakeGA4Server, object]


@pytest.fixture
def serve() -> Iterator[Callable[..., Env]]:
    started: list[Env] = []

    def _serve(*properties: FakeProperty, **server_kwargs: object) -> Env:
        props = properties or (FakeProperty(PROPERTY, _rows(), time_zone="Europe/Copenhagen"),)
        server = FakeGA4Server(props, **server_kwargs).start()  # type: ignore[arg-type]
        client = make_client(endpoint=server.endpoint)
        started.append((server, client))
        return server, client

    yield _serve
    for server, client in started:
        client.transport.close()  # type: ignore[attr-defined]
        server.stop()


def _days(days: list[dt.date] = DAYS) -> list[Bucket]:
    return buckets_for("day", days[0], days[-1], latest=days[-1])


def _pull(client: object, buckets: list[Bucket], **kwargs: object) -> list:
    options: dict[str, object] = {"retry": NO_WAIT, "sleep": lambda s: None}
    options.update(kwargs)
    spec = options.pop("spec", TRAFFIC_REPORT)
    return list(pull_buckets(client, PROPERTY, spec, buckets, **options))  # type: ignore[arg-type]


# -- periods -----------------------------------------------------------------------------------


def test_buckets_for_days_weeks_and_months() -> None:
    wed, next_tue = dt.date(2026, 3, 4), dt.date(2026, 3, 10)
    days = buckets_for("day", wed, next_tue, latest=dt.date(2026, 11, 27))
    assert [(b.key, b.start, b.end) for b in days][:2] == [
        (wed, wed, wed),
        (dt.date(2026, 3, 5),) * 3,
    ]
    assert len(days) == 7

    # ISO weeks touched by Wed..next Tue: both pulled whole, Monday to Sunday.
    weeks = buckets_for("week", wed, next_tue, latest=dt.date(2026, 11, 27))
    assert [(b.key, b.end) for b in weeks] == [
        (dt.date(2026, 3, 2), dt.date(2026, 3, 8)),
        (dt.date(2026, 3, 9), dt.date(2026, 3, 15)),
    ]
    # The open week stops at the last complete day, but never before the run's last day.
    open_week = buckets_for("week", wed, next_tue, latest=dt.date(2026, 3, 9))
    assert [b.end for b in open_week] == [dt.date(2026, 3, 8), next_tue]
    assert open_week[1].period_end == dt.date(2026, 3, 15)

    months = buckets_for("month", dt.date(2026, 1, 15), dt.date(2026, 2, 14), latest=next_tue)
    assert [(b.key, b.end) for b in months] == [
        (dt.date(2026, 1, 1), dt.date(2026, 1, 31)),
        (dt.date(2026, 2, 1), dt.date(2026, 2, 28)),
    ]


# -- batching and paging -------------------------------------------------------------------------


def test_one_request_per_day_five_per_batch(serve: Callable[..., Env]) -> None:
    server, client = serve()
    batches = _pull(client, _days())

    assert [len(b) for b in batches] == [5, 2]
    assert server.calls == 2  # two BatchRunReports calls
    assert [(r.date_ranges[0].start_date, r.date_ranges[0].end_date) for r in server.requests] == [
        (d.isoformat(), d.isoformat()) for d in DAYS
    ]
    results = [item for batch in batches for item in batch]
    for d, item in enumerate(results, start=1):
        assert item.bucket.key == DAYS[d - 1]
        assert set(item.result.rows["date"]) == {DAYS[d - 1]}
        assert int(item.result.rows["sessions"].sum()) == _day_sessions(d)
        assert (item.result.pages, item.result.requests) == (1, 1)
        assert item.result.time_zone == "Europe/Copenhagen"


def test_each_request_of_a_batch_is_paged_to_the_end(serve: Callable[..., Env]) -> None:
    # Days 1-2 have 6 rows (3 pages of 2); day 3 only 2 rows (1 page): later calls leave it out.
    days = DAYS[:3]
    server, client = serve(FakeProperty(PROPERTY, _rows(days, rows_on_last_day=2)))
    (batch,) = _pull(client, _days(days), page_size=2)

    assert [item.result.pages for item in batch] == [3, 3, 1]
    assert [item.result.row_count for item in batch] == [6, 6, 2]
    assert server.calls == 3
    assert [(r.date_ranges[0].start_date, r.offset) for r in server.requests] == [
        ("2024-03-01", 0),
        ("2024-03-02", 0),
        ("2024-03-03", 0),
        ("2024-03-01", 2),
        ("2024-03-02", 2),
        ("2024-03-01", 4),
        ("2024-03-02", 4),
    ]
    for item in batch[:2]:
        assert not item.result.rows.duplicated(subset=["session_medium", "device_category"]).any()
    assert int(batch[0].result.rows["sessions"].sum()) == _day_sessions(1)


def test_batch_size_one_sends_plain_run_reports(serve: Callable[..., Env]) -> None:
    server, client = serve()
    batches = _pull(client, _days()[:3], batch_size=1)
    assert [len(b) for b in batches] == [1, 1, 1] and server.calls == 3


def test_other_row_belongs_to_the_day_it_was_pulled_for(serve: Callable[..., Env]) -> None:
    prop = FakeProperty(PROPERTY, _rows(), other_row_threshold=2)
    _, client = serve(prop)
    results = [item for batch in _pull(client, _days()) for item in batch]

    for d, item in enumerate(results, start=1):
        rows = item.result.rows
        other = rows[rows["is_other_row"]]
        assert len(rows) == 3 and len(other) == 1
        assert other["date"].iloc[0] == item.bucket.key  # "(other)" in the response
        assert other["device_category"].iloc[0] == "(other)"
        assert item.result.data_loss_from_other_row
        # The two biggest rows plus (other) still add up to the whole day.
        assert int(rows["sessions"].sum()) == _day_sessions(d)


def test_rows_outside_the_requested_period_are_an_error(serve: Callable[..., Env]) -> None:
    # yearWeek weeks (from Sunday) do not line up with ISO weeks (from Monday): this is why the
    # reports loader refuses yearWeek. 2024-03-04 is a Monday; its GA4 week started on the 3rd.
    _, client = serve()
    spec = ReportSpec("weeks", ("yearWeek",), ("sessions",))
    weeks = buckets_for("week", DAYS[0], DAYS[-1], latest=DAYS[-1])
    with pytest.raises(GA4Error, match="is yearWeek aligned with the period"):
        _pull(client, weeks, spec=spec)


def test_weekly_and_monthly_users_are_pulled_per_period(serve: Callable[..., Env]) -> None:
    server, client = serve()
    weekly = ReportSpec("users_weekly", ("isoYearIsoWeek",), ("totalUsers", "activeUsers"))
    weeks = buckets_for("week", DAYS[0], DAYS[-1], latest=DAYS[-1])
    (batch,) = _pull(client, weeks, spec=weekly)

    # Fri 1 - Sun 3 March is ISO week 2024-09 (from Mon 26 Feb); Mon 4 - Thu 7 is week 10.
    assert [item.bucket.key for item in batch] == [dt.date(2024, 2, 26), dt.date(2024, 3, 4)]
    assert [r.date_ranges[0].start_date for r in server.requests] == ["2024-02-26", "2024-03-04"]
    assert [item.result.rows["iso_year_iso_week"].tolist() for item in batch] == [
        [dt.date(2024, 2, 26)],
        [dt.date(2024, 3, 4)],
    ]
    # The fake sums users (GA4 would count distinct ones): 3 days x 21, then 4 x 21.
    assert [int(item.result.rows["total_users"].iloc[0]) for item in batch] == [63, 84]

    months = buckets_for("month", DAYS[0], DAYS[-1], latest=DAYS[-1])
    (monthly,) = _pull(client, months, spec=USERS_MONTHLY_REPORT)
    assert monthly[0].result.rows["year_month"].tolist() == [dt.date(2024, 3, 1)]


def test_week_values_follow_ga4_conventions() -> None:
    # GA4 yearWeek: weeks start on Sunday and January 1st is always in week 01.
    assert parse_time_value("yearWeek", "202601") == dt.date(2026, 1, 1)  # a Thursday
    assert parse_time_value("yearWeek", "202602") == dt.date(2026, 1, 4)  # the first Sunday
    assert parse_time_value("yearWeek", "202301") == dt.date(2023, 1, 1)  # a Sunday
    assert parse_time_value("yearWeek", "202353") == dt.date(2023, 12, 31)
    assert parse_time_value("isoYearIsoWeek", "202601") == dt.date(2025, 12, 29)
    assert parse_time_value("yearMonth", "(other)") is None
    with pytest.raises(GA4Error, match="expected YYYYWW"):
        parse_time_value("isoYearIsoWeek", "2026W1")


def test_fake_numbers_ga4_weeks_like_ga4(serve: Callable[..., Env]) -> None:
    new_year = [
        dt.date(2025, 12, 31),
        dt.date(2026, 1, 1),
        dt.date(2026, 1, 3),
        dt.date(2026, 1, 4),
    ]
    rows = pd.DataFrame({"date": new_year, "sessions": [1, 2, 4, 8]})
    _, client = serve(FakeProperty(PROPERTY, rows))
    # Two time dimensions make an invalid report spec, but a fine raw request.
    spec = ReportSpec("by_week", ("date", "yearWeek"), ("sessions",))
    request = build_request(PROPERTY, spec, new_year[0], new_year[-1], 0, 10)
    response = client.run_report(request=request)  # type: ignore[attr-defined]
    weeks = {r.dimension_values[0].value: r.dimension_values[1].value for r in response.rows}
    # Week 53 of 2025 runs from Sunday 28 December; week 01 of 2026 is Thursday 1 to Saturday
    # 3 January; week 02 starts on the first Sunday.
    assert weeks == {
        "20251231": "202553",
        "20260101": "202601",
        "20260103": "202601",
        "20260104": "202602",
    }
    assert parse_time_value("yearWeek", "202553") == dt.date(2025, 12, 28)


# -- quota and errors --------------------------------------------------------------------------


def test_quota_floor_stops_between_batches_and_says_when_to_resume(
    serve: Callable[..., Env],
) -> None:
    # 10 tokens a request, 100 a day, floor 65: after batch 1 (2 requests) 80 are left, after
    # batch 2 60, so batch 3 is not sent.
    server, client = serve(tokens_per_day=100, tokens_per_request=10)
    readings: list[int] = []
    pulled = []
    with pytest.raises(GA4QuotaFloorError) as info:
        for batch in pull_buckets(
            client,
            PROPERTY,
            TRAFFIC_REPORT,
            _days(),
            batch_size=2,
            retry=NO_WAIT,
            min_daily_tokens=65,
            on_quota=readings.append,
        ):
            pulled += [item.bucket.key for item in batch]

    assert pulled == DAYS[:4] and server.calls == 2
    assert readings == [80, 60]
    error = info.value
    assert (error.remaining, error.floor) == (60, 65)
    assert [b.key for b in error.pending] == DAYS[4:]
    assert error.resets_at is not None and error.resets_at.hour == 0
    assert "3 period(s) 2024-03-05..2024-03-07" in str(error)
    assert "Resume after" in str(error) and "min_daily_tokens" in str(error)
    assert isinstance(error, GA4QuotaExhaustedError)


def test_known_low_quota_stops_before_any_call(serve: Callable[..., Env]) -> None:
    server, client = serve()
    with pytest.raises(GA4QuotaFloorError, match="50 daily tokens left"):
        _pull(client, _days(), min_daily_tokens=100, daily_tokens_remaining=50)
    assert server.calls == 0


def test_daily_quota_running_out_mid_pull_keeps_what_was_pulled(
    serve: Callable[..., Env],
) -> None:
    server, client = serve(tokens_per_day=30, tokens_per_request=10)
    pulled = []
    with pytest.raises(GA4QuotaExhaustedError, match="midnight Pacific"):
        for batch in pull_buckets(
            client, PROPERTY, TRAFFIC_REPORT, _days(), batch_size=1, retry=NO_WAIT
        ):
            pulled += [item.bucket.key for item in batch]
    assert pulled == DAYS[:3] and server.calls == 4


def test_transient_batch_errors_are_retried(serve: Callable[..., Env]) -> None:
    server, client = serve()
    server.inject_faults(grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)
    (first, _) = _pull(client, _days())
    assert server.calls == 4  # 2 failed attempts + 2 batches
    assert [item.result.requests for item in first] == [3] * 5
    assert int(first[0].result.rows["sessions"].sum()) == _day_sessions(1)


def test_permission_denied_in_a_batch_fails_at_once(serve: Callable[..., Env]) -> None:
    server, client = serve()
    server.inject_faults(grpc.StatusCode.PERMISSION_DENIED)
    with pytest.raises(GA4RequestError, match="as a Viewer") as info:
        _pull(client, _days())
    assert server.calls == 1 and info.value.status == "PERMISSION_DENIED"
    assert "BatchRunReports failed for property 424242" in str(info.value)


def test_batch_size_is_checked_before_any_call(serve: Callable[..., Env]) -> None:
    server, client = serve()
    with pytest.raises(GA4RequestError, match="batch_size must be between 1 and 5"):
        _pull(client, _days(), batch_size=6)
    assert server.calls == 0


# -- filters through the fake ------------------------------------------------------------------


def _filtered(client: object, **filters: object) -> pd.DataFrame:
    spec = ReportSpec("f", ("date", "sessionMedium", "deviceCategory"), ("sessions",), **filters)  # type: ignore[arg-type]
    (batch,) = _pull(client, _days()[:1], spec=spec)
    return batch[0].result.rows


def test_dimension_and_metric_filters_are_applied(serve: Callable[..., Env]) -> None:
    server, client = serve()
    cpc = _filtered(client, dimension_filter=FieldFilter("sessionMedium", "in_list", ("CPC",)))
    assert set(cpc["session_medium"]) == {"cpc"}  # GA4 compares case-insensitively by default
    request = server.requests[-1]
    assert list(request.dimension_filter.filter.in_list_filter.values) == ["CPC"]

    not_tablet = FilterGroup("not", (FieldFilter("deviceCategory", "equals", ("tablet",)),))
    both = FilterGroup("and", (FieldFilter("sessionMedium", "begins_with", ("org",)), not_tablet))
    rows = _filtered(client, dimension_filter=both)
    assert sorted(rows["device_category"]) == ["desktop", "mobile"]
    assert set(rows["session_medium"]) == {"organic"}

    # Filtering on a dimension the report does not request (GA4 allows it).
    campaign = FieldFilter("sessionCampaignName", "full_regexp", ("spr.*",))
    assert set(_filtered(client, dimension_filter=campaign)["session_medium"]) == {"cpc"}

    # Day 1 sessions are 11..16; keep rows above 14, or between 12 and 13.
    big = _filtered(client, metric_filter=FieldFilter("sessions", "greater_than", (14,)))
    assert sorted(big["sessions"].tolist()) == [15, 16]
    mid = _filtered(client, metric_filter=FieldFilter("sessions", "between", (12, 13)))
    assert sorted(mid["sessions"].tolist()) == [12, 13]


def test_unsupported_filters_are_rejected_clearly(serve: Callable[..., Env]) -> None:
    server, client = serve()
    numeric_on_dimension = FieldFilter("date", "greater_than", (20240301,))
    spec = ReportSpec("f", ("date",), ("sessions",), dimension_filter=numeric_on_dimension)
    # The spec itself already says so, before any call...
    assert spec.problems() == ["dimension_filter cannot use greater_than"]
    # ...and the fake refuses it rather than ignoring it.
    request = build_request(PROPERTY, spec, DAYS[0], DAYS[0], 0, 10)
    with pytest.raises(gexc.MethodNotImplemented, match="string, in-list and empty"):
        client.run_report(request=request)  # type: ignore[attr-defined]
    assert server.calls == 1


def test_a_day_is_complete_once_over_in_the_property_zone() -> None:
    day = dt.date(2026, 3, 2)
    bucket = Bucket(day, day, day, day)
    # 06:00 in Copenhagen on 3 March: still 2 March (21:00) in Los Angeles, 14:00 in Tokyo.
    requested_at = dt.datetime(2026, 3, 3, 5, 0, tzinfo=dt.UTC)

    def complete(zone: str) -> bool | None:
        result = ReportResult(
            rows=pd.DataFrame(),
            property_id=PROPERTY,
            time_zone=zone,
            currency_code="EUR",
            sampled=False,
            thresholded=False,
            data_loss_from_other_row=False,
            requested_at=requested_at,
        )
        (row,) = loaded_rows(
            "run", "traffic", "raw.ga4_traffic", "day", [(BucketResult(bucket, result), 0, 0)]
        )
        return row["period_complete"]

    assert complete("Europe/Copenhagen") is True
    assert complete("Asia/Tokyo") is True
    assert complete("America/Los_Angeles") is False
    assert complete("") is None
