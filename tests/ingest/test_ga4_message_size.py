"""GA4 pages bigger than gRPC's default 4 MiB receive limit (issue 13, item 18).

The official client over real gRPC against the local fake server. ``make_client(endpoint=...)``
must open its channel with the same unlimited message sizes as Google's own transport, and a
message-size error (gRPC reports it as RESOURCE_EXHAUSTED, like a quota error) must fail at once
with advice to lower ``page_size`` instead of being retried as if it were quota.

Fixture size: one day, ``ROWS`` rows, each with a distinct 200-character campaign name. A row
is at least 200 bytes on the wire, so one page of every row is > 6 MB, well past 4 MiB
(4,194,304 bytes).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import grpc
import pandas as pd
import pytest
from google.analytics.data_v1beta import BetaAnalyticsDataClient
from google.analytics.data_v1beta.services.beta_analytics_data.transports import (
    BetaAnalyticsDataGrpcTransport,
)
from google.api_core import exceptions as gexc

from demo.fake_ga4 import FakeGA4Server, FakeProperty
from ingest.ga4.client import make_client
from ingest.ga4.errors import GA4MessageTooLargeError, GA4RequestError
from ingest.ga4.pull import buckets_for, pull_buckets
from ingest.ga4.retry import RetryPolicy
from ingest.ga4.run import run_report
from ingest.ga4.spec import TRAFFIC_REPORT

PROPERTY = "123456"
DAY = dt.date(2024, 3, 1)
ROWS = 30_000
DEFAULT_LIMIT = 4 * 1024 * 1024
RETRY = RetryPolicy(max_attempts=5, initial_backoff_s=0.5, max_backoff_s=4.0)


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _big_day() -> pd.DataFrame:
    # Row i has i sessions, so the day's total is 1 + 2 + ... + ROWS = ROWS * (ROWS + 1) / 2.
    return pd.DataFrame(
        {
            "date": [DAY] * ROWS,
            "sessionDefaultChannelGroup": "Paid Search",
            "sessionSource": "google",
            "sessionMedium": "cpc",
            "sessionCampaignName": [f"campaign_{i:06d}_".ljust(200, "x") for i in range(ROWS)],
            "deviceCategory": "desktop",
            "sessions": range(1, ROWS + 1),
        }
    )


def _small_day() -> pd.DataFrame:
    return pd.DataFrame({"date": [DAY], "sessions": [7]})


@pytest.fixture(scope="module")
def big_server() -> Iterator[FakeGA4Server]:
    with FakeGA4Server([FakeProperty(PROPERTY, _big_day())]) as server:
        yield server


@pytest.fixture
def small_server() -> Iterator[FakeGA4Server]:
    with FakeGA4Server([FakeProperty(PROPERTY, _small_day())]) as server:
        yield server


def _close(client: BetaAnalyticsDataClient) -> None:
    client.transport.close()


def test_page_over_4_mib_arrives_through_a_custom_endpoint(big_server: FakeGA4Server) -> None:
    client = make_client(endpoint=big_server.endpoint)
    try:
        raw = client.run_report(
            request={
                "property": f"properties/{PROPERTY}",
                "dimensions": [{"name": d} for d in TRAFFIC_REPORT.dimensions],
                "metrics": [{"name": "sessions"}],
                "date_ranges": [{"start_date": "2024-03-01", "end_date": "2024-03-01"}],
                "limit": 100_000,
            }
        )
        # The page itself is past the default limit, so the test exercises what it claims to.
        assert raw._pb.ByteSize() > DEFAULT_LIMIT
        result = run_report(client, PROPERTY, TRAFFIC_REPORT, DAY, DAY, retry=RETRY, sleep=Sleeps())
    finally:
        _close(client)
    assert result.pages == 1 and result.requests == 1
    assert len(result.rows) == ROWS
    assert int(result.rows["sessions"].sum()) == ROWS * (ROWS + 1) // 2


def test_custom_endpoint_channel_has_the_library_transport_options() -> None:
    """Same options Google's transport passes to its own channel (checked, not copied)."""
    captured: dict[str, object] = {}
    real = grpc.insecure_channel

    def spy(target: str, options: object = None, *args: object, **kwargs: object) -> object:
        captured["options"] = dict(options or [])
        return real(target, options, *args, **kwargs)

    grpc.insecure_channel = spy  # type: ignore[assignment]
    try:
        client = make_client(endpoint="127.0.0.1:1")
    finally:
        grpc.insecure_channel = real  # type: ignore[assignment]
    _close(client)
    options = captured["options"]
    assert isinstance(options, dict)
    assert options["grpc.max_receive_message_length"] == -1
    assert options["grpc.max_send_message_length"] == -1


