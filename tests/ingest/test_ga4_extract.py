"""GA4 extraction against the local fake Data API: the official client over real gRPC, no mocks.

Fixture arithmetic (``_traffic_rows``): 3 days x 2 channels x 2 devices = 12 rows, row i = 1..12:
sessions = i (sum 78), engagedSessions = i // 2 (sum 36), newUsers = 1 (sum 12),
keyEvents = i % 3 (sum 12), transactions = 1 when i % 4 == 0 (sum 3),
purchaseRevenue = 10.25 per transaction (sum 30.75).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pandas as pd
import pytest
from google.analytics.data_v1beta.types import (
    BatchRunReportsRequest,
    DateRange,
    Dimension,
    Metric,
    RunReportRequest,
)
from google.api_core import exceptions as gexc

from demo.fake_ga4 import FakeGA4Server, FakeProperty
from ingest.ga4.client import make_client
from ingest.ga4.errors import (
    GA4CredentialsError,
    GA4Error,
    GA4QuotaExhaustedError,
    GA4RequestError,
    GA4RetriesExhaustedError,
)
from ingest.ga4.retry import RetryPolicy
from ingest.ga4.rows import snake_case
from ingest.ga4.run import ReportResult, run_report
from ingest.ga4.spec import TRAFFIC_REPORT, USERS_MONTHLY_REPORT, ReportSpec

PROPERTY = "123456"
START, END = dt.date(2024, 3, 1), dt.date(2024, 3, 3)
DAYS = [START, dt.date(2024, 3, 2), END]
TRAFFIC_COLUMNS = [
    "date",
    "session_default_channel_group",
    "session_source",
    "session_medium",
    "session_campaign_name",
    "device_category",
    "sessions",
    "engaged_sessions",
    "new_users",
    "key_events",
    "transactions",
    "purchase_revenue",
    "is_other_row",
]
FAST_RETRY = RetryPolicy(max_attempts=5, initial_backoff_s=0.5, max_backoff_s=4.0)


def _traffic_rows(sessions_bump: int = 0) -> pd.DataFrame:
    """The 12-row fixture described in the module docstring; ``sessions_bump`` is added to
    every row of the last day to simulate late-arriving data."""
    records = []
    i = 0
    for day in DAYS:
        for channel, source, medium, campaign in (
            ("Organic Search", "google", "organic", "(organic)"),
            ("Paid Search", "google", "cpc", "spring_sale"),
        ):
            for device in ("desktop", "mobile"):
                i += 1
                transactions = 1 if i % 4 == 0 else 0
                records.append(
                    {
                        "date": day,
                        "sessionDefaultChannelGroup": channel,
                        "sessionSource": source,
                        "sessionMedium": medium,
                        "sessionCampaignName": campaign,
                        "deviceCategory": device,
                        "sessions": i + (sessions_bump if day == END else 0),
                        "engagedSessions": i // 2,
                        "newUsers": 1,
                        "keyEvents": i % 3,
                        "transactions": transactions,
                        "purchaseRevenue": 10.25 * transactions,
                    }
                )
    return pd.DataFrame(records)


class Sleeps(list[float]):
    """Records requested backoff delays instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


Env = tuple[FakeGA4Server, object]


@pytest.fixture
def serve() -> Iterator[Callable[..., Env]]:
    """Factory starting a FakeGA4Server and a real client for it; both closed after the test."""
    started: list[tuple[FakeGA4Server, object]] = []

    def _serve(*properties: FakeProperty, **server_kwargs: object) -> Env:
        props = properties or (FakeProperty(PROPERTY, _traffic_rows()),)
        server = FakeGA4Server(props, **server_kwargs).start()  # type: ignore[arg-type]
        client = make_client(endpoint=server.endpoint)
        started.append((server, client))
        return server, client

    yield _serve
    for server, client in started:
        client.transport.close()  # type: ignore[attr-defined]
        server.stop()


