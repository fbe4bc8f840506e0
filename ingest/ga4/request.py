"""One RunReport request: built from a :class:`ReportSpec`, after rejecting locally what the
API would reject (or what would waste quota)."""

from __future__ import annotations

import datetime as dt

from google.analytics.data_v1beta.types import (
    DateRange,
    Dimension,
    Metric,
    OrderBy,
    RunReportRequest,
)

from ingest.ga4.errors import GA4RequestError
from ingest.ga4.filters import to_proto
from ingest.ga4.retry import RetryPolicy
from ingest.ga4.spec import ReportSpec

MAX_PAGE_SIZE = 250_000
MAX_BATCH_REQUESTS = 5


def build_request(
    property_id: str, spec: ReportSpec, start: dt.date, end: dt.date, offset: int, limit: int
) -> RunReportRequest:
    """The RunReport request for one page of ``spec``."""
    request = RunReportRequest(
        property=f"properties/{property_id}",
        dimensions=[Dimension(name=d) for d in spec.dimensions],
        metrics=[Metric(name=m) for m in spec.metrics],
        date_ranges=[DateRange(start_date=start.isoformat(), end_date=end.isoformat())],
        # Ordering on every dimension makes offset paging deterministic between pages.
        order_bys=[
            OrderBy(
                dimension=OrderBy.DimensionOrderBy(
                    dimension_name=d,
                    order_type=OrderBy.DimensionOrderBy.OrderType.ALPHANUMERIC,
                )
            )
            for d in spec.dimensions
        ],
        offset=offset,
        limit=limit,
        keep_empty_rows=False,
        return_property_quota=True,
    )
    if spec.dimension_filter is not None:
        request.dimension_filter = to_proto(spec.dimension_filter)
    if spec.metric_filter is not None:
        request.metric_filter = to_proto(spec.metric_filter)
    return request


def validate_inputs(property_id: str, spec: ReportSpec, page_size: int, retry: RetryPolicy) -> None:
    """Reject what the API would reject (or what would waste quota) before any call."""
    if not (isinstance(property_id, str) and property_id.isdigit()):
        hint = ""
        if isinstance(property_id, str) and property_id.upper().startswith("G-"):
            hint = (
                " It looks like a measurement id (G-XXXX) from a web data stream; use the "
                "numeric property id shown in GA4 Admin > Property details."
            )
        raise GA4RequestError(
            f"GA4 property id must be numeric, got {property_id!r}.{hint}", status="LOCAL"
        )
    problems = spec.problems()
    if problems:
        raise GA4RequestError(
            f"report spec {spec.name!r} is invalid: {'; '.join(problems)}", status="LOCAL"
        )
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise GA4RequestError(
            f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}", status="LOCAL"
        )
    if retry.max_attempts < 1:
        raise GA4RequestError("retry.max_attempts must be at least 1", status="LOCAL")


def validate_range(start: dt.date, end: dt.date) -> None:
    """``start`` must not be after ``end``."""
    if start > end:
        raise GA4RequestError(f"start {start} is after end {end}", status="LOCAL")
