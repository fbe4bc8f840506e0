"""How the published KPIs read: values, percentages, points and statuses, in one place.

Every reader of the KPI tables shows numbers and statuses the same way: the terminal
scorecard (``kpi.publication.scorecard``), the HTML report (``kpi.publication.report``) and
the alert messages (``kpi.monitoring``). What a status *is* lives in
``kpi.language.status``; this module says only how each one is shown.
"""

from __future__ import annotations

import datetime as dt
import math
import re

import pandas as pd

from kpi.language.display_format import render as render_format
from kpi.language.models import Unit
from kpi.language.status import STATUS_ORDER, Status
from kpi.status.target_gap import points

__all__ = [
    "DASH",
    "NO_DATA",
    "NO_HISTORY",
    "SLACK_MARK",
    "STATUS_ICON",
    "STATUS_LABEL",
    "STATUS_MARK",
    "STATUS_ORDER",
    "compact_value",
    "format_value",
    "month_label",
    "number",
    "percent",
    "points",
    "status_label",
    "status_mark",
    "status_words",
    "value_range",
]

DASH = "\u2013"
NO_DATA = "no data"
NO_HISTORY = "no history"

# A report's label of each status (a sentence-case word, with a badge's colour).
STATUS_LABEL: dict[str, str] = {
    Status.on_track: "On track",
    Status.at_risk: "At risk",
    Status.off_track: "Off track",
    Status.insufficient_data: "Insufficient data",
    Status.no_target: "No target",
}
# HTML: a symbol besides the colour, so status reads in greyscale prints and for
# colour-blind readers.
STATUS_ICON: dict[str, str] = {
    Status.on_track: "\u2714",
    Status.at_risk: "\u25b2",
    Status.off_track: "\u2716",
    Status.insufficient_data: "?",
    Status.no_target: "\u2013",
}
# Terminal: no colour, so the bad news shouts.
STATUS_MARK: dict[str, str] = {
    Status.on_track: "on track",
    Status.at_risk: "AT RISK",
    Status.off_track: "OFF TRACK",
    Status.insufficient_data: "insufficient data",
    Status.no_target: "no target",
}
# Slack: a coloured circle before the headline (no mark for the statuses without a verdict).
SLACK_MARK: dict[str, str] = {
    Status.on_track: ":large_green_circle:",
    Status.at_risk: ":large_orange_circle:",
    Status.off_track: ":red_circle:",
}


def status_label(status) -> str:
    """``Off track``: the report's label; an unknown value is shown as stored."""
    return STATUS_LABEL.get(status, str(status))


def status_mark(status) -> str:
    """``OFF TRACK``: the terminal's mark; an unknown value is shown as stored."""
    return STATUS_MARK.get(status, status)


def status_words(status: str | None) -> str:
    """``off track``: a status inside a sentence (an alert); ``unknown`` for none."""
    return STATUS_MARK.get(status, status).lower() if status else "unknown"


def number(value) -> float | None:
    """A float, or None for SQL NULL / NaN / pandas NA: a value that is shown as missing."""
    if value is None or value is pd.NA:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def format_value(
    value: float | None, unit: Unit | str, currency: str = "EUR", fmt: str | None = None
) -> str:
    """A KPI value in its ``format:`` when it declares one (``1.29x``, ``€220,286``), else
    in its unit: ``12.34%``, ``1,234.50 EUR``, ``1,234``, ``95 s``; ``-`` if missing."""
    if value is None or pd.isna(value):
        return "-"
    if fmt:
        return render_format(float(value), fmt)
    unit = Unit(unit)
    if unit == Unit.percent:
        return f"{value * 100:.2f}%"
    if unit == Unit.currency:
        return f"{value:,.2f} {currency}"
    if unit == Unit.count:
        return f"{value:,.0f}"
    if unit == Unit.seconds:
        return f"{value:,.0f} s"
    return f"{value:,.2f}"


def compact_value(value, unit: Unit | str, currency: str, fmt: str | None = None) -> str:
    """``format_value``, but (without a declared ``format:``) an amount of 1,000 or more
    without cents: cents on a five-figure amount are noise to a reader of a monthly report."""
    value = number(value)
    if fmt:
        return format_value(value, unit, currency, fmt)
    if Unit(unit) == Unit.currency and value is not None and abs(value) >= 1000:
        return f"{value:,.0f} {currency}"
    return format_value(value, unit, currency)


def value_range(low, high, unit: Unit | str, currency: str, fmt: str | None = None) -> str:
    """``30,000\u201340,000 EUR``: the unit once, so a band fits a table cell."""
    # Whole numbers lose their zero decimals: "30\u201345%" reads faster than "30.00\u201345.00%".
    lo, hi = (re.sub(r"\.00\b", "", compact_value(v, unit, currency, fmt)) for v in (low, high))
    for suffix in ("%", f" {currency}", " s"):
        if suffix.strip() and lo.endswith(suffix) and hi.endswith(suffix):
            return f"{lo[: -len(suffix)]}\u2013{hi}"
    return f"{lo}\u2013{hi}"


def percent(value, signed: bool = False, digits: int = 1) -> str:
    """A ratio as a percentage (``12.3%``, signed ``+12.3%``); a dash if missing."""
    value = number(value)
    if value is None:
        return DASH
    return f"{value * 100:+.{digits}f}%" if signed else f"{value * 100:.{digits}f}%"


def month_label(day: dt.date, long: bool = False) -> str:
    """``Mar 2026``, or long ``March 2026``."""
    return f"{day:%B %Y}" if long else f"{day:%b %Y}"