def _pull(client: object, **kwargs: object) -> ReportResult:
    options: dict[str, object] = {"retry": FAST_RETRY, "sleep": Sleeps()}
    options.update(kwargs)
    property_id = options.pop("property_id", PROPERTY)
    spec = options.pop("spec", TRAFFIC_REPORT)
    return run_report(client, property_id, spec, START, END, **options)  # type: ignore[arg-type]


# -- paging, typing, shape ------------------------------------------------------------------


def test_pages_three_times_and_totals_match_fixture(serve: Callable[..., Env]) -> None:
    server, client = serve()
    result = _pull(client, page_size=5)

    assert (result.pages, result.requests, result.row_count, len(result.rows)) == (3, 3, 12, 12)
    assert int(result.rows["sessions"].sum()) == 78
    assert int(result.rows["engaged_sessions"].sum()) == 36
    assert int(result.rows["new_users"].sum()) == 12
    assert int(result.rows["key_events"].sum()) == 12
    assert int(result.rows["transactions"].sum()) == 3
    assert result.rows["purchase_revenue"].sum() == pytest.approx(30.75)
    dims = [snake_case(d) for d in TRAFFIC_REPORT.dimensions]
    assert not result.rows.duplicated(subset=dims).any()

    assert [(r.offset, r.limit) for r in server.requests] == [(0, 5), (5, 5), (10, 5)]
    for request in server.requests:
        assert [o.dimension.dimension_name for o in request.order_bys] == list(
            TRAFFIC_REPORT.dimensions
        )
        assert request.return_property_quota and not request.keep_empty_rows
        assert request.date_ranges[0].start_date == "2024-03-01"
        assert request.date_ranges[0].end_date == "2024-03-03"


def test_values_are_cast_by_metric_header_type(serve: Callable[..., Env]) -> None:
    _, client = serve()
    rows = _pull(client).rows

    assert list(rows.columns) == TRAFFIC_COLUMNS
    assert {type(d) for d in rows["date"]} == {dt.date}
    assert sorted(set(rows["date"])) == DAYS
    for column in ("sessions", "engaged_sessions", "new_users", "key_events", "transactions"):
        assert rows[column].dtype == "Int64", column
    assert rows["purchase_revenue"].dtype == "float64"
    assert rows["is_other_row"].dtype == bool and not rows["is_other_row"].any()
    assert rows["session_default_channel_group"].iloc[0] == "Organic Search"


def test_float_and_seconds_metrics_become_float64(serve: Callable[..., Env]) -> None:
    _, client = serve()
    spec = ReportSpec("engagement", ("date",), ("sessions", "engagementRate"))
    rows = _pull(client, spec=spec).rows.set_index("date")

    assert rows["engagement_rate"].dtype == "float64"
    # Day 1 holds rows 1..4: engagedSessions 0+1+1+2 = 4 over sessions 1+2+3+4 = 10.
    assert rows.loc[START, "engagement_rate"] == pytest.approx(0.4)
    assert rows.loc[START, "sessions"] == 10


def test_rows_with_all_zero_metrics_are_omitted(serve: Callable[..., Env]) -> None:
    rows = _traffic_rows()
    rows.loc[0, ["sessions", "engagedSessions", "newUsers", "keyEvents"]] = 0
    _, client = serve(FakeProperty(PROPERTY, rows))
    result = _pull(client)

    assert result.row_count == 11
    assert int(result.rows["sessions"].sum()) == 77


def test_empty_range_gives_typed_empty_frame(serve: Callable[..., Env]) -> None:
    _, client = serve()
    result = run_report(client, PROPERTY, TRAFFIC_REPORT, dt.date(2023, 1, 1), dt.date(2023, 1, 2))

    assert (result.pages, result.row_count, len(result.rows)) == (1, 0, 0)
    assert list(result.rows.columns) == TRAFFIC_COLUMNS
    assert result.rows["sessions"].dtype == "Int64"


