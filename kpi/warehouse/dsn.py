"""Keep warehouse credentials out of everything shown: printed URLs, logs, metadata, errors.

A password reaches libpq in more places than SQLAlchemy's ``hide_password`` knows about: the
user-info of the URL, the query string (``?password=``, ``?sslpassword=``, which SQLAlchemy
hands to the driver untouched), a libpq keyword/value string (``host=... password=...``) and
the ``PGPASSWORD`` environment variable. Drivers and servers also echo connection parameters
back in their errors (a host name that could not be resolved, a database that does not exist),
so hiding the URL is not enough: errors are scrubbed of every secret text too.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Engine

MASK = "***"
# Query or keyword names whose value is a credential: libpq's password and sslpassword, and
# tokens such as DuckDB/MotherDuck's motherduck_token. Matched on the lower-cased name.
_SECRET_KEY_RE = re.compile(r"pass(?:word|wd)?$|pwd$|secret|token", re.IGNORECASE)
# libpq keyword/value pairs: a value is either single-quoted (with backslash escapes) or runs
# to the next white space.
_KEYWORD_VALUE_RE = re.compile(r"(?P<key>[A-Za-z_]+)\s*=\s*(?P<value>'(?:[^'\\]|\\.)*'?|\S*)")
_SCHEME_RE = re.compile(r"^(?P<scheme>[A-Za-z][\w+.-]*)://")
_ENV_SECRETS = ("PGPASSWORD",)


class AmbiguousURLError(ValueError):
    """The URL cannot be split into user-info and host with certainty; it is never echoed."""


def is_secret_key(name: str) -> bool:
    return bool(_SECRET_KEY_RE.search(name))


def _raw_userinfo_password(rest: str) -> str | None:
    """The password as written between ``user:`` and the *last* ``@`` before the query.

    SQLAlchemy stops at the first ``@``, so an unencoded ``@`` in a password leaves the rest of
    it in the host; reading up to the last one catches what it missed (at worst it takes a
    little more than the password, which only hides more).
    """
    head = rest.split("?", 1)[0]
    end = head.rfind("@")
    if end < 0 or ":" not in head[:end]:
        return None
    return head[:end].split(":", 1)[1] or None


def url_secrets(url: str, environ: Mapping[str, str] | None = None) -> set[str]:
    """Every credential text ``url`` carries, plus those of the environment (``PGPASSWORD``)."""
    environ = os.environ if environ is None else environ
    found = {environ[name] for name in _ENV_SECRETS if environ.get(name)}
    scheme = _SCHEME_RE.match(url)
    if scheme is None:
        for match in _KEYWORD_VALUE_RE.finditer(url):
            if is_secret_key(match["key"]):
                found.add(_unquote_keyword_value(match["value"]))
        return {s for s in found if s}
    rest = url[scheme.end() :]
    raw = _raw_userinfo_password(rest)
    if raw:
        found |= {raw, urllib.parse.unquote(raw)}
    query = rest.split("?", 1)[1] if "?" in rest else ""
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if is_secret_key(key) and value:
            found.add(value)
    # Raw (still encoded) query values too: a message may show the URL as it was written.
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if is_secret_key(urllib.parse.unquote_plus(key)) and value:
            found.add(value)
    try:
        parsed = sa.make_url(url)
    except Exception:  # unparsable: what the regexes found above is all there is
        return {s for s in found if s}
    if parsed.password:
        found.add(str(parsed.password))
    return {s for s in found if s}


def _unquote_keyword_value(value: str) -> str:
    if value.startswith("'"):
        return re.sub(r"\\(.)", r"\1", value[1:].removesuffix("'"))
    return value


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret, as written plainly or URL-encoded, replaced by ``***``."""
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            forms |= {
                secret,
                urllib.parse.quote(secret, safe=""),
                urllib.parse.quote_plus(secret),
                urllib.parse.quote(secret),
            }
    # Longest first, so a secret that contains another is hidden whole.
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text


def check_unambiguous(url: str) -> None:
    """Refuse a URL whose password holds an unencoded ``@``: SQLAlchemy would read the rest of
    the password as the host name, and the driver would then print it in its error."""
    if _SCHEME_RE.match(url) is None:
        return
    try:
        host = sa.make_url(url).host
    except Exception:
        return  # make_url raises its own error, which does not echo the URL
    if host and "@" in host:
        raise AmbiguousURLError(
            "the warehouse URL (WAREHOUSE_URL) holds more than one '@' before its host: write "
            "an '@' inside the user name or password as %40 (and ':' as %3A, '/' as %2F)"
        )


