"""Warehouse credentials never reach output, logs, metadata or errors (issue 13, item 21).

libpq and SQLAlchemy accept a password in several places: the URL's user-info
(``user:pw@host``), the query string (``?password=``, ``?sslpassword=``), a keyword/value DSN
(``host=... password=...``) and the ``PGPASSWORD`` environment variable. Each is checked against
what is printed (``redact_url``, which the demo prints), against driver errors that echo the
connection parameters (a real failed connection, not a mock), and through a real Dagster run.
"""

from __future__ import annotations

import datetime as dt
import logging
import urllib.parse

import pytest
import sqlalchemy as sa

from kpi.warehouse.connection import Warehouse, redact_url
from resources.warehouse import WarehouseResource

SECRET = "S3cr3t-Pw_71"
REFUSED = "127.0.0.1:1"  # nothing listens on port 1: the driver's connection error is real


def _forms(text: str) -> list[str]:
    """The secret as it may be spelled in a URL as well as plainly."""
    return [text, urllib.parse.quote(text, safe=""), urllib.parse.quote_plus(text)]


def _assert_hidden(text: str, secret: str = SECRET) -> None:
    for form in _forms(secret):
        assert form not in text, f"{form!r} shown in {text!r}"


def _exception_text(error: BaseException) -> str:
    """Everything an exception shows: its text and repr, and those of its whole chain."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    stack = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        parts += [str(current), repr(current), repr(current.args)]
        stack += [current.__cause__, current.__context__, getattr(current, "orig", None)]
    return "\n".join(parts)


# -- what is printed ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        (f"postgresql://kpi:{SECRET}@db.internal:5432/warehouse", ["kpi", "db.internal"]),
        (
            f"postgresql://kpi@db.internal/warehouse?password={SECRET}",
            ["kpi@db.internal/warehouse?password=***"],
        ),
        (
            f"postgresql+psycopg://kpi@db.internal/warehouse?sslmode=require&sslpassword={SECRET}",
            ["sslmode=require", "sslpassword=***", "db.internal"],
        ),
        (f"postgresql://kpi@/warehouse?host=db.internal&PassWord={SECRET}", ["host=db.internal"]),
        (
            f"duckdb:///md:warehouse?motherduck_token={SECRET}",
            ["warehouse", "motherduck_token=***"],
        ),
        # libpq's keyword/value form, quoted and not.
        (f"host=db.internal dbname=warehouse password={SECRET}", ["host=db.internal"]),
        (f"host=db.internal password = '{SECRET} x\\' y' user=kpi", ["user=kpi"]),
        # An '@' left unencoded in the password: SQLAlchemy then reads part of it as the host.
        (f"postgresql://kpi:S3@{SECRET}@db.internal/warehouse", ["postgresql"]),
        # Not a URL SQLAlchemy can parse: nothing of it may be echoed.
        (f"postgresql://kpi:{SECRET}@db.internal:notaport/warehouse", ["postgresql"]),
    ],
)
def test_redact_url_hides_every_password_form(url: str, kept: list[str]) -> None:
    shown = redact_url(url)
    _assert_hidden(shown)
    for part in kept:
        assert part in shown


def test_resource_display_url_is_redacted() -> None:
    resource = WarehouseResource(url=f"postgresql://kpi@db.internal/warehouse?password={SECRET}")
    _assert_hidden(resource.display_url)
    assert "db.internal" in resource.display_url


# -- driver errors -----------------------------------------------------------------------------


def test_unencoded_at_in_password_is_refused_without_echo() -> None:
    """``user:pw@rt@host``: the driver would try to resolve the host ``rt@host`` and print it."""
    url = f"postgresql://kpi:S3cr3t@{SECRET}@{REFUSED}/warehouse"
    with pytest.raises(ValueError, match="%40") as info:
        Warehouse(url).count(sa.table("t"))
    text = _exception_text(info.value)
    _assert_hidden(text)
    _assert_hidden(text, "S3cr3t")
    assert "%40" in str(info.value)  # says how to write an '@' in a password


@pytest.mark.parametrize(
    "url",
    [
        # The driver echoes the host it could not resolve; here it holds the secret.
        f"postgresql://kpi@{REFUSED}/warehouse?password={SECRET}&host={SECRET}",
        f"postgresql://kpi:{SECRET}@{SECRET}.invalid/warehouse",
        f"postgresql://kpi@{REFUSED}/warehouse?sslpassword={SECRET}&host={SECRET}",
    ],
)
def test_driver_errors_that_echo_the_connection_are_scrubbed(url: str) -> None:
    with pytest.raises(sa.exc.OperationalError) as info:
        Warehouse(url).count(sa.table("t"))
    text = _exception_text(info.value)
    _assert_hidden(text)
    assert "***" in str(info.value)  # still the driver's message, with the secret replaced


def test_pgpassword_is_scrubbed_from_errors(
    monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    """A real server's answer that names the database, whose name holds the PGPASSWORD text."""
    monkeypatch.setenv("PGPASSWORD", SECRET)
    url = sa.make_url(postgres_url).set(database=f"missing_{SECRET}")
    with pytest.raises(sa.exc.OperationalError) as info:
        Warehouse(url.render_as_string(hide_password=False)).count(sa.table("t"))
    text = _exception_text(info.value)
    _assert_hidden(text)
    assert "does not exist" in str(info.value)


def test_refused_connection_with_query_password_shows_nothing(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"postgresql://kpi@{REFUSED}/warehouse?password={SECRET}"
    with pytest.raises(sa.exc.OperationalError) as info:
        Warehouse(url).count(sa.table("t"))
    print(redact_url(url))  # what the demo prints about its warehouse
    out, err = capfd.readouterr()
    _assert_hidden(_exception_text(info.value) + out + err + caplog.text)
    assert "Connection refused" in str(info.value)


# -- a real Dagster run --------------------------------------------------------------------------


def _event_text(result: object) -> str:
    return "\n".join(str(event) for event in result.all_events)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "make_url",
    [
        # A working PostgreSQL (trust auth ignores the password) reached with ?password=.
        lambda pg: f"{pg}?password={SECRET}",
        # A refusing server and a password with an unencoded '@'.
        lambda pg: f"postgresql://kpi:S3cr3t@{SECRET}@{REFUSED}/warehouse",
    ],
    ids=["query-password", "unencoded-at"],
)
def test_dagster_run_shows_no_secret(
    make_url,
    postgres_url: str,
    tmp_path,
    capfd,
    caplog,
) -> None:
    from tests.support import fake_ga4, run_pipeline, traffic_rows

    caplog.set_level(logging.DEBUG)
    url = make_url(postgres_url)
    landing = tmp_path / "landing"
    landing.mkdir()
    day = dt.date(2024, 3, 1)
    rows = traffic_rows([(day, "Organic Search", "desktop", 10, 5, 1, 20.0)])
    with fake_ga4(rows) as server:
        result = run_pipeline(url, server.endpoint, landing, day, day, raise_on_error=False)
    out, err = capfd.readouterr()
    text = _event_text(result) + out + err + caplog.text
    _assert_hidden(text)
    _assert_hidden(text, "S3cr3t")