def test_other_row_is_kept_and_flagged(serve: Callable[..., Env]) -> None:
    _, client = serve(FakeProperty(PROPERTY, _traffic_rows(), other_row_threshold=4))
    result = _pull(client, page_size=2)

    assert result.data_loss_from_other_row
    assert (result.row_count, len(result.rows), result.pages) == (5, 5, 3)
    other = result.rows[result.rows["is_other_row"]]
    assert len(other) == 1
    assert other["date"].iloc[0] is None
    assert other["device_category"].iloc[0] == "(other)"
    # The four biggest rows are 12, 11, 10, 9; the other row holds 1..8 = 36. Nothing is lost.
    assert int(other["sessions"].iloc[0]) == 36
    assert int(result.rows["sessions"].sum()) == 78


# -- changing data and metadata ---------------------------------------------------------------


def test_late_data_changes_values_between_pulls(serve: Callable[..., Env]) -> None:
    server, client = serve()
    before = _pull(client).rows
    server.set_rows(PROPERTY, _traffic_rows(sessions_bump=100))
    after = _pull(client).rows

    def by_day(rows: pd.DataFrame) -> dict[dt.date, int]:
        return {d: int(v) for d, v in rows.groupby("date")["sessions"].sum().items()}

    assert by_day(before) == {DAYS[0]: 10, DAYS[1]: 26, DAYS[2]: 42}
    assert by_day(after) == {DAYS[0]: 10, DAYS[1]: 26, DAYS[2]: 442}


def test_each_property_reports_its_own_time_zone_and_currency(serve: Callable[..., Env]) -> None:
    _, client = serve(
        FakeProperty("111", _traffic_rows(), time_zone="America/Los_Angeles"),
        FakeProperty("222", _traffic_rows(), time_zone="Asia/Tokyo", currency_code="JPY"),
    )
    west = _pull(client, property_id="111")
    east = _pull(client, property_id="222")

    assert (west.property_id, west.time_zone, west.currency_code) == (
        "111",
        "America/Los_Angeles",
        "USD",
    )
    assert (east.property_id, east.time_zone, east.currency_code) == ("222", "Asia/Tokyo", "JPY")


@pytest.mark.parametrize(
    ("sampled", "thresholded"), [(False, False), (True, False), (False, True), (True, True)]
)
def test_sampling_and_thresholding_flags(
    serve: Callable[..., Env], sampled: bool, thresholded: bool
) -> None:
    prop = FakeProperty(PROPERTY, _traffic_rows(), sampled=sampled, thresholded=thresholded)
    _, client = serve(prop)
    result = _pull(client)

    assert (result.sampled, result.thresholded) == (sampled, thresholded)
    assert not result.data_loss_from_other_row


def test_quota_dict_sums_consumption_over_pages(serve: Callable[..., Env]) -> None:
    _, client = serve(tokens_per_day=1_000, tokens_per_hour=None, tokens_per_request=7)
    result = _pull(client, page_size=5)

    assert result.quota == {
        "tokens_per_day_consumed": 21,
        "tokens_per_day_remaining": 1_000 - 21,
        "tokens_per_hour_consumed": None,
        "tokens_per_hour_remaining": None,
    }


# -- retries and errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    ],
)
def test_transient_errors_are_retried_then_succeed(
    serve: Callable[..., Env], code: grpc.StatusCode
) -> None:
    server, client = serve()
    server.inject_faults(code, code)
    sleeps = Sleeps()
    result = _pull(client, sleep=sleeps)

    assert result.requests == 3 and result.pages == 1
    assert int(result.rows["sessions"].sum()) == 78
    assert len(sleeps) == 2
    # Equal jitter keeps each wait in [base/2, base], base doubling from 0.5 s.
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0


def test_retries_are_bounded(serve: Callable[..., Env]) -> None:
    server, client = serve()
    server.inject_faults(*[grpc.StatusCode.UNAVAILABLE] * 10)
    sleeps = Sleeps()
    policy = RetryPolicy(max_attempts=3, initial_backoff_s=10, max_backoff_s=15, jitter=False)

    with pytest.raises(GA4RetriesExhaustedError, match="after 3 attempts") as info:
        _pull(client, retry=policy, sleep=sleeps)

    assert info.value.attempts == 3 and server.calls == 3
    assert isinstance(info.value.__cause__, gexc.ServiceUnavailable)
    assert sleeps == [10, 15]  # doubling, capped at max_backoff_s


