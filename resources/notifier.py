"""The notifier resource: KPI alerts to a Slack incoming webhook and by email over SMTP.

A channel that is not configured is skipped and reported as skipped. A channel that fails
(HTTP error, connection refused, SMTP error, timeout) is reported as failed with an error
text; nothing here raises, so a broken webhook never fails the pipeline. The webhook URL
carries its token in the path and the SMTP password is a password: both are read with
``EnvVar`` and removed from every error text before it leaves this module.
"""

from __future__ import annotations

import json
import os
import re
import smtplib
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from email.message import EmailMessage

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from kpi.monitoring.alerts import DELIVERED, FAILED, SKIPPED, AlertMessage, ChannelResult

MAX_ERROR_CHARS = 300
_FALSE = {"0", "false", "no", "off"}


class NotifierResource(ConfigurableResource):
    """Where KPI alerts go: a Slack incoming webhook and/or an SMTP server.

    Read from ``SLACK_WEBHOOK_URL`` (secret), ``SMTP_HOST``, ``SMTP_PORT``, ``SMTP_USER``,
    ``SMTP_PASSWORD`` (secret), ``SMTP_FROM``, ``ALERT_EMAIL_TO`` (comma-separated) and
    ``SMTP_STARTTLS`` by ``notifier_from_env``.
    """

    slack_webhook_url: str | None = Field(
        default=None,
        description="SLACK_WEBHOOK_URL: Slack incoming-webhook URL (secret: the token "
        "is in it); unset: no Slack alerts",
    )
    smtp_host: str | None = Field(
        default=None, description="SMTP_HOST: SMTP server host; unset: no e-mail alerts"
    )
    smtp_port: int = Field(default=587, description="SMTP_PORT: SMTP server port")
    smtp_user: str | None = Field(
        default=None, description="SMTP_USER: SMTP login; unset: no login"
    )
    smtp_password: str | None = Field(
        default=None, description="SMTP_PASSWORD: SMTP password (secret)"
    )
    smtp_from: str | None = Field(default=None, description="SMTP_FROM: sender address")
    email_to: str | None = Field(
        default=None, description="ALERT_EMAIL_TO: recipients, comma-separated"
    )
    smtp_starttls: bool = Field(
        default=True, description="SMTP_STARTTLS: upgrade the connection with STARTTLS"
    )
    timeout_seconds: float = Field(
        default=10.0, gt=0, description="per network operation; a slow channel must not stall"
    )

    def missing(self, channel: str) -> list[str]:
        """The settings a channel still needs; empty when it is configured."""
        if channel == "slack":
            return [] if self.slack_webhook_url else ["SLACK_WEBHOOK_URL"]
        if channel == "email":
            needed = {
                "SMTP_HOST": self.smtp_host,
                "SMTP_FROM": self.smtp_from,
                "ALERT_EMAIL_TO": self._recipients(),
            }
            return [name for name, value in needed.items() if not value]
        return [f"unknown channel {channel}"]

    @property
    def configured_channels(self) -> list[str]:
        return [c for c in ("slack", "email") if not self.missing(c)]

    def send(self, message: AlertMessage, channels: Sequence[str]) -> dict[str, ChannelResult]:
        """Send ``message`` on each channel; never raises, whatever the network does."""
        results = {}
        for channel in channels:
            missing = self.missing(channel)
            if missing:
                results[channel] = ChannelResult(SKIPPED, f"not configured: {', '.join(missing)}")
                continue
            try:
                if channel == "slack":
                    self._post_to_slack(message)
                else:
                    self._send_email(message)
                results[channel] = ChannelResult(DELIVERED)
            except Exception as exc:
                results[channel] = ChannelResult(FAILED, self.scrub(_describe(exc)))
        return results

    def scrub(self, text: str) -> str:
        """``text`` with the webhook URL (and its token) and the SMTP password removed."""
        for secret in self._secrets():
            text = text.replace(secret, "***")
        return text[:MAX_ERROR_CHARS]

    # -- channels -----------------------------------------------------------------------------

    def _post_to_slack(self, message: AlertMessage) -> None:
        url = self.slack_webhook_url or ""
        if urllib.parse.urlsplit(url).scheme not in ("https", "http"):
            # urllib would also open file: and ftp: URLs; a webhook is HTTP(S) only.
            raise ValueError("SLACK_WEBHOOK_URL is not an http(s) URL")
        body = json.dumps({"text": message.slack_text, "mrkdwn": True}).encode()
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
            response.read(1000)

    def _send_email(self, message: AlertMessage) -> None:
        recipients = self._recipients()
        email = EmailMessage()
        # A header with a line break would be refused (or worse, split): keep it on one line.
        email["Subject"] = " ".join(message.subject.split())
        email["From"] = self.smtp_from
        email["To"] = ", ".join(recipients)
        email.set_content(message.text)
        with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout_seconds) as smtp:
            if self.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.smtp_user:
                smtp.login(self.smtp_user, self.smtp_password or "")
            smtp.send_message(email, from_addr=self.smtp_from, to_addrs=recipients)

    def _recipients(self) -> list[str]:
        return [a.strip() for a in (self.email_to or "").split(",") if a.strip()]

    def _secrets(self) -> list[str]:
        secrets: set[str] = set()
        if self.slack_webhook_url:
            url = urllib.parse.urlsplit(self.slack_webhook_url)
            secrets |= {self.slack_webhook_url, url.path, url.query, url.password or ""}
            # The token segments alone (T…/B…/secret), in case an error quotes one of them.
            secrets |= {s for s in url.path.split("/") if len(s) >= 6 and re.search(r"\d", s)}
        if self.smtp_password:
            secrets.add(self.smtp_password)
        variants = set()
        for secret in secrets - {"", "/"}:
            variants |= {secret, urllib.parse.quote(secret), urllib.parse.quote(secret, safe="")}
        # Longest first, so a URL is replaced whole before its parts are.
        return sorted(variants, key=len, reverse=True)


def _describe(exc: Exception) -> str:
    """A one-line reason for a failed send (secrets are scrubbed by the caller)."""
    if isinstance(exc, urllib.error.HTTPError):
        try:
            body = exc.read(MAX_ERROR_CHARS).decode("utf-8", "replace").strip()
        except Exception:
            body = ""
        return f"HTTP {exc.code} {exc.reason}" + (f": {body}" if body else "")
    if isinstance(exc, urllib.error.URLError):
        return f"connection failed: {exc.reason}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


def notifier_from_env() -> NotifierResource:
    """The notifier, with each setting read by ``EnvVar`` when its variable is set.

    Unset variables leave their channel unconfigured (skipped), so the pipeline runs the
    same without any of them.
    """

    def env(name: str) -> EnvVar | None:
        return EnvVar(name) if os.environ.get(name) else None

    return NotifierResource(
        slack_webhook_url=env("SLACK_WEBHOOK_URL"),
        smtp_host=env("SMTP_HOST"),
        smtp_port=EnvVar.int("SMTP_PORT") if os.environ.get("SMTP_PORT") else 587,
        smtp_user=env("SMTP_USER"),
        smtp_password=env("SMTP_PASSWORD"),
        smtp_from=env("SMTP_FROM"),
        email_to=env("ALERT_EMAIL_TO"),
        smtp_starttls=os.environ.get("SMTP_STARTTLS", "true").strip().lower() not in _FALSE,
    )
