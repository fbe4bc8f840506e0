"""The fake Google Ads API: ``GoogleAdsService/SearchStream`` of API version v24 over TLS
gRPC, and an OAuth token endpoint over HTTP.

It answers the campaign x day GAQL of ingest.google_ads.pull from rows held per customer
(``set_rows``: a later call may see revised conversions, as Google Ads revises them), in
batches of ``batch_size`` rows (the stream's paging). ``faults`` are served before any
data, one per call, each with the gRPC status and the ``GoogleAdsFailure`` the real API
sends in the trailing metadata, so the client raises the same ``GoogleAdsException``.
The token endpoint accepts one refresh token and answers any other with ``invalid_grant``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections import deque
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import grpc
from google.ads.googleads.v24.errors.types.errors import ErrorCode, GoogleAdsError, GoogleAdsFailure
from google.ads.googleads.v24.services.types.google_ads_service import (
    GoogleAdsRow,
    SearchGoogleAdsStreamRequest,
    SearchGoogleAdsStreamResponse,
)

from demo.fake_google_ads.tls import SelfSignedCertificate

SERVICE = "google.ads.googleads.v24.services.GoogleAdsService"
FAILURE_KEY = "google.ads.googleads.v24.errors.googleadsfailure-bin"
_WINDOW = re.compile(r"segments\.date BETWEEN '(\d{4}-\d{2}-\d{2})' AND '(\d{4}-\d{2}-\d{2})'")


@dataclass(frozen=True)
class Fault:
    """One failed call: a gRPC status and the typed Google Ads error behind it."""

    status: grpc.StatusCode
    family: str  # authentication_error, authorization_error, quota_error
    code: str  # e.g. OAUTH_TOKEN_EXPIRED, USER_PERMISSION_DENIED, RESOURCE_EXHAUSTED
    message: str = ""

    def failure(self) -> GoogleAdsFailure:
        error_code = ErrorCode(**{self.family: self.code})
        return GoogleAdsFailure(
            errors=[GoogleAdsError(error_code=error_code, message=self.message or self.code)],
            request_id="fake-request-1",
        )


@dataclass
class FakeAccount:
    """A customer: its currency, time zone and campaign x day rows (cost in micros)."""

    currency: str = "EUR"
    time_zone: str = "Europe/Copenhagen"
    rows: list[dict] = field(default_factory=list)


class FakeGoogleAds:
    """``with FakeGoogleAds(accounts) as fake:`` then point the client at ``fake.endpoint``
    (TLS, trusted through ``fake.roots``) and its OAuth at ``fake.token_uri``."""

    def __init__(
        self,
        accounts: dict[str, FakeAccount],
        certificate: SelfSignedCertificate,
        refresh_token: str = "fake-refresh-token",
        batch_size: int = 2,
    ) -> None:
        self.accounts = accounts
        self.certificate = certificate
        self.refresh_token = refresh_token
        self.batch_size = batch_size
        self.faults: deque[Fault] = deque()
        self.requests: list[SearchGoogleAdsStreamRequest] = []
        self.metadata: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._grpc: grpc.Server | None = None
        self._http: ThreadingHTTPServer | None = None
        self.endpoint = ""
        self.token_uri = ""

    def set_rows(self, customer_id: str, rows: list[dict]) -> None:
        with self._lock:
            self.accounts[customer_id].rows = list(rows)

    # -- gRPC --------------------------------------------------------------------------------

    def _search_stream(self, request: SearchGoogleAdsStreamRequest, context):
        with self._lock:
            self.requests.append(request)
            self.metadata.append(dict(context.invocation_metadata()))
            fault = self.faults.popleft() if self.faults else None
        if fault is not None:
            context.set_trailing_metadata(
                (
                    (FAILURE_KEY, GoogleAdsFailure.serialize(fault.failure())),
                    ("request-id", "fake-request-1"),
                )
            )
            context.abort(fault.status, fault.message or fault.code)
        account = self.accounts.get(request.customer_id)
        if account is None:
            fault = Fault(
                grpc.StatusCode.PERMISSION_DENIED, "authorization_error", "USER_PERMISSION_DENIED"
            )
            context.set_trailing_metadata(
                (
                    (FAILURE_KEY, GoogleAdsFailure.serialize(fault.failure())),
                    ("request-id", "fake-request-1"),
                )
            )
            context.abort(fault.status, "User doesn't have permission to access customer.")
        window = _WINDOW.search(request.query)
        first, last = (dt.date.fromisoformat(d) for d in window.groups())
        with self._lock:
            rows = [r for r in account.rows if first <= r["date"] <= last]
        for i in range(0, len(rows), self.batch_size):
            yield SearchGoogleAdsStreamResponse(
                results=[self._row(account, r) for r in rows[i : i + self.batch_size]]
            )

    @staticmethod
    def _row(account: FakeAccount, r: dict) -> GoogleAdsRow:
        return GoogleAdsRow(
            customer={"currency_code": account.currency, "time_zone": account.time_zone},
            campaign={
                "id": r["campaign_id"],
                "name": r["campaign"],
                # The enum's name, as the real API's proto-plus rows carry it.
                "advertising_channel_type": r.get("channel_type", "SEARCH"),
            },
            segments={"date": r["date"].isoformat()},
            metrics={
                "cost_micros": r["cost_micros"],
                "clicks": r["clicks"],
                "impressions": r["impressions"],
                "conversions": r["conversions"],
                "conversions_value": r["conversions_value"],
            },
        )

    # -- OAuth -------------------------------------------------------------------------------

    def _token_handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                form = parse_qs(self.rfile.read(length).decode())
                ok = form.get("refresh_token", [""])[0] == fake.refresh_token
                body = (
                    {
                        "access_token": "fake-access-token",
                        "expires_in": 3600,
                        "token_type": "Bearer",
                    }
                    if ok
                    else {
                        "error": "invalid_grant",
                        "error_description": "Token has been expired or revoked.",
                    }
                )
                data = json.dumps(body).encode()
                self.send_response(200 if ok else 400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # quiet
                pass

        return Handler

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> FakeGoogleAds:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "SearchStream": grpc.unary_stream_rpc_method_handler(
                    self._search_stream,
                    request_deserializer=SearchGoogleAdsStreamRequest.deserialize,
                    response_serializer=SearchGoogleAdsStreamResponse.serialize,
                )
            },
        )
        server.add_generic_rpc_handlers((handler,))
        credentials = grpc.ssl_server_credentials(
            [(self.certificate.key_pem, self.certificate.cert_pem)]
        )
        port = server.add_secure_port("localhost:0", credentials)
        server.start()
        self._grpc = server
        self.endpoint = f"localhost:{port}"
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._token_handler())
        # shutdown() waits for the serve loop's next poll: 0.5 s by default, paid by every
        # run that tears the fake down.
        threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.token_uri = f"http://127.0.0.1:{self._http.server_address[1]}/token"
        return self

    def __exit__(self, *exc) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=None)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