def test_local_message_size_error_fails_at_once_with_page_size_advice(
    big_server: FakeGA4Server,
) -> None:
    """A channel with the default limit: the real client-side error, raised by gRPC itself."""
    channel = grpc.insecure_channel(big_server.endpoint)
    client = BetaAnalyticsDataClient(transport=BetaAnalyticsDataGrpcTransport(channel=channel))
    calls_before = big_server.calls
    sleeps = Sleeps()
    try:
        with pytest.raises(GA4MessageTooLargeError) as info:
            run_report(client, PROPERTY, TRAFFIC_REPORT, DAY, DAY, retry=RETRY, sleep=sleeps)
    finally:
        _close(client)
    assert big_server.calls - calls_before == 1 and sleeps == []
    assert isinstance(info.value, GA4RequestError)  # permanent, like a 400
    assert isinstance(info.value.__cause__, gexc.ResourceExhausted)
    message = str(info.value)
    assert "page_size" in message and "100000" in message
    assert "quota" not in message.lower().replace("not a quota", "")


def test_batch_message_size_error_is_not_resent(small_server: FakeGA4Server) -> None:
    """BatchRunReports (the period-by-period pull) with a tiny client limit: one call only."""
    channel = grpc.insecure_channel(
        small_server.endpoint, options=[("grpc.max_receive_message_length", 64)]
    )
    client = BetaAnalyticsDataClient(transport=BetaAnalyticsDataGrpcTransport(channel=channel))
    buckets = buckets_for("day", DAY, DAY + dt.timedelta(days=1), latest=DAY)
    sleeps = Sleeps()
    try:
        with pytest.raises(GA4MessageTooLargeError, match="page_size"):
            next(pull_buckets(client, PROPERTY, TRAFFIC_REPORT, buckets, retry=RETRY, sleep=sleeps))
    finally:
        _close(client)
    assert small_server.calls == 1 and sleeps == []


def test_server_side_message_size_error_is_permanent(small_server: FakeGA4Server) -> None:
    small_server.inject_faults(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        details="Sent message larger than max (10507902 vs. 4194304)",
    )
    client = make_client(endpoint=small_server.endpoint)
    sleeps = Sleeps()
    try:
        with pytest.raises(GA4MessageTooLargeError, match="page_size") as info:
            run_report(client, PROPERTY, TRAFFIC_REPORT, DAY, DAY, retry=RETRY, sleep=sleeps)
    finally:
        _close(client)
    assert small_server.calls == 1 and sleeps == []
    assert "10507902" in str(info.value)


def test_quota_text_on_the_same_status_is_still_retried(small_server: FakeGA4Server) -> None:
    small_server.inject_faults(grpc.StatusCode.RESOURCE_EXHAUSTED)  # the hourly-quota text
    client = make_client(endpoint=small_server.endpoint)
    sleeps = Sleeps()
    try:
        result = run_report(client, PROPERTY, TRAFFIC_REPORT, DAY, DAY, retry=RETRY, sleep=sleeps)
    finally:
        _close(client)
    assert result.requests == 2 and len(sleeps) == 1
    assert int(result.rows["sessions"].sum()) == 7
