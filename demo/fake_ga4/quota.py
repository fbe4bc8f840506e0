"""Token quotas: charging each report to its property and reporting what is left."""

from __future__ import annotations

import grpc
from google.analytics.data_v1beta.types import PropertyQuota, QuotaStatus

from demo.fake_ga4.errors import _Abort
from demo.fake_ga4.properties import _PropertyState


class TokenQuota:
    """Per-property token buckets (part of :class:`FakeGA4Server`; called with the lock held)."""

    tokens_per_day: int | None
    tokens_per_hour: int | None
    tokens_per_request: int

    def _charge_quota(self, state: _PropertyState) -> None:
        bucket = state.quota
        if self.tokens_per_day is not None and bucket.consumed_day >= self.tokens_per_day:
            raise _Abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"Exhausted property tokens per day quota. Consumed: {bucket.consumed_day} "
                f"tokens. Limit: {self.tokens_per_day} tokens.",
            )
        if self.tokens_per_hour is not None and bucket.consumed_hour >= self.tokens_per_hour:
            raise _Abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"Exhausted property tokens per hour quota. Consumed: {bucket.consumed_hour} "
                f"tokens. Limit: {self.tokens_per_hour} tokens.",
            )
        bucket.consumed_day += self.tokens_per_request
        bucket.consumed_hour += self.tokens_per_request

    def _property_quota(self, state: _PropertyState) -> PropertyQuota:
        def status(consumed: int, limit: int | None) -> QuotaStatus | None:
            if limit is None:
                return None
            return QuotaStatus(consumed=self.tokens_per_request, remaining=max(0, limit - consumed))

        quota = PropertyQuota(
            concurrent_requests=QuotaStatus(consumed=0, remaining=10),
            server_errors_per_project_per_hour=QuotaStatus(consumed=0, remaining=10),
        )
        day = status(state.quota.consumed_day, self.tokens_per_day)
        hour = status(state.quota.consumed_hour, self.tokens_per_hour)
        if day is not None:
            quota.tokens_per_day = day
        if hour is not None:
            quota.tokens_per_hour = hour
        return quota
