"""What went wrong talking to Google Ads, said so that a data engineer knows what to fix.

Google Ads answers a failed call with a gRPC status and a ``GoogleAdsFailure`` (one or more
typed errors: ``authentication_error``, ``authorization_error``, ``quota_error``...). Rate
limits are retried (ingest.google_ads.pull); everything else fails at once, naming the
setting to change. No message carries a credential: they are never put into one, and
:func:`scrub` removes any a library might echo.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import grpc
from google.api_core import exceptions as core_exceptions

API_VERSION = "v24"


class GoogleAdsPullError(RuntimeError):
    """A pull that cannot succeed as configured (credentials, ids, access)."""


class GoogleAdsRateLimited(RuntimeError):
    """Google Ads asked us to slow down (RESOURCE_EXHAUSTED / a quota error)."""


def normalise_customer_id(value: str, setting: str = "GOOGLE_ADS_CUSTOMER_IDS") -> str:
    """``123-456-7890`` or ``1234567890`` -> ``1234567890``; anything else is an error
    naming the setting and the value."""
    digits = re.sub(r"[\s-]", "", str(value))
    if not re.fullmatch(r"\d{10}", digits):
        raise GoogleAdsPullError(
            f"{setting}: {value!r} is not a Google Ads customer id: expected 10 digits, as "
            "shown at the top of the Google Ads UI (123-456-7890; dashes are fine)"
        )
    return digits


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _failure_codes(failure) -> list[tuple[str, str]]:
    """(error family, code name) of each error of a ``GoogleAdsFailure``."""
    found = []
    for error in getattr(failure, "errors", []) or []:
        codes = error.error_code
        for family in ("authentication_error", "authorization_error", "quota_error"):
            value = getattr(codes, family, 0)
            if value:
                found.append((family, getattr(value, "name", str(value))))
        if not found:
            found.append(("other", type(codes).pb(codes).WhichOneof("error_code") or "unknown"))
    return found


def explain(error: Exception, customer_id: str) -> Exception:
    """The error to raise (or retry on) for a failed Google Ads call."""
    from google.ads.googleads.errors import GoogleAdsException

    status, codes, request_id = None, [], None
    if isinstance(error, GoogleAdsException):
        status = error.error.code()
        codes = _failure_codes(error.failure)
        request_id = error.request_id
    elif isinstance(error, grpc.RpcError):
        status = error.code()
    elif isinstance(error, core_exceptions.GoogleAPICallError):
        # The client hands some statuses (a rate limit) over as google.api_core errors.
        status = error.grpc_status_code
    names = {name for _, name in codes}
    families = {family for family, _ in codes}
    where = f" (request id {request_id})" if request_id else ""
    if status == grpc.StatusCode.RESOURCE_EXHAUSTED or "quota_error" in families:
        return GoogleAdsRateLimited(f"Google Ads rate limit for customer {customer_id}{where}")
    if names & {"DEVELOPER_TOKEN_NOT_APPROVED", "DEVELOPER_TOKEN_PROHIBITED"} or (
        "DEVELOPER_TOKEN_INVALID" in names or "DEVELOPER_TOKEN_NOT_ON_ALLOWLIST" in names
    ):
        code = sorted(names)[0]
        return GoogleAdsPullError(
            f"Google Ads refused the developer token ({code}){where}: set "
            "GOOGLE_ADS_DEVELOPER_TOKEN to the token of your manager account (Google Ads UI: "
            "Admin > API Center); a token still in test mode only reaches test accounts"
        )
    if status == grpc.StatusCode.UNAUTHENTICATED or "authentication_error" in families:
        code = ", ".join(sorted(names)) or "UNAUTHENTICATED"
        return GoogleAdsPullError(
            f"Google Ads refused the OAuth credentials ({code}){where}: create a new "
            "GOOGLE_ADS_REFRESH_TOKEN (refresh tokens expire when revoked or unused for six "
            "months) and check GOOGLE_ADS_CLIENT_ID and GOOGLE_ADS_CLIENT_SECRET"
        )
    if status == grpc.StatusCode.PERMISSION_DENIED or "authorization_error" in families:
        code = ", ".join(sorted(names)) or "PERMISSION_DENIED"
        return GoogleAdsPullError(
            f"the Google account has no access to customer {customer_id} ({code}){where}: "
            "grant it access to that account, or set GOOGLE_ADS_LOGIN_CUSTOMER_ID to the "
            "manager account that links it"
        )
    detail = ", ".join(sorted(names)) or (status.name if status else type(error).__name__)
    return GoogleAdsPullError(
        f"Google Ads call for customer {customer_id} failed ({detail}){where}"
    )