def test_retry_delays_stay_within_bounds() -> None:
    policy = RetryPolicy(initial_backoff_s=1.0, max_backoff_s=30.0)
    for retry_number in range(1, 30):
        base = min(30.0, 2.0 ** (retry_number - 1))
        assert base / 2 <= policy.delay(retry_number) <= base <= 30.0


@pytest.mark.parametrize(
    ("code", "exception", "hint"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, gexc.InvalidArgument, "G-XXXX measurement id"),
        (grpc.StatusCode.PERMISSION_DENIED, gexc.PermissionDenied, "as a Viewer"),
        (grpc.StatusCode.UNAUTHENTICATED, gexc.Unauthenticated, "credentials were rejected"),
    ],
)
def test_client_errors_fail_at_once_with_a_useful_message(
    serve: Callable[..., Env], code: grpc.StatusCode, exception: type[Exception], hint: str
) -> None:
    server, client = serve()
    server.inject_faults(code)
    sleeps = Sleeps()

    with pytest.raises(GA4RequestError, match=hint) as info:
        _pull(client, sleep=sleeps)

    assert server.calls == 1 and sleeps == []
    assert info.value.status == code.name
    assert isinstance(info.value.__cause__, exception)


def test_unknown_property_is_permission_denied(serve: Callable[..., Env]) -> None:
    _, client = serve()
    with pytest.raises(GA4RequestError, match="lacks access to property 999") as info:
        _pull(client, property_id="999")
    assert info.value.status == "PERMISSION_DENIED"


def test_unknown_metric_name_is_rejected_by_the_server(serve: Callable[..., Env]) -> None:
    server, client = serve()
    spec = ReportSpec("typo", ("date",), ("sesions",))
    with pytest.raises(GA4RequestError, match="Field sesions is not a valid metric"):
        _pull(client, spec=spec)
    assert server.calls == 1


@pytest.mark.parametrize("bad_id", ["G-ABC123XYZ", "properties/123", "", " 123"])
def test_property_id_is_validated_before_any_call(serve: Callable[..., Env], bad_id: str) -> None:
    server, client = serve()
    with pytest.raises(GA4RequestError, match="must be numeric"):
        _pull(client, property_id=bad_id)
    assert server.calls == 0


def test_measurement_id_gets_a_specific_hint(serve: Callable[..., Env]) -> None:
    _, client = serve()
    with pytest.raises(GA4RequestError, match=r"measurement id \(G-XXXX\)"):
        _pull(client, property_id="G-ABC123XYZ")


def test_daily_quota_exhaustion_fails_at_once(serve: Callable[..., Env]) -> None:
    # 10 tokens a request and 20 a day: pages one and two pass, page three hits the empty bucket.
    server, client = serve(tokens_per_day=20, tokens_per_request=10)
    sleeps = Sleeps()

    with pytest.raises(GA4QuotaExhaustedError, match="midnight Pacific time") as info:
        _pull(client, page_size=5, sleep=sleeps)

    assert server.calls == 3 and sleeps == []
    assert "tokens per day" in str(info.value)
    assert info.value.resets_at is not None
    assert info.value.resets_at.utcoffset() in (dt.timedelta(hours=-8), dt.timedelta(hours=-7))
    assert (info.value.resets_at.hour, info.value.resets_at.minute) == (0, 0)


def test_hourly_quota_exhaustion_is_retried_until_the_bucket_refills(
    serve: Callable[..., Env],
) -> None:
    server, client = serve(tokens_per_hour=10, tokens_per_request=10)
    waits: list[float] = []

    def wait_for_next_hour(seconds: float) -> None:
        waits.append(seconds)
        server.reset_quota(daily=False)

    result = _pull(client, page_size=5, sleep=wait_for_next_hour)

    assert result.pages == 3 and result.requests == 5 and len(waits) == 2
    assert int(result.rows["sessions"].sum()) == 78


