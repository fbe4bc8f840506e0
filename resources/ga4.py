"""The GA4 resource: the official Data API client, against Google or any server that speaks it."""

from __future__ import annotations

import datetime as dt

from dagster import ConfigurableResource, InitResourceContext
from google.analytics.data_v1beta import BetaAnalyticsDataClient
from pydantic import Field, PrivateAttr

from ingest.ga4 import ReportResult, ReportSpec, RetryPolicy, make_client, run_report


class GA4Resource(ConfigurableResource):
    """Runs GA4 reports with ``BetaAnalyticsDataClient``.

    Credentials come from ``GA4_CREDENTIALS_JSON`` (a service-account file path or its JSON
    content) or, when unset, application default credentials. ``GA4_API_ENDPOINT``
    (``host:port``, plain gRPC) points the same client at another server, such as the
    project's fake GA4 server in the demo and the tests.

    With ``serve_demo_data`` the resource starts that fake server itself, in process, with
    the deterministic demo data, so the demo runs the production extraction path.
    """

    property_ids: list[str] = Field(description="Numeric GA4 property ids (not G-XXXX ids)")
    credentials_json: str | None = Field(default=None, description="service-account JSON or path")
    api_endpoint: str | None = Field(default=None, description="host:port override, plain gRPC")
    page_size: int = Field(default=100_000, ge=1, le=250_000)
    max_attempts: int = Field(default=5, ge=1)
    initial_backoff_s: float = Field(default=1.0, ge=0)
    serve_demo_data: bool = Field(default=False, description="serve the demo data locally")
    demo_start: str | None = Field(default=None, description="first day of demo data")
    demo_end: str | None = Field(default=None, description="last day of demo data")

    _client: BetaAnalyticsDataClient | None = PrivateAttr(default=None)
    _server: object | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        endpoint = self.api_endpoint or None
        if self.serve_demo_data:
            from demo.servers import start_demo_ga4_server

            self._server = start_demo_ga4_server(self.demo_start, self.demo_end)
            endpoint = self._server.endpoint
        self._client = make_client(endpoint=endpoint, credentials_json=self.credentials_json)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._client is not None:
            self._client.transport.close()
        if self._server is not None:
            self._server.stop()
        self._client, self._server = None, None

    def run_report(
        self, property_id: str, spec: ReportSpec, start: dt.date, end: dt.date
    ) -> ReportResult:
        """One report for ``start..end`` (inclusive), paged, typed, retried when worth it."""
        if self._client is None:
            raise RuntimeError("GA4Resource used outside a run; call setup_for_execution first")
        policy = RetryPolicy(
            max_attempts=self.max_attempts, initial_backoff_s=self.initial_backoff_s
        )
        return run_report(
            self._client, property_id, spec, start, end, page_size=self.page_size, retry=policy
        )
