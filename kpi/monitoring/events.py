"""What an alert is: a rule that fires (``Firing``), its message, what each channel did
with it, and the ``kpi_alerts`` row that records it all (``kpi.monitoring.alerts``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import pandas as pd

from kpi.language.models import AlertRule
from kpi.language.problems import Problem

SENT, FAILED, NO_CHANNEL, SUPPRESSED = "sent", "failed", "no_channel", "suppressed"
DELIVERED, SKIPPED = "delivered", "skipped"
CHANNELS = ("slack", "email")


@dataclass(frozen=True)
class ChannelResult:
    """What one channel did with one alert. ``error`` never holds a secret."""

    outcome: Literal["delivered", "failed", "skipped"]
    error: str | None = None


@dataclass(frozen=True)
class AlertMessage:
    """One alert as plain text (email) and as Slack mrkdwn."""

    subject: str
    text: str
    slack_text: str


class Notifier(Protocol):
    """Delivers a message; must return a result per channel instead of raising."""

    def send(self, message: AlertMessage, channels: Sequence[str]) -> dict[str, ChannelResult]:
        """Send ``message`` on each of ``channels``."""
        ...


@dataclass(frozen=True)
class Firing:
    """An alert rule of a KPI that fires for a period."""

    kpi_id: str
    rule: AlertRule
    period_start: dt.date
    period_end: dt.date
    status: str | None
    actual: float | None
    target: float | None
    attainment: float | None = None
    band: tuple[float, float] | None = None
    previous_status: str | None = None
    anomaly_kind: str | None = None
    baseline: float | None = None
    z_score: float | None = None
    # The gap to the target, positive = better (kpi_comparisons.variance_favourable).
    variance_favourable: float | None = None

    @property
    def event_key(self) -> str:
        """Stable across runs: the same KPI, rule and period is the same event."""
        return f"{self.kpi_id}/{self.rule.label}/{self.period_start.isoformat()}"


@dataclass(frozen=True)
class AlertRecord:
    """A firing after the cooldown and the channels had their say: one kpi_alerts row."""

    firing: Firing
    message: AlertMessage
    fired_at: dt.datetime
    outcome: str
    results: dict[str, ChannelResult] = field(default_factory=dict)

    @property
    def suppressed(self) -> bool:
        return self.outcome == SUPPRESSED

    def as_row(self, run_id: str | None = None) -> dict:
        f = self.firing
        row = {
            "kpi_id": f.kpi_id,
            "rule": f.rule.label,
            "event_key": f.event_key,
            "grain": str(f.rule.period_grain),
            "period_start": f.period_start,
            "period_end": f.period_end,
            "status": f.status,
            "actual": f.actual,
            "target": f.target,
            "message": self.message.text,
            "fired_at": self.fired_at,
            "channels": ",".join(f.rule.channels),
            "delivered": any(r.outcome == DELIVERED for r in self.results.values()),
            "suppressed_by_cooldown": self.suppressed,
            "outcome": self.outcome,
            "run_id": run_id,
        }
        for channel in CHANNELS:
            result = self.results.get(channel)
            row[channel] = result.outcome if result else None
            row[f"{channel}_error"] = result.error if result else None
        return row


@dataclass
class AlertRun:
    """What one evaluation did."""

    records: list[AlertRecord]
    problems: list[Problem]

    @property
    def fired(self) -> list[AlertRecord]:
        """Alerts that went out, or were meant to: everything but the suppressed."""
        return [r for r in self.records if not r.suppressed]

    @property
    def suppressed(self) -> list[AlertRecord]:
        return [r for r in self.records if r.suppressed]

    @property
    def failures(self) -> list[tuple[AlertRecord, str, str]]:
        """(alert, channel, error) for every channel that failed."""
        return [
            (r, channel, result.error or "failed")
            for r in self.records
            for channel, result in r.results.items()
            if result.outcome == FAILED
        ]

    def frame(self, run_id: str | None = None) -> pd.DataFrame:
        return pd.DataFrame([r.as_row(run_id) for r in self.records])
