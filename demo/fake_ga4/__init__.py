"""A local, credential-free stand-in for the GA4 Data API (``v1beta``) over real gRPC.

The server speaks ``google.analytics.data.v1beta.BetaAnalyticsData/RunReport`` and
``BatchRunReports`` on an insecure port, so the official ``BetaAnalyticsDataClient`` can talk to
it unchanged through ``BetaAnalyticsDataGrpcTransport(channel=grpc.insecure_channel(...))``.
Errors are raised with ``context.abort`` and therefore reach the client as the same
``google.api_core.exceptions`` classes the real service produces.

It reproduces the behaviours an extractor must survive rather than the whole API: paging with
``limit``/``offset``/``row_count``, string-typed values with typed metric headers, omitted
all-zero rows, the ``(other)`` row, sampling/thresholding metadata, token quotas, injected
faults, several properties in their own time zones, and data that changes between pulls
(:meth:`FakeGA4Server.set_rows`). Dimension filters (string match, in-list, empty, and/or/not)
are applied to the fixture rows before aggregation and metric filters (numeric comparison,
between) after it, as GA4 does. Numeric filters on dimensions, filters on metrics that are not
requested, cohorts, comparisons, pivots and metric aggregations are answered with
``UNIMPLEMENTED`` so a test never silently relies on something the fake ignores.

Fidelity notes:
- User counts (``totalUsers``, ``newUsers``, ``activeUsers``) are summed like any count, which the
  real API does not do; do not use the fake to test user de-duplication across days.
- ``engagementRate``/``bounceRate`` are recomputed from ``engagedSessions``/``sessions``; other
  non-additive metrics (rates, averages) are averaged weighted by ``sessions``.
- The ``(other)`` row is made after aggregation from the smallest rows of the answer; the real
  service makes it from its pre-aggregated tables, so which rows end up in it differs.
"""

from demo.fake_ga4.properties import FakeProperty
from demo.fake_ga4.server import FakeGA4Server

__all__ = ["FakeGA4Server", "FakeProperty"]
