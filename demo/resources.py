"""The demo's resources: production GA4 extraction against a local server of demo data.

``pipelines/definitions.py`` builds these only when the demo switch (``KPI_DEMO=1``, set by
``make run`` and ``make dev``) is on; production code never imports this module.
"""

from __future__ import annotations

import os

from dagster import InitResourceContext
from pydantic import Field, PrivateAttr

from demo.fake_ga4 import FakeGA4Server
from demo.generator import DEMO_PROPERTY_ID
from demo.servers import start_demo_ga4_server
from resources.ga4 import GA4Resource


class DemoGA4Resource(GA4Resource):
    """:class:`GA4Resource` on the demo property, served by the fake GA4 server.

    Unless ``api_endpoint`` points at a server already running, the resource starts the fake
    server itself, in process, with the deterministic demo data of ``demo_start..demo_end``
    (default: the demo window), and stops it after the run. Everything else (the official
    client, batching, paging, retries, quota) is the production resource's.
    """

    property_ids: list[str] = Field(default_factory=lambda: [DEMO_PROPERTY_ID])
    demo_start: str | None = Field(default=None, description="first day of demo data (ISO)")
    demo_end: str | None = Field(default=None, description="last day of demo data (ISO)")

    _server: FakeGA4Server | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        if self.api_endpoint:
            self.connect(self.api_endpoint)
            return
        self._server = start_demo_ga4_server(self.demo_start, self.demo_end)
        self.connect(self._server.endpoint)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        super().teardown_after_execution(context)
        if self._server is not None:
            self._server.stop()
        self._server = None


def demo_ga4_resource() -> DemoGA4Resource:
    """The demo's GA4 resource: ``DEMO_START``/``DEMO_END`` bound the data, and
    ``GA4_API_ENDPOINT`` (when set) names a fake server already running."""
    return DemoGA4Resource(
        api_endpoint=os.environ.get("GA4_API_ENDPOINT") or None,
        demo_start=os.environ.get("DEMO_START") or None,
        demo_end=os.environ.get("DEMO_END") or None,
    )
