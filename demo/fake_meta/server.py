"""The fake Graph API: an ad account's node and its ``insights`` edge, over plain HTTP on
127.0.0.1, in the shapes Meta sends.

It answers ``GET /<version>/act_<id>`` (currency, time zone) and
``GET /<version>/act_<id>/insights`` at campaign x day from rows held per account
(``set_rows``: a later call may see revised conversions, as Meta revises them for days
after). Insights come ``page_size`` rows at a time, with ``paging.cursors`` and a ``next``
URL as the real API, numbers as strings. The access token is checked on every call (header
or query string, both of which Meta accepts). ``faults`` are served one per call, each
with the HTTP status and the JSON error body the real API sends, so the official client
raises the same ``FacebookRequestError``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from ingest.meta.errors import API_VERSION


@dataclass(frozen=True)
class Fault:
    """One failed call: HTTP status and Graph API error. ``page`` set: served only to the
    insights call of that page (0 first), so a paging can break half way."""

    code: int | None
    message: str
    subcode: int | None = None
    status: int = 400
    type: str = "OAuthException"
    page: int | None = None

    def body(self) -> dict:
        error: dict = {"message": self.message, "type": self.type}
        if self.code is not None:
            error["code"] = self.code
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["fbtrace_id"] = "FakeTrace1"
        return {"error": error}


RATE_LIMITED = Fault(17, "(#17) User request limit reached", subcode=2446079)
# Meta's edge answers HTTP 429 when the app is throttled before reaching the API proper.
TOO_MANY_REQUESTS = Fault(None, "Too Many Requests", status=429, type="GraphMethodException")
TOKEN_EXPIRED = Fault(
    190,
    "Error validating access token: Session has expired on Sunday, 01-Mar-26 10:00:00 PST. "
    "The current time is Monday, 02-Mar-26 09:00:00 PST.",
    subcode=463,
)
NO_PERMISSION = Fault(
    200, "(#200) Ad account owner has NOT grant ads_management or ads_read permission"
)


@dataclass
class FakeAdAccount:
    """An ad account: currency, time zone and campaign x day rows, each
    ``{date, campaign_id, campaign, spend: str, clicks, impressions, actions?,
    action_values?}`` (actions as Meta lists them; absent when there were none)."""

    currency: str = "EUR"
    time_zone: str = "Europe/Copenhagen"
    rows: list[dict] = field(default_factory=list)


def _cursor(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode()


class FakeMeta:
    """``with FakeMeta(accounts) as fake:`` then set ``graph_url=fake.url``. Accounts are
    keyed by their digits; ``requests`` records (path, query, headers) of every call."""

    def __init__(
        self,
        accounts: dict[str, FakeAdAccount],
        access_token: str = "fake-access-token",
        page_size: int = 2,
        api_version: str = API_VERSION,
    ) -> None:
        self.accounts = accounts
        self.access_token = access_token
        self.page_size = page_size
        self.api_version = api_version
        self.faults: deque[Fault] = deque()
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self._lock = threading.Lock()
        self._http: ThreadingHTTPServer | None = None
        self.url = ""

    def set_rows(self, account: str, rows: list[dict]) -> None:
        with self._lock:
            self.accounts[account].rows = list(rows)

    def insights_calls(self) -> int:
        return sum(path.endswith("/insights") for path, _, _ in self.requests)

    # -- answering ---------------------------------------------------------------------------

    def _answer(self, path: str, query: dict[str, str], headers: dict[str, str]):
        """(HTTP status, JSON body) of one GET."""
        parts = [p for p in path.split("/") if p]
        page = int(base64.b64decode(query["after"]).decode()) if "after" in query else 0
        with self._lock:
            self.requests.append((path, query, headers))
            fault = self._next_fault(parts, page)
        if fault is not None:
            return fault.status, fault.body()
        token = query.get("access_token") or headers.get("authorization", "").partition(" ")[2]
        if not token:
            return 400, Fault(104, "An access token is required to request this resource.").body()
        if token != self.access_token:
            # Meta echoes a token it cannot parse: why messages are scrubbed.
            return 400, Fault(190, f"Malformed access token {token}").body()
        if not parts or parts[0] != self.api_version:
            return 400, Fault(2635, f"(#2635) Unknown API version {parts[:1]}").body()
        node = parts[1] if len(parts) > 1 else ""
        account = self.accounts.get(node.removeprefix("act_")) if node.startswith("act_") else None
        if account is None:
            return 400, Fault(
                100,
                f"Unsupported get request. Object with ID '{node}' does not exist, cannot be "
                "loaded due to missing permissions, or does not support this operation.",
                subcode=33,
                type="GraphMethodException",
            ).body()
        fields = [f for f in query.get("fields", "").split(",") if f]
        if len(parts) == 2:
            values = {"id": node, "currency": account.currency, "timezone_name": account.time_zone}
            return 200, {f: values[f] for f in ["id", *fields] if f in values}
        if parts[2:] != ["insights"]:
            return 400, Fault(100, f"(#100) Unknown edge {parts[2:]}").body()
        return 200, self._insights(account, node, fields, query, page)

    def _next_fault(self, parts: list[str], page: int) -> Fault | None:
        if not self.faults:
            return None
        fault = self.faults[0]
        if fault.page is not None and (parts[-1:] != ["insights"] or fault.page != page):
            return None
        return self.faults.popleft()

    def _insights(self, account: FakeAdAccount, node: str, fields, query, page: int) -> dict:
        window = json.loads(query["time_range"])
        first, last = (dt.date.fromisoformat(window[k]) for k in ("since", "until"))
        with self._lock:
            rows = [r for r in account.rows if first <= r["date"] <= last]
        offset = page * self.page_size
        breakdowns = json.loads(query.get("breakdowns", "[]"))
        page_rows = rows[offset : offset + self.page_size]
        data = [self._insight(account, r, fields, breakdowns) for r in page_rows]
        paging: dict = {"cursors": {"before": _cursor(page), "after": _cursor(page)}}
        if offset + self.page_size < len(rows):
            paging["cursors"]["after"] = _cursor(page + 1)
            following = {**query, "after": _cursor(page + 1)}
            paging["next"] = f"{self.url}/{self.api_version}/{node}/insights?{urlencode(following)}"
        if page:
            paging["previous"] = f"{self.url}/{self.api_version}/{node}/insights"
        return {"data": data, "paging": paging}

    @staticmethod
    def _insight(account: FakeAdAccount, r: dict, fields: list[str], breakdowns: list) -> dict:
        day = r["date"].isoformat()
        values = {
            "campaign_id": str(r["campaign_id"]),
            "campaign_name": r["campaign"],
            "spend": r["spend"],
            "clicks": str(r["clicks"]),
            "impressions": str(r["impressions"]),
            "account_currency": account.currency,
            "actions": r.get("actions"),
            "action_values": r.get("action_values"),
        }
        insight = {f: values[f] for f in fields if values.get(f) is not None}
        if "publisher_platform" in breakdowns:  # a breakdown comes back as a field
            insight["publisher_platform"] = r.get("publisher_platform", "facebook")
        return {**insight, "date_start": day, "date_stop": day}

    # -- lifecycle ---------------------------------------------------------------------------

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, body = fake._answer(url.path, query, headers)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # quiet
                pass

        return Handler

    def __enter__(self) -> FakeMeta:
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        return self

    def __exit__(self, *exc) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