class RestStyle429Client:
    """Wraps the real client and answers the first call with the REST flavour of HTTP 429.

    Over REST the client raises ``TooManyRequests``, the parent of gRPC's ``ResourceExhausted``,
    so code that only catches ``ResourceExhausted`` would not retry it.
    """

    def __init__(self, client: object, message: str) -> None:
        self._client = client
        self._message = message
        self.raised = False

    def run_report(self, **kwargs: object) -> object:
        if not self.raised:
            self.raised = True
            raise gexc.TooManyRequests(self._message)
        return self._client.run_report(**kwargs)  # type: ignore[attr-defined]


def test_rest_too_many_requests_is_retried(serve: Callable[..., Env]) -> None:
    _, client = serve()
    wrapped = RestStyle429Client(client, "Exhausted property tokens per hour quota.")
    result = _pull(wrapped)
    assert wrapped.raised and result.requests == 2


def test_rest_daily_quota_is_not_retried(serve: Callable[..., Env]) -> None:
    server, client = serve()
    wrapped = RestStyle429Client(client, "Exhausted property tokens per day quota.")
    with pytest.raises(GA4QuotaExhaustedError):
        _pull(wrapped)
    assert server.calls == 0


# -- specs and client construction ------------------------------------------------------------


def test_traffic_report_spec_is_valid() -> None:
    assert TRAFFIC_REPORT.problems() == []


def test_spec_limit_problems() -> None:
    too_wide = ReportSpec("wide", ("date", *(f"d{i}" for i in range(9))), ("sessions",))
    too_many = ReportSpec("many", ("date",), tuple(f"m{i}" for i in range(11)))
    no_date = ReportSpec("nodate", ("deviceCategory",), ("sessions",))
    dupes = ReportSpec("dupes", ("date", "date"), ("sessions", "conversions"))

    assert any("at most 9" in p for p in too_wide.problems())
    assert any("at most 10" in p for p in too_many.problems())
    assert any("a time dimension (date, isoYearIsoWeek" in p for p in no_date.problems())
    assert USERS_MONTHLY_REPORT.problems() == []
    assert any("duplicate dimension names: date" in p for p in dupes.problems())
    assert any("keyEvents" in p for p in dupes.problems())


def test_invalid_spec_is_rejected_before_any_call(serve: Callable[..., Env]) -> None:
    server, client = serve()
    spec = ReportSpec("many", ("date",), tuple(f"m{i}" for i in range(11)))
    with pytest.raises(GA4RequestError, match="at most 10"):
        _pull(client, spec=spec)
    assert server.calls == 0


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sessionDefaultChannelGroup", "session_default_channel_group"),
        ("keyEvents", "key_events"),
        ("date", "date"),
        ("customEvent:plan_name", "custom_event_plan_name"),
    ],
)
def test_snake_case(name: str, expected: str) -> None:
    assert snake_case(name) == expected


@pytest.mark.parametrize(
    "credentials_json",
    [
        '{"type": "service_account", "private_key": "SECRET-KEY-MATERIAL"',  # broken JSON
        '{"type": "service_account", "private_key": "SECRET-KEY-MATERIAL"}',  # incomplete key
        "/nonexistent/SECRET-KEY-MATERIAL.json",
    ],
)
def test_credential_errors_do_not_echo_key_material(credentials_json: str) -> None:
    with pytest.raises(GA4CredentialsError) as info:
        make_client(credentials_json=credentials_json)
    _assert_no_key_material(info.value)


def test_unreadable_key_file_does_not_echo_key_material(tmp_path: Path) -> None:
    key_file = tmp_path / "key.json"
    key_file.write_text('{"type": "service_account", "private_key": "SECRET-KEY-MATERIAL"}')
    with pytest.raises(GA4CredentialsError, match=r"key\.json") as info:
        make_client(credentials_json=str(key_file))
    _assert_no_key_material(info.value)


