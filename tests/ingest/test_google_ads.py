"""Google Ads through the official ``google-ads`` client against a local fake of the real
protocols (demo.fake_google_ads): gRPC over TLS with a self-signed certificate trusted via
GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, and Google's OAuth token endpoint over HTTP. Nothing of the
client is mocked; only the server is not Google's, which cannot be reached from here."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

import grpc
import pytest

from demo.fake_google_ads import FakeGoogleAds, Fault, SelfSignedCertificate
from demo.fake_google_ads.server import FakeAccount
from demo.fake_google_ads.tls import process_certificate
from ingest.google_ads.errors import GoogleAdsPullError, normalise_customer_id
from ingest.google_ads.pull import GoogleAdsSettings, make_client, micros, pull_campaign_days

CUSTOMER = "1234567890"
MARCH = [dt.date(2026, 3, 1) + dt.timedelta(days=i) for i in range(5)]
LIMITED = Fault(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota_error", "RESOURCE_EXHAUSTED")
SECRETS = {"developer": "dev-TOKEN-s3cret", "client": "client-S3CRET", "refresh": "refresh-S3CRET"}


def _rows(conversions: float = 2.5) -> list[dict]:
    return [
        {
            "date": day,
            "campaign_id": 11,
            "campaign": "spring_search",
            "cost_micros": 1_234_567_890,
            "clicks": 10 + i,
            "impressions": 100,
            "conversions": conversions,
            "conversions_value": 120.75,
        }
        for i, day in enumerate(MARCH)
    ]


@pytest.fixture(scope="module")
def certificate() -> SelfSignedCertificate:
    # The process's one certificate: gRPC reads the roots file when the first TLS channel
    # of the process is made, so every fake of a process (the demo's too) shares it.
    return process_certificate()


@pytest.fixture
def fake(certificate):
    with FakeGoogleAds(
        {CUSTOMER: FakeAccount(rows=_rows())}, certificate, refresh_token=SECRETS["refresh"]
    ) as server:
        yield server


def _settings(fake: FakeGoogleAds, **changes) -> GoogleAdsSettings:
    values = {
        "developer_token": SECRETS["developer"],
        "client_id": "client-id",
        "client_secret": SECRETS["client"],
        "refresh_token": SECRETS["refresh"],
        "endpoint": fake.endpoint,
        "token_uri": fake.token_uri,
    }
    return GoogleAdsSettings(**{**values, **changes})


def _pull(fake, settings=None, customer=CUSTOMER, **kwargs) -> list[dict]:
    settings = settings or _settings(fake)
    client = make_client(settings)
    return pull_campaign_days(
        client,
        settings,
        customer,
        MARCH[0],
        MARCH[-1],
        sleep=kwargs.pop("sleep", lambda s: None),
        **kwargs,
    )


def _assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS.values():
            assert secret not in text


def test_micros_convert_exactly():
    assert micros(1_234_567_890) == Decimal("1234.56789")
    assert sum(micros(1) for _ in range(1000)) == Decimal("0.001")  # a float sum drifts


def test_a_stream_of_several_batches_gives_every_row_once_over_tls(fake):
    rows = _pull(fake)
    assert [r["date"] for r in rows] == MARCH  # 5 rows in batches of 2: three messages
    assert rows[0] == {
        "platform": "google_ads",
        "account": CUSTOMER,
        "account_currency": "EUR",
        "account_time_zone": "Europe/Copenhagen",
        "campaign_id": "11",
        "campaign": "spring_search",
        "channel": "search",
        "date": MARCH[0],
        "cost": Decimal("1234.56789"),
        "clicks": 10,
        "impressions": 100,
        "conversions_claimed": Decimal("2.5"),
        "conversions_value_claimed": Decimal("120.75"),
    }
    # The developer token and the access token from the OAuth refresh reach the server.
    headers = fake.metadata[0]
    assert headers["developer-token"] == SECRETS["developer"]
    assert headers["authorization"] == "Bearer fake-access-token"


def test_a_customer_id_with_dashes_is_accepted_and_a_malformed_one_refused(fake):
    assert normalise_customer_id("123-456-7890") == CUSTOMER
    assert len(_pull(fake, customer="123-456-7890")) == 5
    with pytest.raises(GoogleAdsPullError) as caught:
        _pull(fake, customer="12345")
    assert str(caught.value) == (
        "GOOGLE_ADS_CUSTOMER_IDS: '12345' is not a Google Ads customer id: expected 10 digits, "
        "as shown at the top of the Google Ads UI (123-456-7890; dashes are fine)"
    )


def test_a_rate_limit_is_retried_with_backoff_and_keeps_no_row_twice(fake):
    fake.faults.append(
        Fault(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota_error", "RESOURCE_EXHAUSTED")
    )
    fake.faults.append(
        Fault(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota_error", "RESOURCE_EXHAUSTED")
    )
    waits: list[float] = []
    rows = _pull(fake, sleep=waits.append)
    assert len(rows) == 5 and waits == [1.0, 2.0] and len(fake.requests) == 3


def test_a_rate_limit_that_does_not_end_fails_saying_so(fake):
    for _ in range(3):
        fake.faults.append(
            Fault(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota_error", "RESOURCE_EXHAUSTED")
        )
    with pytest.raises(GoogleAdsPullError) as caught:
        _pull(fake, max_attempts=3)
    assert str(caught.value) == (
        "Google Ads rate limit for customer 1234567890: still limited after 3 attempts; try "
        "later or ask Google for a higher access level"
    )


def test_revised_conversions_are_seen_by_the_next_pull(fake):
    assert {r["conversions_claimed"] for r in _pull(fake)} == {Decimal("2.5")}
    fake.set_rows(CUSTOMER, _rows(conversions=3.0))  # Google Ads restated the days
    assert {r["conversions_claimed"] for r in _pull(fake)} == {Decimal("3.0")}


def test_expired_credentials_fail_at_once_naming_what_to_renew(fake):
    fake.faults.append(
        Fault(grpc.StatusCode.UNAUTHENTICATED, "authentication_error", "OAUTH_TOKEN_EXPIRED")
    )
    with pytest.raises(GoogleAdsPullError) as caught:
        _pull(fake)
    assert str(caught.value) == (
        "Google Ads refused the OAuth credentials (OAUTH_TOKEN_EXPIRED) (request id "
        "fake-request-1): create a new GOOGLE_ADS_REFRESH_TOKEN (refresh tokens expire when "
        "revoked or unused for six months) and check GOOGLE_ADS_CLIENT_ID and "
        "GOOGLE_ADS_CLIENT_SECRET"
    )
    assert len(fake.requests) == 1  # not retried


def test_a_revoked_refresh_token_fails_at_the_oauth_server_without_showing_it(fake):
    settings = _settings(fake, refresh_token="revoked-S3CRET-token")
    with pytest.raises(GoogleAdsPullError) as caught:
        _pull(fake, settings)
    message = str(caught.value)
    assert message.startswith("Google's OAuth server refused the refresh token (")
    assert "invalid_grant" in message and "create a new GOOGLE_ADS_REFRESH_TOKEN" in message
    assert "revoked-S3CRET-token" not in message
    _assert_no_secret(message)
    assert fake.requests == []  # never reached Google Ads


def test_a_customer_without_access_fails_naming_the_login_customer_setting(fake):
    with pytest.raises(GoogleAdsPullError) as caught:
        _pull(fake, customer="9999999999")
    assert str(caught.value) == (
        "the Google account has no access to customer 9999999999 (USER_PERMISSION_DENIED) "
        "(request id fake-request-1): grant it access to that account, or set "
        "GOOGLE_ADS_LOGIN_CUSTOMER_ID to the manager account that links it"
    )


def test_a_missing_developer_token_fails_before_any_call(fake):
    with pytest.raises(GoogleAdsPullError) as caught:
        _pull(fake, _settings(fake, developer_token=""))
    assert str(caught.value) == (
        "GOOGLE_ADS_DEVELOPER_TOKEN is not set: the Google Ads API refuses every call without "
        "one (Google Ads UI: Admin > API Center)"
    )


def test_an_unapproved_developer_token_fails_naming_it(fake):
    fake.faults.append(
        Fault(
            grpc.StatusCode.PERMISSION_DENIED, "authorization_error", "DEVELOPER_TOKEN_NOT_APPROVED"
        )
    )
    with pytest.raises(GoogleAdsPullError) as caught:
        _pull(fake)
    assert str(caught.value).startswith(
        "Google Ads refused the developer token (DEVELOPER_TOKEN_NOT_APPROVED)"
    )


def test_no_secret_reaches_the_logs_even_at_debug(fake, caplog):
    caplog.set_level(logging.DEBUG)
    fake.faults.append(
        Fault(grpc.StatusCode.UNAUTHENTICATED, "authentication_error", "OAUTH_TOKEN_EXPIRED")
    )
    with pytest.raises(GoogleAdsPullError):
        _pull(fake)
    _pull(fake)
    assert caplog.records  # the client did log
    _assert_no_secret(caplog.text)
