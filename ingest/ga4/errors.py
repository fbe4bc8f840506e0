"""The errors of the GA4 extraction: one base class, one subclass per way a pull can fail."""

from __future__ import annotations

import datetime as dt


class GA4Error(Exception):
    """Base class for every error of the GA4 extraction (:mod:`ingest.ga4`)."""


class GA4RequestError(GA4Error):
    """The request cannot succeed as sent (HTTP 400/401/403 or a local validation failure).

    Retrying will not help; the message names the most likely cause.
    """

    def __init__(self, message: str, *, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status


class GA4MessageTooLargeError(GA4RequestError):
    """A response (or request) passed gRPC's message-size limit.

    gRPC reports this as RESOURCE_EXHAUSTED, the status of a quota error, but sending the same
    request again returns the same page: it is permanent until ``page_size`` is lowered.
    """


class GA4CredentialsError(GA4Error):
    """Credentials could not be loaded. Messages never include credential content."""


class GA4QuotaExhaustedError(GA4Error):
    """The property's daily token quota is spent; the next run after the reset should resume."""

    def __init__(self, message: str, *, resets_at: dt.datetime | None = None) -> None:
        super().__init__(message)
        self.resets_at = resets_at


class GA4RetriesExhaustedError(GA4Error):
    """A retryable error (429/500/503/504) persisted for every allowed attempt."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts
