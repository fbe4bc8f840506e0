"""Calling the Data API with bounded retries: exponential backoff and jitter for
429/500/503/504, no retry for 400/401/403, and an immediate, explicit failure when the *daily*
token quota is gone or a page passes gRPC's message-size limit (also RESOURCE_EXHAUSTED, but
no quota: lower page_size)."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc

from ingest.ga4.errors import (
    GA4MessageTooLargeError,
    GA4QuotaExhaustedError,
    GA4RequestError,
    GA4RetriesExhaustedError,
)
from ingest.ga4.quota import next_quota_reset

logger = logging.getLogger(__name__)

# ResourceExhausted is what gRPC raises for 429; TooManyRequests is the REST flavour and is not
# a subclass of it (it is the parent), so catching ResourceExhausted alone would miss REST 429s.
RETRYABLE_ERRORS: tuple[type[Exception], ...] = (
    gexc.ResourceExhausted,
    gexc.TooManyRequests,
    gexc.InternalServerError,
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
)
_QUOTA_ERRORS = (gexc.ResourceExhausted, gexc.TooManyRequests)
# gRPC also answers RESOURCE_EXHAUSTED when a message passes the channel's size limit, on either
# side ("Received message larger than max (10507902 vs. 4194304)", "Sent message larger than
# max ..."). That is no quota: the same request gets the same page, so it must not be retried.
_MESSAGE_SIZE_RE = re.compile(
    r"message larger than max|message too large|max_(?:receive|send)_message_length",
    re.IGNORECASE,
)
_DAILY_QUOTA_RE = re.compile(r"per\s*day|daily", re.IGNORECASE)


@dataclass
class RetryPolicy:
    """Bounded exponential backoff. ``max_attempts`` counts the first try."""

    max_attempts: int = 5
    initial_backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    jitter: bool = True

    def delay(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based)."""
        base = min(self.max_backoff_s, self.initial_backoff_s * 2 ** (retry_number - 1))
        if not self.jitter:
            return base
        # "Equal jitter": spreads clients out without ever collapsing the wait to zero.
        return base / 2 + (rng or random).uniform(0, base / 2)


def call_with_retry(
    call: Callable[[], Any],
    property_id: str,
    retry: RetryPolicy,
    sleep: Callable[[float], None],
    *,
    method: str = "RunReport",
    page_size: int | None = None,
) -> tuple[Any, int]:
    """Run ``call`` with bounded backoff on 429/500/503/504; returns (answer, attempts).

    A daily-quota 429 and 400/401/403 are raised at once as :class:`GA4QuotaExhaustedError`
    and :class:`GA4RequestError`, a message over gRPC's size limit as
    :class:`GA4MessageTooLargeError` (``page_size``, the rows asked per page, goes into its
    advice); a retryable error that outlasts the policy becomes :class:`GA4RetriesExhaustedError`.
    """
    for attempt in range(1, retry.max_attempts + 1):
        try:
            return call(), attempt
        except _QUOTA_ERRORS as error:
            if _MESSAGE_SIZE_RE.search(str(error.message)):
                raise _message_size_error(property_id, error, method, page_size) from error
            if _DAILY_QUOTA_RE.search(str(error.message)):
                raise _daily_quota_error(property_id, error) from error
            last: Exception = error
        except RETRYABLE_ERRORS as error:
            last = error
        except (gexc.BadRequest, gexc.Unauthorized, gexc.Forbidden) as error:
            raise _request_error(property_id, error, method) from error
        except gexc.GoogleAPICallError as error:
            # Anything else (404, 409, 501...) is not transient either.
            raise GA4RequestError(
                f"GA4 {method} for property {property_id} failed: "
                f"{type(error).__name__}: {error.message}",
                status=_status_name(error),
            ) from error
        if attempt == retry.max_attempts:
            break
        delay = retry.delay(attempt)
        logger.warning(
            "GA4 property=%s attempt %d/%d failed with %s; retrying in %.1fs",
            property_id,
            attempt,
            retry.max_attempts,
            type(last).__name__,
            delay,
        )
        sleep(delay)
    raise GA4RetriesExhaustedError(
        f"GA4 {method} for property {property_id} still failing after {retry.max_attempts} "
        f"attempts: {type(last).__name__}: {getattr(last, 'message', last)}",
        attempts=retry.max_attempts,
    ) from last


def _status_name(error: gexc.GoogleAPICallError) -> str | None:
    code = error.grpc_status_code
    if code is not None:
        return code.name
    return str(error.code) if error.code is not None else None


def _request_error(
    property_id: str, error: gexc.GoogleAPICallError, method: str = "RunReport"
) -> GA4RequestError:
    detail = error.message
    if isinstance(error, gexc.Unauthorized):
        cause = (
            "the credentials were rejected (missing, expired or for the wrong account); check "
            "the service-account key or Application Default Credentials"
        )
    elif isinstance(error, gexc.Forbidden):
        cause = (
            f"the service account most likely lacks access to property {property_id}: add its "
            "client_email as a Viewer in GA4 Admin > Property access management, and check the "
            "id is the numeric property id (not a G-XXXX measurement id) and that the Google "
            "Analytics Data API is enabled for the Cloud project"
        )
    else:
        cause = (
            f"the request was rejected as invalid; check that {property_id} is the numeric GA4 "
            "property id (not a G-XXXX measurement id) and that every dimension and metric is a "
            "valid GA4 API name that can be combined with the others"
        )
    return GA4RequestError(
        f"GA4 {method} failed for property {property_id} ({type(error).__name__}): {cause}. "
        f"Server said: {detail}",
        status=_status_name(error),
    )


def _message_size_error(
    property_id: str, error: gexc.GoogleAPICallError, method: str, page_size: int | None
) -> GA4MessageTooLargeError:
    asked = f" (now {page_size})" if page_size else ""
    return GA4MessageTooLargeError(
        f"GA4 {method} for property {property_id} failed: a message passed gRPC's size limit. "
        "This is not a quota error and re-sending the same request cannot succeed: lower "
        f"page_size{asked} so each page holds fewer rows, or raise the limit of the channel "
        f"if it was opened outside make_client. Server said: {error.message}",
        status=_status_name(error),
    )


def _daily_quota_error(property_id: str, error: gexc.GoogleAPICallError) -> GA4QuotaExhaustedError:
    resets_at = next_quota_reset()
    when = f" (next reset {resets_at.isoformat()})" if resets_at else ""
    return GA4QuotaExhaustedError(
        f"GA4 daily token quota exhausted for property {property_id}. Retrying now cannot "
        "succeed: resume after the daily quota resets at midnight Pacific time"
        f"{when}; the next scheduled run will pick up from there. Server said: {error.message}",
        resets_at=resets_at,
    )