def redact_url(url: str) -> str:
    """The URL (or libpq keyword/value string) with every credential replaced by ``***``."""
    secrets = url_secrets(url)
    scheme = _SCHEME_RE.match(url)
    if scheme is None:
        shown = _KEYWORD_VALUE_RE.sub(
            lambda m: f"{m['key']}={MASK}" if is_secret_key(m["key"]) else m[0], url
        )
        return scrub(shown, secrets)
    try:
        parsed = sa.make_url(url)
    except Exception:
        # Unparsable: nothing of it is shown but the scheme, since the error cannot say
        # which part is the password.
        return f"{scheme['scheme']}://{MASK} (not a valid URL)"
    query = {key: (MASK if is_secret_key(key) else value) for key, value in parsed.query.items()}
    parsed = parsed.set(query=query)
    if parsed.host and "@" in parsed.host:
        parsed = parsed.set(host=MASK)
    # SQLAlchemy percent-encodes query values, the mask included.
    shown = parsed.render_as_string(hide_password=True).replace("%2A%2A%2A", MASK)
    return scrub(shown, secrets)


def scrub_errors(engine: Engine, url: str) -> None:
    """Make every error ``engine`` raises (connection errors included) free of ``url``'s
    secrets and ``PGPASSWORD``, keeping the exception's class so callers still catch it."""

    def _scrub(context: sa.engine.ExceptionContext) -> None:
        secrets = url_secrets(url)
        if not secrets:
            return
        for error in (context.sqlalchemy_exception, context.original_exception):
            if error is not None:
                scrub_exception(error, secrets)

    sa.event.listen(engine, "handle_error", _scrub)


def scrub_exception(error: BaseException, secrets: Iterable[str]) -> None:
    """Scrub ``error``'s arguments in place (its text is built from them)."""
    secrets = list(secrets)
    error.args = tuple(scrub(a, secrets) if isinstance(a, str) else a for a in error.args)


# -- locations: a landing root or a file under it (a path or an fsspec URL) ---------------------

# Query names of object-store URLs whose value is a credential, besides _SECRET_KEY_RE's:
# signed URLs (AWS X-Amz-Signature / -Credential, Azure SAS ``sig``, GCS X-Goog-Signature)
# and API keys.
_LOCATION_SECRET_RE = re.compile(r"^sig$|signature|credential|key$|auth", re.IGNORECASE)


def _is_location_secret_key(name: str) -> bool:
    return is_secret_key(name) or bool(_LOCATION_SECRET_RE.search(name))


def _location_userinfo(rest: str) -> tuple[str, str] | None:
    """(user-info, what follows its ``@``) of a URL without its scheme, or None.

    The user-info ends at the last ``@`` of the authority; a password written with an
    unencoded ``/`` (AWS secret keys hold them) ends the authority early, so a ``user:...@``
    before the query counts too (at worst a path holding ``:`` and ``@`` is hidden more)."""
    head = rest.split("?", 1)[0]
    authority = re.split(r"[/#]", head, maxsplit=1)[0]
    if "@" in authority:
        end = authority.rfind("@")
    else:
        end = head.rfind("@")
        if end < 0 or ":" not in head[:end]:
            return None
    return rest[:end], rest[end + 1 :]


def location_secrets(location: str) -> set[str]:
    """Every credential text a landing location carries (as written and URL-decoded): the
    password of its user-info (all of a user-info without ``:``, a token) and secret query
    values. A plain path carries none."""
    scheme = _SCHEME_RE.match(location)
    if scheme is None:
        return set()
    rest = location[scheme.end() :]
    found: set[str] = set()
    userinfo = _location_userinfo(rest)
    if userinfo is not None:
        user, _, password = userinfo[0].partition(":")
        secret = password if ":" in userinfo[0] else user
        found |= {secret, urllib.parse.unquote(secret)}
    query = rest.split("?", 1)[1] if "?" in rest else ""
    for part in query.split("#", 1)[0].split("&"):
        key, _, value = part.partition("=")
        if value and _is_location_secret_key(urllib.parse.unquote_plus(key)):
            found |= {value, urllib.parse.unquote_plus(value)}
    return {s for s in found if s}


def redact_location(location: str) -> str:
    """A landing location (a path, or an fsspec URL such as ``s3://key:secret@bucket/x``)
    with its credentials replaced by ``***``: the password of the user-info (all of a
    user-info without ``:``, a token), secret query values, and any other place the same
    texts appear. The rest is kept as written, so a location without credentials (a path,
    ``memory://x``, ``s3://bucket/x``) is returned unchanged."""
    scheme = _SCHEME_RE.match(location)
    if scheme is None:
        return location
    secrets = location_secrets(location)
    rest = location[scheme.end() :]
    userinfo = _location_userinfo(rest)
    if userinfo is not None:
        info, after = userinfo
        shown_info = f"{info.partition(':')[0]}:{MASK}" if ":" in info else MASK
        rest = f"{shown_info}@{after}"
    if "?" in rest:
        head, query = rest.split("?", 1)
        query, hash_, fragment = query.partition("#")
        parts = []
        for part in query.split("&"):
            key, eq, value = part.partition("=")
            if value and _is_location_secret_key(urllib.parse.unquote_plus(key)):
                value = MASK
            parts.append(f"{key}{eq}{value}")
        rest = f"{head}?{'&'.join(parts)}{hash_}{fragment}"
    return scrub(f"{scheme[0]}{rest}", secrets)


def scrub_location(text: str, location: str) -> str:
    """``text`` (an error, a message) with every credential of ``location`` replaced by
    ``***``."""
    return scrub(text, location_secrets(location))
