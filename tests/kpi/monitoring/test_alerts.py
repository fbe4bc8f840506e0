"""KPI alerts against real parts: a DuckDB (and PostgreSQL) warehouse, a local HTTP server
standing in for the Slack webhook, and a local SMTP server (aiosmtpd).

Covered: each rule kind, delivery through each channel, the same event never sent twice,
cooldowns with an injected clock, failing channels (HTTP 500, connection refused, timeout,
SMTP errors) that neither fail the run nor leak the webhook token or the SMTP password, the
rule checks of the definitions, a refresh computed by ``kpi.refresh``, and one Dagster run
of the ``kpi_alerts`` asset.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import logging
import socket
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from dagster import DagsterInstance, materialize

from kpi.compute.tables import KpiTables
from kpi.language.catalog import Catalog
from kpi.language.loader import load_catalog
from kpi.language.models import AlertRule, format_duration, parse_duration
from kpi.language.problems import DefinitionError
from kpi.language.rules.alerts import alert_problems
from kpi.monitoring.alerts import run_alerts
from kpi.refresh import (
    refresh_anomalies,
    refresh_comparisons,
    refresh_kpi_values,
    refresh_periods,
    refresh_targets,
)
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.schema import kpi_alerts_table
from resources.notifier import NotifierResource, notifier_from_env
from resources.warehouse import WarehouseResource

TOKEN = "XyZsecretTOKEN0123456789"
WEBHOOK_PATH = f"/services/T0AAA1111/B0BBB2222/{TOKEN}"
SMTP_USER = "alerts"
SMTP_PASSWORD = "s3cret-smtp-pw!"
SECRETS = (TOKEN, SMTP_PASSWORD)
UTC = dt.UTC

SOURCES_YAML = """\
reporting: {time_zone: UTC}
dimensions: {}
sources:
  traffic:
    table: raw.traffic
    time: {column: date, type: date, time_zone: UTC}
    columns:
      date: {type: date}
      sessions: {type: integer, additivity: additive}
"""

KPIS_YAML = """\
area: test
kpis:
  - id: sessions
    name: Sessions
    description: Sessions.
    owner: growth@example.com
    unit: count
    direction: higher_is_better
    type: simple
    measure: {source: traffic, agg: sum, expr: sessions}
    grains: [day, month]
    target: {value: 3000, grain: month}
    alerts:
      - {rule: status_change, to: off_track, grain: month, cooldown: 7d}
      - {rule: anomaly, cooldown: 2d}
      - {rule: consecutive_breaches, count: 3, grain: day, cooldown: 3d, channels: [slack]}
"""


# ---------------------------------------------------------------------------------------------
# Local stand-ins for Slack and an SMTP server
# ---------------------------------------------------------------------------------------------


class Webhook:
    """What the fake Slack webhook received, and how it answers."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.status = 200
        self.delay = 0.0
        self.url = ""


class _WebhookHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        hook: Webhook = self.server.hook  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        hook.received.append({"path": self.path, "json": json.loads(body)})
        time.sleep(hook.delay)
        # A hostile error body that quotes the request path, token included: the notifier
        # must scrub it before it reaches logs, metadata or the table.
        reply = b"ok" if hook.status == 200 else f"no_service for {self.path}".encode()
        try:
            self.send_response(hook.status)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (the timeout test): nobody to answer

    def log_message(self, *args) -> None:
        pass  # keep the test output clean


@pytest.fixture
def webhook():
    hook = Webhook()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _WebhookHandler)
    server.daemon_threads = True
    server.block_on_close = False  # a request left sleeping by the timeout test
    server.hook = hook  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}{WEBHOOK_PATH}"
    yield hook
    server.shutdown()
    server.server_close()