def _assert_no_key_material(error: GA4CredentialsError) -> None:
    assert isinstance(error, GA4Error)
    assert "SECRET-KEY-MATERIAL" not in str(error)
    # Tracebacks print a suppressed context, so the parser's error (which may quote the key)
    # must not be attached as the cause or as an unsuppressed context.
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


# -- the fake itself, through the raw client ---------------------------------------------------


def _raw_request(**fields: object) -> RunReportRequest:
    base: dict[str, object] = {
        "property": f"properties/{PROPERTY}",
        "dimensions": [Dimension(name="date")],
        "metrics": [Metric(name="sessions")],
        "date_ranges": [DateRange(start_date="2024-03-01", end_date="2024-03-03")],
    }
    base.update(fields)
    return RunReportRequest(**base)


def test_fake_enforces_request_limits(serve: Callable[..., Env]) -> None:
    _, client = serve()
    names = ["date", "deviceCategory", "country", "city", "region", "language", "browser"]
    ten_dims = [Dimension(name=n) for n in [*names, "platform", "hostName", "landingPage"]]
    with pytest.raises(gexc.InvalidArgument, match="limited to 9 dimensions"):
        client.run_report(request=_raw_request(dimensions=ten_dims))
    with pytest.raises(gexc.InvalidArgument, match="properties/<numeric id>"):
        client.run_report(request=_raw_request(property="properties/G-ABC123"))
    with pytest.raises(gexc.InvalidArgument, match="after end"):
        client.run_report(
            request=_raw_request(
                date_ranges=[DateRange(start_date="2024-03-03", end_date="2024-03-01")]
            )
        )
    # Past 250,000 the API caps the page instead of failing; the fixture just has 3 days.
    capped = client.run_report(request=_raw_request(limit=1_000_000))
    assert capped.row_count == 3 and len(capped.rows) == 3


def test_fake_batch_run_reports(serve: Callable[..., Env]) -> None:
    server, client = serve()
    batch = BatchRunReportsRequest(
        property=f"properties/{PROPERTY}",
        requests=[
            _raw_request(property=""),
            _raw_request(property="", dimensions=[Dimension(name="deviceCategory")]),
        ],
    )
    response = client.batch_run_reports(request=batch)

    assert [r.row_count for r in response.reports] == [3, 2]
    device_sessions = {
        row.dimension_values[0].value: int(row.metric_values[0].value)
        for row in response.reports[1].rows
    }
    assert device_sessions == {"desktop": 36, "mobile": 42}  # odd i vs even i over 1..12
    assert [r.property for r in server.requests] == [f"properties/{PROPERTY}"] * 2
    with pytest.raises(gexc.InvalidArgument, match="at most 5"):
        client.batch_run_reports(
            request=BatchRunReportsRequest(
                property=f"properties/{PROPERTY}", requests=[_raw_request(property="")] * 6
            )
        )


def test_monthly_users_report_parses_year_month() -> None:
    # Two days in January, one in February; the fake sums users per month (the real API
    # counts distinct users - we only check the month key and the typing here).
    rows = pd.DataFrame(
        {
            "date": [dt.date(2026, 1, 5), dt.date(2026, 1, 20), dt.date(2026, 2, 1)],
            "totalUsers": [10, 20, 7],
            "newUsers": [4, 5, 1],
            "activeUsers": [9, 18, 7],
        }
    )
    prop = FakeProperty(property_id=PROPERTY, rows=rows, time_zone="Europe/Copenhagen")
    with FakeGA4Server([prop]) as server:
        client = make_client(endpoint=server.endpoint)
        try:
            result = run_report(
                client, PROPERTY, USERS_MONTHLY_REPORT, dt.date(2026, 1, 1), dt.date(2026, 2, 28)
            )
        finally:
            client.transport.close()
    frame = result.rows.sort_values("year_month").reset_index(drop=True)
    assert frame["year_month"].tolist() == [dt.date(2026, 1, 1), dt.date(2026, 2, 1)]
    assert frame["total_users"].tolist() == [30, 7]
    assert frame["new_users"].tolist() == [9, 1]
    assert not frame["is_other_row"].any()
