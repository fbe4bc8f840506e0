"""The Data API client: against Google (a service-account key or Application Default
Credentials) or, over plain gRPC, any server that speaks the API (the demo's fake server)."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
from google.analytics.data_v1beta import BetaAnalyticsDataClient
from google.analytics.data_v1beta.services.beta_analytics_data.transports import (
    BetaAnalyticsDataGrpcTransport,
)

from ingest.ga4.errors import GA4CredentialsError

# What Google's own BetaAnalyticsDataGrpcTransport passes to the channel it opens: no size limit
# either way. A channel opened here for GA4_API_ENDPOINT needs the same, or pages over gRPC's
# default 4 MiB (a 100k-row page is ~10 MB) fail there and nowhere else.
GRPC_CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
)


def make_client(
    endpoint: str | None = None, credentials_json: str | None = None
) -> BetaAnalyticsDataClient:
    """Build a Data API client.

    - ``endpoint`` ("host:port"): plain insecure gRPC, no credentials (the local fake server).
    - ``credentials_json``: a path to a service-account key file, or the JSON key itself.
    - neither: Application Default Credentials.
    """
    if endpoint:
        channel = grpc.insecure_channel(endpoint, options=list(GRPC_CHANNEL_OPTIONS))
        transport = BetaAnalyticsDataGrpcTransport(channel=channel)
        return BetaAnalyticsDataClient(transport=transport)
    if credentials_json:
        return _client_from_service_account(credentials_json)
    try:
        return BetaAnalyticsDataClient()
    except Exception as error:  # google.auth raises DefaultCredentialsError and friends
        raise GA4CredentialsError(
            "no GA4 credentials: set credentials_json (service-account key file path or JSON) "
            f"or configure Application Default Credentials ({type(error).__name__})"
        ) from None


def _client_from_service_account(credentials_json: str) -> BetaAnalyticsDataClient:
    # Errors deliberately drop the original exception (`from None`): parser errors can carry the
    # key text, which must never reach logs or run metadata.
    text = credentials_json.strip()
    if text.startswith("{"):
        try:
            info = json.loads(text)
        except ValueError:
            raise GA4CredentialsError(
                "credentials_json looks like inline JSON but is not valid JSON"
            ) from None
        try:
            return BetaAnalyticsDataClient.from_service_account_info(info)
        except Exception as error:
            raise GA4CredentialsError(
                "credentials_json is JSON but not a usable service-account key "
                f"({type(error).__name__}); expected a key with client_email and private_key"
            ) from None
    path = Path(text).expanduser()
    if not path.is_file():
        raise GA4CredentialsError(
            "credentials_json is neither inline JSON nor a path to an existing file"
        )
    try:
        return BetaAnalyticsDataClient.from_service_account_file(str(path))
    except Exception as error:
        raise GA4CredentialsError(
            f"could not load the service-account key file {path} ({type(error).__name__})"
        ) from None
