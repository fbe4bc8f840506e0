"""Meta Ads through the official ``facebook-business`` client against a local fake of the
Graph API (demo.fake_meta): the client's session is pointed at the fake through its
``GRAPH`` base URL. Nothing of the client is mocked; only the server is not Meta's, which
cannot be reached from here."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

import pytest

from demo.fake_meta import (
    NO_PERMISSION,
    RATE_LIMITED,
    TOKEN_EXPIRED,
    TOO_MANY_REQUESTS,
    FakeAdAccount,
    FakeMeta,
)
from demo.fake_meta.server import Fault
from ingest.meta.errors import API_VERSION, MetaPullError, normalise_account_id
from ingest.meta.pull import MetaSettings, amount, claimed, make_api, pull_campaign_days

ACCOUNT = "1234567890"
MARCH = [dt.date(2026, 3, 1) + dt.timedelta(days=i) for i in range(5)]
SECRETS = {"token": "EAAB-token-S3CRET", "app_secret": "app-S3CRET-secret"}


def _rows(purchases: str = "3") -> list[dict]:
    return [
        {
            "date": day,
            "campaign_id": 23850000000000011,
            "campaign": "spring_prospecting",
            "spend": "1234.56789",
            "clicks": 10 + i,
            "impressions": 100,
            "actions": [
                {"action_type": "link_click", "value": "10"},
                {"action_type": "offsite_conversion.fb_pixel_purchase", "value": purchases},
                {"action_type": "purchase", "value": purchases},
            ],
            "action_values": [
                {"action_type": "offsite_conversion.fb_pixel_purchase", "value": "120.75"},
                {"action_type": "purchase", "value": "120.75"},
            ],
        }
        for i, day in enumerate(MARCH)
    ]


@pytest.fixture
def fake():
    with FakeMeta(
        {ACCOUNT: FakeAdAccount(rows=_rows())}, access_token=SECRETS["token"], page_size=2
    ) as server:
        yield server


def _settings(fake: FakeMeta, **changes) -> MetaSettings:
    values = {
        "access_token": SECRETS["token"],
        "app_id": "1234",
        "app_secret": SECRETS["app_secret"],
        "graph_url": fake.url,
    }
    return MetaSettings(**{**values, **changes})


def _pull(fake, settings=None, account=f"act_{ACCOUNT}", **kwargs) -> list[dict]:
    settings = settings or _settings(fake)
    return pull_campaign_days(
        make_api(settings),
        settings,
        account,
        MARCH[0],
        MARCH[-1],
        sleep=kwargs.pop("sleep", lambda s: None),
        **kwargs,
    )


def _message(fake, **kwargs) -> str:
    with pytest.raises(MetaPullError) as caught:
        _pull(fake, **kwargs)
    return str(caught.value)


def _assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS.values():
            assert secret not in text


def test_spend_converts_exactly():
    assert amount("1234.56789") == Decimal("1234.56789")
    assert sum(amount("0.001") for _ in range(1000)) == Decimal("1.000")  # a float drifts
    assert amount(None) == Decimal(0)


def test_three_pages_give_every_row_once(fake):
    rows = _pull(fake)
    assert [r["date"] for r in rows] == MARCH  # 5 rows, 2 a page: three pages
    assert fake.insights_calls() == 3
    assert rows[0] == {
        "platform": "meta",
        "account": f"act_{ACCOUNT}",
        "account_currency": "EUR",
        "account_time_zone": "Europe/Copenhagen",
        "campaign_id": "23850000000000011",
        "campaign": "spring_prospecting",
        "channel": "social",
        "date": MARCH[0],
        "cost": Decimal("1234.56789"),
        "clicks": 10,
        "impressions": 100,
        "conversions_claimed": Decimal("3"),
        "conversions_value_claimed": Decimal("120.75"),
    }
    # The token travels in a header, never in a URL.
    path, query, headers = fake.requests[0]
    assert path == f"/{API_VERSION}/act_{ACCOUNT}/"  # the account node: its time zone
    assert headers["authorization"] == f"OAuth {SECRETS['token']}"
    assert "access_token" not in query and "appsecret_proof" in query


def test_placements_merge_into_one_row_per_channel_audience_network_is_display(fake):
    day = MARCH[0]
    base = {"date": day, "campaign_id": 7, "campaign": "mixed", "actions": None}
    fake.set_rows(
        ACCOUNT,
        [
            {
                **base,
                "publisher_platform": "facebook",
                "spend": "10.10",
                "clicks": 1,
                "impressions": 10,
            },
            {
                **base,
                "publisher_platform": "instagram",
                "spend": "0.20",
                "clicks": 2,
                "impressions": 20,
            },
            {
                **base,
                "publisher_platform": "audience_network",
                "spend": "3.00",
                "clicks": 3,
                "impressions": 30,
            },
        ],
    )
    rows = {r["channel"]: r for r in _pull(fake)}
    assert sorted(rows) == ["display", "social"]
    assert (rows["social"]["cost"], rows["social"]["clicks"]) == (Decimal("10.30"), 3)
    assert (rows["display"]["cost"], rows["display"]["impressions"]) == (Decimal("3.00"), 30)
    # Asked by placement: the breakdown is in every insights request.
    assert all(
        '"publisher_platform"' in q.get("breakdowns", "")
        for p, q, _ in fake.requests
        if p.endswith("/insights")
    )


def test_claimed_purchases_take_the_aggregate_else_the_pixel_never_both():
    both = [
        {"action_type": "purchase", "value": "3"},
        {"action_type": "offsite_conversion.fb_pixel_purchase", "value": "2"},
    ]
    assert claimed(both) == Decimal("3")  # not 5: the pixel's purchases are among the 3
    assert claimed(both[1:]) == Decimal("2")
    assert claimed([{"action_type": "link_click", "value": "9"}]) == Decimal(0)
    assert claimed(None) == Decimal(0)  # Meta leaves out "actions" when there were none


def test_a_day_without_actions_claims_nothing(fake):
    rows = _rows()
    for row in rows:
        del row["actions"], row["action_values"]
    fake.set_rows(ACCOUNT, rows)
    pulled = _pull(fake)
    assert {(r["conversions_claimed"], r["conversions_value_claimed"]) for r in pulled} == {
        (Decimal(0), Decimal(0))
    }


def test_account_ids_with_and_without_act_are_accepted(fake):
    assert normalise_account_id("act_123") == normalise_account_id("123") == "act_123"
    assert len(_pull(fake, account=ACCOUNT)) == 5


@pytest.mark.parametrize("bad", ["act-123", "12a34", "", "account_123"])
def test_a_malformed_account_id_is_refused_before_any_request(fake, bad):
    assert _message(fake, account=bad) == (
        f"META_AD_ACCOUNT_IDS: {bad!r} is not a Meta ad account id: expected act_ followed "
        "by digits, or the digits alone (act_1234567890 or 1234567890), as shown in Ads "
        "Manager's account menu"
    )
    assert fake.requests == []


def test_a_rate_limit_is_retried_with_backoff_and_keeps_no_row_twice(fake):
    fake.faults.append(RATE_LIMITED)
    fake.faults.append(Fault(17, "(#17) User request limit reached", page=1))  # half way
    waits: list[float] = []
    rows = _pull(fake, sleep=waits.append)
    assert [r["date"] for r in rows] == MARCH
    assert waits == [1.0, 2.0]
    assert fake.insights_calls() == 2 + 3  # the broken paging restarted from page 0


def test_http_429_is_retried_too(fake):
    fake.faults.append(TOO_MANY_REQUESTS)
    waits: list[float] = []
    assert len(_pull(fake, sleep=waits.append)) == 5
    assert waits == [1.0]


def test_a_rate_limit_that_does_not_end_fails_saying_so(fake):
    fake.faults.extend([RATE_LIMITED] * 3)
    waits: list[float] = []
    assert _message(fake, max_attempts=3, sleep=waits.append) == (
        f"Meta rate limit for ad account act_{ACCOUNT} (code 17, subcode 2446079, fbtrace id "
        "FakeTrace1): still limited after 3 attempts; try later or pull fewer days per run"
    )
    assert waits == [1.0, 2.0] and len(fake.requests) == 3


def test_revised_conversions_are_seen_by_the_next_pull(fake):
    assert {r["conversions_claimed"] for r in _pull(fake)} == {Decimal("3")}
    fake.set_rows(ACCOUNT, _rows(purchases="4"))  # Meta restated the days
    assert {r["conversions_claimed"] for r in _pull(fake)} == {Decimal("4")}


def test_an_expired_token_fails_at_once_naming_what_to_renew(fake):
    fake.faults.append(TOKEN_EXPIRED)
    assert _message(fake) == (
        "Meta refused the access token (code 190, subcode 463, fbtrace id FakeTrace1): create "
        "a new META_ACCESS_TOKEN (a user token expires after about 60 days or when its "
        "password changes; a system user token from Business Settings does not) with the "
        "ads_read permission"
    )
    assert len(fake.requests) == 1  # not retried


def test_a_wrong_token_echoed_by_meta_is_not_shown(fake):
    message = _message(fake, settings=_settings(fake, access_token="EAAB-wrong-S3CRET"))
    assert message.startswith("Meta refused the access token (code 190")
    assert "EAAB-wrong-S3CRET" not in message


def test_a_missing_token_fails_before_any_call(fake):
    assert _message(fake, settings=_settings(fake, access_token="")) == (
        "META_ACCESS_TOKEN is not set: the Meta Marketing API refuses every call without one "
        "(a system user token with ads_read, from Business Settings > Users > System users)"
    )
    assert fake.requests == []


def test_no_permission_fails_naming_the_account(fake):
    fake.faults.append(NO_PERMISSION)
    assert _message(fake) == (
        f"the token's user has no access to ad account act_{ACCOUNT} (code 200, fbtrace id "
        "FakeTrace1): grant the user or system user of META_ACCESS_TOKEN access to that ad "
        "account (Business Settings > Accounts > Ad accounts > Assign people), or remove it "
        "from META_AD_ACCOUNT_IDS"
    )


def test_an_account_the_token_cannot_see_fails_naming_it(fake):
    message = _message(fake, account="act_999")
    assert message.startswith(
        "the token's user has no access to ad account act_999 (code 100, subcode 33, "
        "fbtrace id FakeTrace1): grant the user or system user of META_ACCESS_TOKEN"
    )


def test_no_secret_reaches_messages_or_logs_even_at_debug(fake, caplog):
    caplog.set_level(logging.DEBUG)
    messages = []
    for fault in (TOKEN_EXPIRED, NO_PERMISSION, Fault(1, f"echo {SECRETS['token']}")):
        fake.faults.append(fault)
        messages.append(_message(fake))
    messages.append(_message(fake, settings=_settings(fake, access_token="EAAB-wrong-S3CRET")))
    fake.faults.extend([RATE_LIMITED] * 2)
    messages.append(_message(fake, max_attempts=2))
    _pull(fake)
    assert messages[2] == (
        f"Meta call for ad account act_{ACCOUNT} failed (code 1, fbtrace id FakeTrace1): echo ***"
    )
    assert caplog.records  # urllib3 did log every request
    _assert_no_secret(caplog.text, *messages)
    assert "EAAB-wrong-S3CRET" not in caplog.text + "".join(messages)
