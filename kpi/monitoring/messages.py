"""An alert in words: the plain-text message (email) and the Slack mrkdwn of a firing.

KPI, period, actual against target (with the gap the KPI's direction makes better or worse)
and status, shown as every other reader shows them (``kpi.publication.formatting``).
"""

from __future__ import annotations

import datetime as dt

from kpi.language.catalog import Catalog
from kpi.language.models import KpiType, format_duration
from kpi.monitoring.events import AlertMessage, Firing
from kpi.publication.formatting import SLACK_MARK, format_value, status_words
from kpi.status.target_gap import MAX_ATTAINMENT, favourable_gap, gap_text, points


def period_label(grain: str, start: dt.date, end: dt.date) -> str:
    """How a period reads in a message: 2026-10-05, 2026-10, or week 2026-10-05 to ..."""
    if grain == "day":
        return start.isoformat()
    if grain == "month" and start.day == 1:
        return f"{start:%Y-%m}"
    return f"{grain} {start.isoformat()} to {end.isoformat()}"


def _slack_escape(text: str) -> str:
    # Slack reads <...> as links and mentions; names are shown, never interpreted.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_message(firing: Firing, catalog: Catalog) -> AlertMessage:
    """The alert as plain text and as Slack mrkdwn: KPI, period, actual vs target, status."""
    kpi = catalog.kpis[firing.kpi_id]
    rule = firing.rule
    currency = kpi.currency or catalog.reporting.currency

    def fmt(value: float | None) -> str:
        return format_value(value, kpi.unit, currency, kpi.format or None)

    period = period_label(str(rule.period_grain), firing.period_start, firing.period_end)
    status = status_words(firing.status)
    if firing.band is not None:
        target = f"{fmt(firing.band[0])} to {fmt(firing.band[1])}"
    else:
        target = fmt(firing.target)
    vs_target = f"{fmt(firing.actual)} vs target {target}"
    growth = kpi.type == KpiType.period_over_period
    gap = favourable_gap(
        kpi.direction, firing.actual, firing.target, firing.band, firing.variance_favourable
    )
    if growth:
        # A rate of change against a rate target: the gap in points, never a ratio of two
        # small rates (+33% against +1% is not 3,300% of target).
        if gap is not None:
            vs_target += f" ({points(gap)})"
    elif firing.attainment is not None:
        if abs(firing.attainment) > MAX_ATTAINMENT:
            vs_target += " (more than 10 times the target)"
        else:
            vs_target += f" ({firing.attainment:.0%} of target)"
    against = gap_text(gap, kpi.unit, fmt, growth, kpi.direction)

    if rule.rule == "status_change":
        was = status_words(firing.previous_status)
        headline = f"{kpi.name} is {status} for {period} (previous period: {was})"
    elif rule.rule == "consecutive_breaches":
        headline = (
            f"{kpi.name} has been off track for {rule.count} {rule.period_grain}s in a row, "
            f"through {period}"
        )
    else:
        headline = f"{kpi.name}: unusual {firing.anomaly_kind or 'value'} on {period}"

    details = [f"Actual: {vs_target}", f"Status: {status}"]
    if against is not None:
        # Better or worse by the KPI's direction: a CPA above its target is worse.
        details.append(f"Against the target: {against}")
    if rule.rule == "anomaly":
        expected = f"Expected about {fmt(firing.baseline)} for this weekday"
        if firing.z_score is not None:
            expected += f" ({firing.z_score:+.1f} robust standard deviations)"
        details.insert(1, expected)
    footer = [
        f"KPI: {kpi.id} ({kpi.area}), owner {kpi.owner}",
        f"Rule: {rule.label}, cooldown {format_duration(rule.cooldown)}",
    ]
    text = "\n".join([headline, "", *details, "", *footer])

    mark = ":warning:" if rule.rule == "anomaly" else SLACK_MARK.get(firing.status or "", "")
    slack_lines = [
        f"{mark} *{_slack_escape(headline)}*".strip(),
        *(_slack_escape(line) for line in details),
        "_" + _slack_escape(" · ".join(footer)) + "_",
    ]
    return AlertMessage(
        subject=f"[KPI alert] {headline}", text=text, slack_text="\n".join(slack_lines)
    )
