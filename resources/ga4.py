"""The GA4 resource: the official Data API client, against Google or any server that speaks it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence

from dagster import ConfigurableResource, InitResourceContext
from google.analytics.data_v1beta import BetaAnalyticsDataClient
from pydantic import Field, PrivateAttr

from ingest.ga4.client import make_client
from ingest.ga4.pull import Bucket, BucketResult, pull_buckets
from ingest.ga4.request import MAX_BATCH_REQUESTS
from ingest.ga4.retry import RetryPolicy
from ingest.ga4.run import ReportResult, run_report
from ingest.ga4.spec import ReportSpec


class GA4Resource(ConfigurableResource):
    """Runs GA4 reports with ``BetaAnalyticsDataClient``.

    Credentials come from ``GA4_CREDENTIALS_JSON`` (a service-account file path or its JSON
    content) or, when unset, application default credentials. ``GA4_API_ENDPOINT``
    (``host:port``, plain gRPC) points the same client at another server, such as the
    project's fake GA4 server in the tests (the demo's ``DemoGA4Resource`` starts it with the
    demo data and runs this same extraction path).

    Quota: every property has its own token buckets (200,000 a day for a standard property).
    The resource remembers the daily tokens each property has left, across the reports of a
    run, and stops a property's pulls before the next call once fewer than
    ``min_daily_tokens`` remain, so a backfill leaves the rest of the day's quota to the
    property's other users (dashboards, other pipelines) and says when to resume.
    """

    property_ids: list[str] = Field(
        description="GA4_PROPERTY_IDS: numeric GA4 property ids (not G-XXXX ids)"
    )
    credentials_json: str | None = Field(
        default=None,
        description="GA4_CREDENTIALS_JSON: service-account JSON or its path; unset: "
        "Application Default Credentials",
    )
    api_endpoint: str | None = Field(
        default=None,
        description="GA4_API_ENDPOINT: host:port override, plain gRPC; unset: Google's API",
    )
    page_size: int = Field(default=100_000, ge=1, le=250_000)
    batch_size: int = Field(
        default=MAX_BATCH_REQUESTS,
        ge=1,
        le=MAX_BATCH_REQUESTS,
        description="period requests per BatchRunReports call (the API allows 5)",
    )
    min_daily_tokens: int = Field(
        default=10_000,
        ge=0,
        description="stop a property's pulls when fewer daily tokens than this remain",
    )
    max_attempts: int = Field(default=5, ge=1)
    initial_backoff_s: float = Field(default=1.0, ge=0)
    max_backoff_s: float = Field(default=30.0, ge=0)
    timeout_s: float = Field(default=60.0, gt=0, description="deadline of one API call")

    _client: BetaAnalyticsDataClient | None = PrivateAttr(default=None)
    _daily_tokens_left: dict[str, int] = PrivateAttr(default_factory=dict)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self.connect(self.api_endpoint or None)

    def connect(self, endpoint: str | None) -> None:
        """Open the client on ``endpoint`` (``host:port``), or on Google's API when None."""
        self._client = make_client(endpoint=endpoint, credentials_json=self.credentials_json)
        self._daily_tokens_left = {}

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._client is not None:
            self._client.transport.close()
        self._client = None

    def _retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            initial_backoff_s=self.initial_backoff_s,
            max_backoff_s=self.max_backoff_s,
        )

    def _require_client(self) -> BetaAnalyticsDataClient:
        if self._client is None:
            raise RuntimeError("GA4Resource used outside a run; call setup_for_execution first")
        return self._client

    def run_report(
        self, property_id: str, spec: ReportSpec, start: dt.date, end: dt.date
    ) -> ReportResult:
        """One report for ``start..end`` (inclusive), paged, typed, retried when worth it."""
        return run_report(
            self._require_client(),
            property_id,
            spec,
            start,
            end,
            page_size=self.page_size,
            retry=self._retry_policy(),
            timeout=self.timeout_s,
        )

    def pull(
        self, property_id: str, spec: ReportSpec, buckets: Sequence[Bucket]
    ) -> Iterator[list[BucketResult]]:
        """One request per period in ``buckets``, batched, paged, retried, within the quota
        floor; yields each batch's results as soon as it is complete (see
        :func:`ingest.ga4.pull.pull_buckets`)."""

        def remember(remaining: int) -> None:
            self._daily_tokens_left[property_id] = remaining

        return pull_buckets(
            self._require_client(),
            property_id,
            spec,
            buckets,
            batch_size=self.batch_size,
            page_size=self.page_size,
            retry=self._retry_policy(),
            timeout=self.timeout_s,
            min_daily_tokens=self.min_daily_tokens,
            daily_tokens_remaining=self._daily_tokens_left.get(property_id),
            on_quota=remember,
        )
