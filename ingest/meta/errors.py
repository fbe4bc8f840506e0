"""What went wrong talking to the Meta Marketing API, said so that a data engineer knows
what to fix.

The Graph API answers a failed call with an HTTP status and a JSON body
``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``, which the
official client raises as ``FacebookRequestError``. Rate limits are retried
(ingest.meta.pull); everything else fails at once, naming the setting to change. No message
carries a secret: the client's own exception text (which lists the request's parameters and
the whole response body) is never used, and :func:`scrub` removes any secret the server's
message might echo ("Malformed access token EAAB...").
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from facebook_business.api import FacebookAdsApi
from facebook_business.exceptions import FacebookRequestError

API_VERSION: str = FacebookAdsApi.API_VERSION  # the version the installed client is built for

# Graph API throttling: 4 app, 17 user, 32 page, 613 custom rate limit, and 80000 the Ads
# Insights business-use-case limit (the one the insights edge itself answers with).
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80000})
NO_ACCESS_CODES = frozenset({10, 200})  # permission errors whatever their message
_NO_ACCESS_TEXT = re.compile(r"does not exist|no permission|missing permission", re.IGNORECASE)


class MetaPullError(RuntimeError):
    """A pull that cannot succeed as configured (token, account ids, access)."""


class MetaRateLimited(RuntimeError):
    """Meta asked us to slow down (a throttling code or HTTP 429)."""


def normalise_account_id(value: str, setting: str = "META_AD_ACCOUNT_IDS") -> str:
    """``act_123`` or ``123`` -> ``act_123``; anything else is an error naming the setting
    and the value, raised before any call is made."""
    text = str(value).strip()
    digits = text[4:] if text.startswith("act_") else text
    if not re.fullmatch(r"\d+", digits):
        raise MetaPullError(
            f"{setting}: {value!r} is not a Meta ad account id: expected act_ followed by "
            "digits, or the digits alone (act_1234567890 or 1234567890), as shown in Ads "
            "Manager's account menu"
        )
    return f"act_{digits}"


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _where(code, subcode, trace) -> str:
    """`` (code 190, subcode 463, fbtrace id X)``: what Meta support asks for."""
    parts = [f"code {code}"] if code is not None else []
    if subcode:
        parts.append(f"subcode {subcode}")
    if trace:
        parts.append(f"fbtrace id {trace}")
    return f" ({', '.join(parts)})" if parts else ""


def explain(error: Exception, account_id: str, secrets: Iterable[str | None]) -> Exception:
    """The error to raise (or retry on) for a failed call about ``account_id``."""
    secrets = tuple(secrets)
    if not isinstance(error, FacebookRequestError):
        # A connection refused, a timeout...: the type and its text (its URL holds no
        # token: the session sends it in a header, see ingest.meta.pull).
        detail = scrub(f"{type(error).__name__}: {error}", secrets)
        return MetaPullError(f"Meta call for ad account {account_id} failed ({detail})")
    code, subcode = error.api_error_code(), error.api_error_subcode()
    body = error.body() if isinstance(error.body(), dict) else {}
    trace = (body.get("error") or {}).get("fbtrace_id")
    message = scrub(error.api_error_message() or "", secrets)
    where = _where(code, subcode, trace)
    if error.http_status() == 429 or code in RATE_LIMIT_CODES:
        return MetaRateLimited(f"Meta rate limit for ad account {account_id}{where}")
    if code == 190:
        return MetaPullError(
            f"Meta refused the access token{where}: create a new META_ACCESS_TOKEN (a user "
            "token expires after about 60 days or when its password changes; a system user "
            "token from Business Settings does not) with the ads_read permission"
        )
    if code in NO_ACCESS_CODES or (code == 100 and _NO_ACCESS_TEXT.search(message)):
        return MetaPullError(
            f"the token's user has no access to ad account {account_id}{where}: grant the "
            "user or system user of META_ACCESS_TOKEN access to that ad account (Business "
            "Settings > Accounts > Ad accounts > Assign people), or remove it from "
            "META_AD_ACCOUNT_IDS"
        )
    detail = f": {message}" if message else ""
    return MetaPullError(f"Meta call for ad account {account_id} failed{where}{detail}")