class Inbox:
    """Messages the local SMTP server accepted."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.logins: list[tuple[str, bool]] = []
        self.port = 0

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        login, password = auth_data.login.decode(), auth_data.password.decode()
        ok = login == SMTP_USER and password == SMTP_PASSWORD
        self.logins.append((login, ok))
        # handled=False: the server answers 535 itself (True would leave the client waiting).
        return AuthResult(success=ok, handled=False)

    async def handle_DATA(self, server, session, envelope) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "subject": str(message["Subject"]).strip(),  # a long subject is folded
                "body": message.get_content(),
            }
        )
        return "250 Message accepted for delivery"


class _Controller(Controller):
    def _trigger_server(self) -> None:
        # Bound to port 0: learn the port the OS chose before the base class connects to it.
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@pytest.fixture
def smtp():
    inbox = Inbox()
    with warnings.catch_warnings():
        # Login without TLS is what this local test server is for; aiosmtpd warns about it.
        warnings.simplefilter("ignore")
        controller = _Controller(
            inbox,
            hostname="127.0.0.1",
            port=0,
            authenticator=inbox.authenticate,
            auth_require_tls=False,
        )
        controller.start()
    inbox.port = controller.port
    yield inbox
    controller.stop()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _notifier(webhook: Webhook | None, smtp: Inbox | None, **overrides) -> NotifierResource:
    settings: dict = {"smtp_starttls": False, "timeout_seconds": 2.0}
    if webhook is not None:
        settings["slack_webhook_url"] = webhook.url
    if smtp is not None:
        settings |= {
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "smtp_from": "kpi@example.com",
            "email_to": "manager@example.com, analyst@example.com",
        }
    return NotifierResource(**(settings | overrides))


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def alert_logs():
    """Lines logged by kpi.monitoring.alerts (pytest's logging plugin is off in this project)."""
    handler, logger = _Records(), logging.getLogger("kpi.monitoring.alerts")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(level)


# ---------------------------------------------------------------------------------------------
# A tiny catalog and its tables, filled directly
# ---------------------------------------------------------------------------------------------


def _catalog(folder: Path, kpis_yaml: str = KPIS_YAML) -> Catalog:
    folder.mkdir(exist_ok=True)
    (folder / "sources.yaml").write_text(SOURCES_YAML)
    (folder / "test.yaml").write_text(kpis_yaml)
    return load_catalog(folder)


@pytest.fixture
def setup(tmp_path: Path, duckdb_url: str):
    catalog = _catalog(tmp_path / "defs")
    tables = KpiTables.for_catalog(catalog)
    wh = Warehouse(duckdb_url)
    wh.ensure_tables(tables.all_tables())
    yield wh, catalog, tables
    wh.dispose()


def _period(grain, start, end, status, actual=None, target=None, kpi_id="sessions") -> dict:
    return {
        "kpi_id": kpi_id,
        "kpi_name": kpi_id.replace("_", " ").capitalize(),
        "area": "test",
        "direction": "higher_is_better",
        "grain": grain,
        "period_start": start,
        "period_end": end,
        "is_complete_period": True,
        "actual": actual,
        "target": target,
        "attainment": actual / target if actual is not None and target else None,
        "status": status,
        "definition_version": "v1",
        "computed_at": dt.datetime(2026, 1, 1, tzinfo=UTC),
    }


def _months(
    *months: tuple[str, str, float], kpi_id: str = "sessions", target: float = 3000.0
) -> list[dict]:
    """Complete months from (YYYY-MM, status, actual)."""
    rows = []
    for month, status, actual in months:
        start = dt.date.fromisoformat(f"{month}-01")
        end = (start + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
        rows.append(_period("month", start, end, status, actual, target, kpi_id))
    return rows


def _days(first: dt.date, statuses: list[str], actuals: list[float] | None = None) -> list[dict]:
    """Complete days from ``first`` with these statuses, against a target of 100."""
    actuals = actuals or [80.0] * len(statuses)
    return [
        _period("day", first + dt.timedelta(days=i), first + dt.timedelta(days=i), s, a, 100.0)
        for i, (s, a) in enumerate(zip(statuses, actuals, strict=True))
    ]


def _put(wh: Warehouse, table: sa.Table, rows: list[dict]) -> None:
    wh.replace_rows(table, None, pd.DataFrame(rows))


def _history(wh: Warehouse) -> pd.DataFrame:
    table = kpi_alerts_table(sa.MetaData())
    return wh.read(sa.select(table).order_by(table.c.fired_at, table.c.event_key))


def _at(day: str, hour: int = 6) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def _assert_no_secret(*texts: object) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in str(text)


# ---------------------------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------------------------


def test_durations_parse_and_print_as_written():
    assert parse_duration("30m") == dt.timedelta(minutes=30)
    assert parse_duration("12h") == dt.timedelta(hours=12)
    assert parse_duration(" 7d ") == dt.timedelta(days=7)
    assert [format_duration(parse_duration(t)) for t in ("30m", "12h", "7d", "90m")] == [
        "30m",
        "12h",
        "7d",
        "90m",
    ]
    for bad in ("7 days", "7w", "1.5d", "", "-3d", 7):
        with pytest.raises(ValueError, match="duration"):
            AlertRule.model_validate({"rule": "anomaly", "cooldown": bad})
    rule = AlertRule.model_validate({"rule": "status_change"})
    assert (rule.to_status, rule.period_grain) == ("off_track", "month")
    assert rule.cooldown == dt.timedelta(days=1)
    assert rule.model_dump(mode="json")["cooldown"] == "1d"


def test_bad_alert_rules_are_located_definition_problems(tmp_path: Path):
    bad = KPIS_YAML.replace("cooldown: 2d", "cooldown: 2 days").replace(
        "count: 3, grain: day", "grain: day"
    )
    with pytest.raises(DefinitionError) as err:
        _catalog(tmp_path / "bad", bad)
    lines = bad.splitlines()
    anomaly_line = next(i for i, t in enumerate(lines, 1) if "2 days" in t)
    breaches_line = next(i for i, t in enumerate(lines, 1) if "consecutive_breaches" in t)
    found = {(p.line, p.kpi_id): p.message for p in err.value.problems}
    assert "duration such as 30m, 12h or 7d" in found[(anomaly_line, "sessions")]
    assert "needs `count`" in found[(breaches_line, "sessions")]
    assert str(err.value.problems[0]).startswith(f"{tmp_path / 'bad' / 'test.yaml'}:")

    # Rules that can never fire: checked against the KPI, located at the rule.
    odd = KPIS_YAML.replace("grain: month, cooldown: 7d", "grain: week, cooldown: 7d")
    odd = odd.replace("    target: {value: 3000, grain: month}\n", "") + (
        "      - {rule: anomaly, cooldown: 1d}\n"
    )
    # They are definition problems: loading the definitions refuses them, all at once.
    with pytest.raises(DefinitionError) as err:
        _catalog(tmp_path / "odd", odd)
    messages = [f"{p.line}: {p.message}" for p in err.value.problems]
    week_line = next(i for i, t in enumerate(odd.splitlines(), 1) if "grain: week" in t)
    assert any(m.startswith(f"{week_line}: ") and "grain `week`" in m for m in messages)
    assert sum("no target" in m for m in messages) == 2  # status_change and breaches
    assert any("the same rule as alerts[1]" in m for m in messages)


def test_shipped_definitions_declare_alerts():
    catalog = load_catalog()
    assert alert_problems(catalog) == []
    labels = {k.id: [r.label for r in k.alerts] for k in catalog.kpis.values() if k.alerts}
    assert labels["conversion_rate"][0] == "status_change:month:off_track"
    assert labels["sessions"] == ["anomaly"]


# ---------------------------------------------------------------------------------------------
# Rules, channels, once-only and cooldown
# ---------------------------------------------------------------------------------------------


def test_status_change_alert_reaches_slack_and_email_once(
    warehouse_url: str, tmp_path: Path, webhook: Webhook, smtp: Inbox
):
    """On DuckDB and PostgreSQL: the history round trip (timestamps with zones) differs."""
    catalog = _catalog(tmp_path / "defs")
    tables = KpiTables.for_catalog(catalog)
    wh = Warehouse(warehouse_url)
    try:
        wh.ensure_tables(tables.all_tables())
        _put(
            wh,
            tables.comparisons,
            _months(("2026-09", "at_risk", 2900), ("2026-10", "off_track", 2500)),
        )
        notifier = _notifier(webhook, smtp)

        run = run_alerts(wh, catalog, notifier, now=_at("2026-11-02"), run_id="run-1")

        assert [(r.firing.event_key, r.outcome) for r in run.records] == [
            ("sessions/status_change:month:off_track/2026-10-01", "sent")
        ]
        (slack,) = webhook.received
        assert slack["path"] == WEBHOOK_PATH
        assert slack["json"]["text"].splitlines()[:3] == [
            ":red_circle: *Sessions is off track for 2026-10 (previous period: at risk)*",
            "Actual: 2,500 vs target 3,000 (83% of target)",
            "Status: off track",
        ]
        (mail,) = smtp.messages
        assert mail["to"] == ["manager@example.com", "analyst@example.com"]
        assert mail["from"] == "kpi@example.com"
        assert mail["subject"] == (
            "[KPI alert] Sessions is off track for 2026-10 (previous period: at risk)"
        )
        assert "Actual: 2,500 vs target 3,000 (83% of target)" in mail["body"]
        assert "Rule: status_change:month:off_track, cooldown 7d" in mail["body"]
        assert "*" not in mail["body"]  # plain text, not Slack markup

        history = _history(wh)
        row = history.iloc[0].to_dict()
        assert (row["slack"], row["email"], row["outcome"]) == ("delivered", "delivered", "sent")
        assert row["delivered"] and not row["suppressed_by_cooldown"]
        assert row["run_id"] == "run-1" and row["status"] == "off_track"
        assert row["period_start"] == dt.date(2026, 10, 1) and row["actual"] == 2500

        # The same event, an hour later and after the cooldown: never sent a second time.
        for later in (_at("2026-11-02", 7), _at("2026-12-01")):
            assert run_alerts(wh, catalog, notifier, now=later).records == []
        assert (len(webhook.received), len(smtp.messages), len(_history(wh))) == (1, 1, 1)
    finally:
        wh.dispose()


@pytest.mark.parametrize(
    "months",
    [
        [("2026-09", "off_track", 2500), ("2026-10", "off_track", 2400)],  # no change
        [("2026-09", "off_track", 2500), ("2026-10", "on_track", 3100)],  # recovered
        [("2026-09", "on_track", 3100), ("2026-10", "at_risk", 2900)],  # not `to`
        [("2026-10", "off_track", 2500)],  # the first period: nothing to change from
        [("2026-08", "on_track", 3100), ("2026-10", "off_track", 2500)],  # September missing
    ],
    ids=["still_off_track", "recovered", "at_risk_only", "first_period", "gap"],
)
def test_status_change_does_not_fire_without_a_change(setup, months, webhook):
    wh, catalog, tables = setup
    _put(wh, tables.comparisons, _months(*months))
    assert run_alerts(wh, catalog, _notifier(webhook, None), now=_at("2026-11-02")).records == []
    assert webhook.received == []


def test_consecutive_breaches_with_cooldown(setup, webhook: Webhook, smtp: Inbox):
    wh, catalog, tables = setup
    notifier = _notifier(webhook, smtp)
    first = dt.date(2026, 3, 1)

    def evaluate(statuses: list[str], now: str):
        _put(wh, tables.comparisons, _days(first, statuses))
        return run_alerts(wh, catalog, notifier, now=_at(now))

    # Two days off track are not yet a streak of three.
    assert evaluate(["on_track", "off_track", "off_track"], "2026-03-04").records == []
    # Three in a row fire, on Slack only: the rule names no other channel.
    run = evaluate(["off_track"] * 3, "2026-03-04")
    assert [(r.firing.period_start, r.outcome) for r in run.records] == [
        (first + dt.timedelta(2), "sent")
    ]
    assert len(webhook.received) == 1 and smtp.messages == []
    assert run.records[0].results["slack"].outcome == "delivered"
    assert "email" not in run.records[0].results
    assert webhook.received[0]["json"]["text"].startswith(
        ":red_circle: *Sessions has been off track for 3 days in a row, through 2026-03-03*"
    )

    # A fourth day is a new event, one day into the 3-day cooldown: recorded, not sent.
    run = evaluate(["off_track"] * 4, "2026-03-05")
    assert [(str(r.firing.period_start), r.outcome) for r in run.records] == [
        ("2026-03-04", "suppressed")
    ]
    assert len(webhook.received) == 1

    # Three days after the last alert sent, the streak goes on and is sent again.
    run = evaluate(["off_track"] * 6, "2026-03-07")
    assert [(str(r.firing.period_start), r.outcome) for r in run.records] == [
        ("2026-03-06", "sent")
    ]
    assert len(webhook.received) == 2
    assert "through 2026-03-06" in webhook.received[1]["json"]["text"]

    # at_risk breaks the streak (only off_track counts), and so does any day in between.
    assert evaluate([*["off_track"] * 6, "at_risk"], "2026-03-12").records == []
    assert evaluate(["at_risk"] * 5, "2026-03-20").records == []

    history = _history(wh)
    assert list(history["outcome"]) == ["sent", "suppressed", "sent"]
    assert list(history["suppressed_by_cooldown"]) == [False, True, False]
    assert history["email"].isna().all()


def test_anomaly_alerts_for_recent_days_not_yet_alerted(setup, webhook: Webhook, smtp: Inbox):
    wh, catalog, tables = setup
    notifier = _notifier(webhook, smtp)
    first = dt.date(2026, 3, 1)

    def evaluate(last_day: int, flagged: dict[int, str], now: str):
        kinds = [flagged.get(day) for day in range(1, last_day + 1)]
        values = [20.0 if k == "drop" else 300.0 if k else 96.0 for k in kinds]
        rows = [
            {
                "kpi_id": "sessions",
                "period_start": first + dt.timedelta(days=i),
                "value": value,
                "baseline": 95.0,
                "robust_sd": 4.0,
                "z_score": (value - 95.0) / 4.0,
                "is_anomaly": kind is not None,
                "kind": kind,
                "definition_version": "v1",
            }
            for i, (kind, value) in enumerate(zip(kinds, values, strict=True))
        ]
        _put(wh, tables.anomalies, rows)
        # The day's status against its target is joined in; every day is on or above it.
        _put(wh, tables.comparisons, _days(first, ["on_track"] * last_day, values))
        return run_alerts(wh, catalog, notifier, now=_at(now))

    # March 5 is too old to be news; March 18 and 19 are both new: the latest is sent and
    # the cooldown holds back the other.
    run = evaluate(20, {5: "spike", 18: "spike", 19: "drop"}, "2026-03-21")
    assert [(str(r.firing.period_start), r.outcome) for r in run.records] == [
        ("2026-03-19", "sent"),
        ("2026-03-18", "suppressed"),
    ]
    (slack,) = webhook.received
    assert slack["json"]["text"].splitlines()[:3] == [
        ":warning: *Sessions: unusual drop on 2026-03-19*",
        "Actual: 20 vs target 100 (20% of target)",
        "Expected about 95 for this weekday (-18.8 robust standard deviations)",
    ]
    assert smtp.messages[0]["subject"] == "[KPI alert] Sessions: unusual drop on 2026-03-19"

    # Nothing new: nothing sent.
    assert run_alerts(wh, catalog, notifier, now=_at("2026-03-21", 9)).records == []
    # A new spike a day later is within the 2-day cooldown.
    run = evaluate(21, {18: "spike", 19: "drop", 21: "spike"}, "2026-03-22")
    assert [(str(r.firing.period_start), r.outcome) for r in run.records] == [
        ("2026-03-21", "suppressed")
    ]
    # Two days after the last alert sent, the next spike goes out.
    run = evaluate(23, {21: "spike", 23: "spike"}, "2026-03-23")
    assert [(str(r.firing.period_start), r.outcome) for r in run.records] == [
        ("2026-03-23", "sent")
    ]
    assert len(webhook.received) == 2 and len(smtp.messages) == 2


def test_unconfigured_channels_are_skipped_and_reported(setup):
    wh, catalog, tables = setup
    _put(
        wh,
        tables.comparisons,
        _months(("2026-09", "on_track", 3100), ("2026-10", "off_track", 2500)),
    )
    half_email = NotifierResource(smtp_host="127.0.0.1")  # no sender, no recipients
    run = run_alerts(wh, catalog, half_email, now=_at("2026-11-02"))
    (record,) = run.records
    assert record.outcome == "no_channel"
    assert record.results["slack"].error == "not configured: SLACK_WEBHOOK_URL"
    assert record.results["email"].error == "not configured: SMTP_FROM, ALERT_EMAIL_TO"
    row = _history(wh).iloc[0]
    assert (row["slack"], row["email"], row["delivered"]) == ("skipped", "skipped", False)


# ---------------------------------------------------------------------------------------------
# Failures: the run goes on, the secrets stay secret
# ---------------------------------------------------------------------------------------------


def test_webhook_500_does_not_fail_the_run_nor_leak_the_token(
    setup, webhook: Webhook, smtp: Inbox, alert_logs: list[str]
):
    wh, catalog, tables = setup
    webhook.status = 500
    _put(
        wh,
        tables.comparisons,
        _months(("2026-09", "on_track", 3100), ("2026-10", "off_track", 2500)),
    )
    notifier = _notifier(webhook, smtp)

    run = run_alerts(wh, catalog, notifier, now=_at("2026-11-02"))

    (record,) = run.records
    assert record.outcome == "sent"  # email got through
    slack = record.results["slack"]
    assert slack.outcome == "failed"
    assert slack.error == "HTTP 500 Internal Server Error: no_service for ***"
    assert len(webhook.received) == 1 and len(smtp.messages) == 1
    history = _history(wh)
    assert history.iloc[0]["slack_error"] == slack.error
    assert any("slack failed: HTTP 500" in line for line in alert_logs)
    _assert_no_secret(history.to_csv(), *alert_logs, run.failures)


def test_failed_alert_is_retried_and_refused_connections_do_not_leak(
    setup, webhook: Webhook, smtp: Inbox, alert_logs: list[str]
):
    wh, catalog, tables = setup
    _put(wh, tables.comparisons, _days(dt.date(2026, 3, 1), ["off_track"] * 3))
    closed = _closed_port()
    refused_email = {
        "smtp_host": "127.0.0.1",
        "smtp_port": closed,
        "smtp_from": "kpi@example.com",
        "email_to": "manager@example.com",
        "smtp_user": SMTP_USER,
        "smtp_password": SMTP_PASSWORD,
    }
    refused_url = f"http://127.0.0.1:{closed}{WEBHOOK_PATH}"
    down = _notifier(None, None, slack_webhook_url=refused_url, **refused_email)
    # The breaches rule sends on Slack only: everything it tried failed.
    (record,) = run_alerts(wh, catalog, down, now=_at("2026-03-04")).records
    assert record.outcome == "failed"
    assert record.results["slack"].error.startswith("connection failed: [Errno 111]")

    # A failed event starts no cooldown and is tried again while it still holds.
    slow = _notifier(webhook, None, timeout_seconds=0.3)
    webhook.delay = 1.0
    (record,) = run_alerts(wh, catalog, slow, now=_at("2026-03-04", 7)).records
    assert (record.outcome, record.results["slack"].error) == ("failed", "timed out")
    webhook.delay = 0.0
    (record,) = run_alerts(wh, catalog, _notifier(webhook, None), now=_at("2026-03-04", 8)).records
    assert record.outcome == "sent"
    assert run_alerts(wh, catalog, _notifier(webhook, None), now=_at("2026-03-04", 9)).records == []

    # Email: refused connection, refused password, STARTTLS the server does not offer.
    month_rows = _months(("2026-01", "on_track", 3100), ("2026-02", "off_track", 2500))
    _put(wh, tables.comparisons, month_rows)
    email_down = _notifier(None, None, **refused_email)
    (record,) = run_alerts(wh, catalog, email_down, now=_at("2026-03-05")).records
    assert record.results["email"].error.startswith("ConnectionRefusedError: [Errno 111]")
    assert record.results["slack"].outcome == "skipped"
    wrong = _notifier(None, smtp, smtp_user=SMTP_USER, smtp_password=SMTP_PASSWORD + "x")
    (record,) = run_alerts(wh, catalog, wrong, now=_at("2026-03-05", 7)).records
    assert record.results["email"].error.startswith("SMTPAuthenticationError: (535")
    tls = _notifier(None, smtp, smtp_starttls=True)
    (record,) = run_alerts(wh, catalog, tls, now=_at("2026-03-05", 8)).records
    assert "STARTTLS extension not supported" in record.results["email"].error
    assert smtp.messages == []
    # With the right password the login succeeds and the message goes out.
    right = _notifier(None, smtp, smtp_user=SMTP_USER, smtp_password=SMTP_PASSWORD)
    (record,) = run_alerts(wh, catalog, right, now=_at("2026-03-05", 9)).records
    assert record.outcome == "sent" and len(smtp.messages) == 1
    assert smtp.logins[-1] == (SMTP_USER, True) and (SMTP_USER, False) in smtp.logins

    history = _history(wh)
    assert list(history["outcome"]) == ["failed", "failed", "sent"] + ["failed"] * 3 + ["sent"]
    _assert_no_secret(history.to_csv(), *alert_logs)
    # The secrets were in the notifier all along: only the scrubbing kept them out.
    assert TOKEN in (down.slack_webhook_url or "")


# ---------------------------------------------------------------------------------------------
# From raw rows through kpi.refresh, and through Dagster
# ---------------------------------------------------------------------------------------------


def test_alerts_on_tables_computed_by_the_refresh(setup, webhook: Webhook):
    wh, catalog, tables = setup
    # January around 100 sessions a day (on track for 3000), February around 80 (off
    # track) with a spike on its last day; the small weekly wobble gives the anomaly band a
    # spread. 80 x 27 + 400 = 2560 is 85% of 3000: below the 90% off-track threshold.
    wobble = [0.0, 2.0, -1.0, 1.5, -2.0, 1.0, -0.5]
    rows = []
    for i in range(59):
        day = dt.date(2026, 1, 1) + dt.timedelta(days=i)
        level = 100 if day.month == 1 else 80
        rows.append({"date": day, "sessions": round(level + wobble[i % 7])})
    rows[-1]["sessions"] = 400
    wh.replace_rows(tables.raw_tables["traffic"], None, pd.DataFrame(rows))
    periods = refresh_periods(wh, tables, dt.date(2026, 2, 28))
    refresh_kpi_values(wh, tables)
    refresh_targets(wh, tables, periods)
    refresh_comparisons(wh, tables)
    refresh_anomalies(wh, tables)

    run = run_alerts(wh, catalog, _notifier(webhook, None), now=_at("2026-03-01"))

    assert sorted(r.firing.event_key for r in run.records) == [
        "sessions/anomaly/2026-02-28",
        "sessions/status_change:month:off_track/2026-02-01",
    ]
    assert all(r.outcome == "sent" for r in run.records)
    texts = sorted(m["json"]["text"].splitlines()[0] for m in webhook.received)
    assert texts == [
        ":red_circle: *Sessions is off track for 2026-02 (previous period: on track)*",
        ":warning: *Sessions: unusual spike on 2026-02-28*",
    ]


def test_dagster_run_of_kpi_alerts(
    duckdb_url: str, webhook: Webhook, smtp: Inbox, monkeypatch: pytest.MonkeyPatch
):
    from assets.kpis.alerts import kpi_alerts
    from assets.settings import catalog

    tables = KpiTables.for_catalog(catalog())
    wh = Warehouse(duckdb_url)
    wh.ensure_tables(tables.all_tables())
    months = [("2026-09", "at_risk", 0.019), ("2026-10", "off_track", 0.017)]
    _put(wh, tables.comparisons, _months(*months, kpi_id="conversion_rate", target=0.02))
    wh.dispose()

    webhook.status = 500
    env = {
        "SLACK_WEBHOOK_URL": webhook.url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
        "SMTP_USER": SMTP_USER,
        "SMTP_PASSWORD": SMTP_PASSWORD,
        "SMTP_FROM": "kpi@example.com",
        "ALERT_EMAIL_TO": "manager@example.com",
        "SMTP_STARTTLS": "off",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    instance = DagsterInstance.ephemeral()

    result = materialize(
        [kpi_alerts],
        resources={"warehouse": WarehouseResource(url=duckdb_url), "notifier": notifier_from_env()},
        instance=instance,
    )

    assert result.success
    (mail,) = smtp.messages
    assert mail["subject"] == (
        "[KPI alert] Conversion rate is off track for 2026-10 (previous period: at risk)"
    )
    assert "Actual: 1.70% vs target 2.00% (85% of target)" in mail["body"]
    assert len(webhook.received) == 1
    (check,) = result.get_asset_check_evaluations()
    assert (check.check_name, check.passed, check.severity.value) == (
        "no_alerts_fired",
        False,
        "WARN",
    )
    assert check.metadata["event_keys"].value == [
        "conversion_rate/status_change:month:off_track/2026-10-01"
    ]
    (materialization,) = result.asset_materializations_for_node("kpi_alerts")
    meta = {k: v.value for k, v in materialization.metadata.items()}
    assert (meta["fired"], meta["failed_channels"], meta["dagster/row_count"]) == (1, 1, 1)
    (failure,) = [r.data for r in materialization.metadata["failures"].records]
    assert failure["channel"] == "slack" and "HTTP 500" in failure["error"]
    # Nothing the run wrote anywhere holds the token or the password.
    logs = instance.all_logs(result.run_id)
    assert any("slack failed: HTTP 500" in (e.user_message or "") for e in logs)
    check_wh = Warehouse(duckdb_url)
    try:
        _assert_no_secret(*(repr(e) for e in logs), _history(check_wh).to_csv())
    finally:
        check_wh.dispose()


# ---------------------------------------------------------------------------------------------
# Failed runs
# ---------------------------------------------------------------------------------------------


def test_failed_run_is_announced_through_the_notifier(webhook):
    from dagster import (
        DagsterEventType,
        DagsterInstance,
        asset,
        build_run_status_sensor_context,
        materialize,
    )

    from pipelines.run_alerts import run_failure_alert_sensor

    @asset
    def broken_asset() -> None:
        raise ValueError("the warehouse said no")

    instance = DagsterInstance.ephemeral()
    result = materialize([broken_asset], instance=instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.RUN_FAILURE)
    context = build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=failure,
    ).for_run_failure()
    run_failure_alert_sensor(context, notifier=NotifierResource(slack_webhook_url=webhook.url))
    assert len(webhook.received) == 1
    text = webhook.received[0]["json"]["text"]
    assert "failed" in text and result.run_id[:8] in text
