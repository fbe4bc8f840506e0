"""KPI alerts: which alert rules of the definitions fire now, and their history.

Rules are declared per KPI under ``alerts:`` (``kpi.language.models.AlertRule``) and read the tables
the refresh wrote, total rows only:

- ``status_change``: the latest complete period at the rule's grain has status ``to``
  (default off_track) and the period just before it did not. A first period, with nothing
  before it, is not a change.
- ``anomaly``: a day flagged in ``kpi_anomalies`` within the last ``ANOMALY_LOOKBACK_DAYS``
  days of data. Older flags are history, not news: a first run on a warehouse with a year
  of anomalies must not send a year of alerts.
- ``consecutive_breaches``: the last ``count`` complete periods at the grain are all
  off_track. at_risk does not count: the KPI's thresholds declare at_risk as the tolerated
  shortfall, and counting it would page people for every day just under target. While the
  streak goes on, each new period is a new event, so the cooldown paces the reminders.

Every firing is an event keyed by KPI, rule and period. An event is sent once: a later
evaluation that finds its key in ``kpi.kpi_alerts`` skips it, unless every channel failed
(then it is tried again on the next evaluation, for as long as it still fires). The
cooldown holds back a new event of the same KPI and rule within ``cooldown`` of the last
alert sent; it is recorded as suppressed and never sent later. A notification that fails
never raises: it is logged and recorded, and the run goes on. No Dagster here: the
``kpi_alerts`` asset wires this to the notifier resource.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from kpi.compute.periods import as_date
from kpi.language.catalog import Catalog
from kpi.language.models import AlertRule, Grain, Kpi
from kpi.language.rules.alerts import alert_problems
from kpi.language.status import Status
from kpi.monitoring.events import (
    CHANNELS,
    DELIVERED,
    FAILED,
    NO_CHANNEL,
    SENT,
    SKIPPED,
    SUPPRESSED,
    AlertMessage,
    AlertRecord,
    AlertRun,
    ChannelResult,
    Firing,
    Notifier,
)
from kpi.monitoring.messages import period_label, render_message
from kpi.publication.queries import totals_with_targets
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.schema import (
    kpi_alerts_table,
    kpi_anomalies_table,
    kpi_comparisons_table,
    kpi_targets_table,
)

log = logging.getLogger(__name__)

# The names other modules import from here: the alert types live in kpi.monitoring.events,
# the messages in kpi.monitoring.messages.
__all__ = [
    "ANOMALY_LOOKBACK_DAYS",
    "CHANNELS",
    "DELIVERED",
    "FAILED",
    "NO_CHANNEL",
    "SENT",
    "SKIPPED",
    "SUPPRESSED",
    "AlertMessage",
    "AlertRecord",
    "AlertRun",
    "ChannelResult",
    "Firing",
    "Notifier",
    "evaluate",
    "period_label",
    "render_message",
    "run_alerts",
]

ANOMALY_LOOKBACK_DAYS = 3  # GA4 revises the last 48 hours: a flag can appear a day late


# ---------------------------------------------------------------------------------------------
# Which rules fire
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Period:
    period_start: dt.date
    period_end: dt.date
    status: str
    actual: float | None
    target: float | None
    attainment: float | None
    band: tuple[float, float] | None
    variance_favourable: float | None = None


def evaluate(wh: Warehouse, catalog: Catalog, metadata: sa.MetaData | None = None) -> list[Firing]:
    """Every alert rule of the catalog that fires on the tables as they are now."""
    metadata = metadata if metadata is not None else sa.MetaData()
    firings: list[Firing] = []
    rules = [(kpi, rule) for kpi in catalog.kpis.values() for rule in kpi.alerts]
    by_grain: dict[Grain, list[tuple[Kpi, AlertRule]]] = {}
    for kpi, rule in rules:
        if rule.rule != "anomaly":
            by_grain.setdefault(rule.period_grain, []).append((kpi, rule))
    for grain, grain_rules in by_grain.items():
        depth = max(rule.count or 2 for _, rule in grain_rules)
        kpi_ids = sorted({kpi.id for kpi, _ in grain_rules})
        periods = _latest_periods(wh, catalog, metadata, grain, kpi_ids, depth)
        for kpi, rule in grain_rules:
            latest = periods.get(kpi.id, [])
            if rule.rule == "status_change":
                firings.extend(_status_change(kpi, rule, latest))
            else:
                firings.extend(_consecutive_breaches(kpi, rule, latest))
    anomaly_rules = [(kpi, rule) for kpi, rule in rules if rule.rule == "anomaly"]
    if anomaly_rules:
        firings.extend(_anomalies(wh, catalog, metadata, anomaly_rules))
    return firings


def _totals(table: sa.Table, catalog: Catalog) -> list:
    return [table.c[d].is_(None) for d in catalog.dimensions]


def _latest_periods(
    wh: Warehouse,
    catalog: Catalog,
    metadata: sa.MetaData,
    grain: Grain,
    kpi_ids: list[str],
    depth: int,
) -> dict[str, list[_Period]]:
    """The last ``depth`` complete periods of each KPI at ``grain``, newest first."""
    c = kpi_comparisons_table(metadata, catalog.dimensions)
    t = kpi_targets_table(metadata)
    # One scan per grain, however many KPIs have rules: the comparisons table holds every
    # slice of every period, and only the few latest totals matter.
    recency = sa.func.row_number().over(partition_by=c.c.kpi_id, order_by=c.c.period_start.desc())
    ranked = (
        totals_with_targets(
            c,
            t,
            catalog.dimensions,
            str(grain),
            c.c.kpi_id,
            c.c.period_start,
            c.c.period_end,
            c.c.status,
            c.c.actual,
            c.c.target,
            c.c.attainment,
            c.c.variance_favourable,
        )
        .add_columns(recency.label("recency"))
        .where(c.c.is_complete_period.is_(True), c.c.kpi_id.in_(kpi_ids))
        .subquery()
    )
    frame = wh.read(sa.select(ranked).where(ranked.c.recency <= depth))
    out: dict[str, list[_Period]] = {}
    for row in frame.sort_values(["kpi_id", "recency"]).itertuples():
        band = None
        if pd.notna(row.band_min) and pd.notna(row.band_max):
            band = (float(row.band_min), float(row.band_max))
        out.setdefault(row.kpi_id, []).append(
            _Period(
                period_start=as_date(row.period_start),
                period_end=as_date(row.period_end),
                status=row.status,
                actual=_number(row.actual),
                target=_number(row.target),
                attainment=_number(row.attainment),
                band=band,
                variance_favourable=_number(row.variance_favourable),
            )
        )
    return out


def _contiguous(periods: list[_Period]) -> bool:
    """Newest-first periods that follow one another with no period missing."""
    return all(
        newer.period_start == older.period_end + dt.timedelta(days=1)
        for newer, older in itertools.pairwise(periods)
    )


def _firing(kpi: Kpi, rule: AlertRule, p: _Period, **extra) -> Firing:
    return Firing(
        kpi_id=kpi.id,
        rule=rule,
        period_start=p.period_start,
        period_end=p.period_end,
        status=p.status,
        actual=p.actual,
        target=p.target,
        attainment=p.attainment,
        band=p.band,
        variance_favourable=p.variance_favourable,
        **extra,
    )


def _status_change(kpi: Kpi, rule: AlertRule, latest: list[_Period]) -> list[Firing]:
    if len(latest) < 2 or not _contiguous(latest[:2]):
        return []
    now, before = latest[0], latest[1]
    if now.status == rule.to_status and before.status != rule.to_status:
        return [_firing(kpi, rule, now, previous_status=before.status)]
    return []


def _consecutive_breaches(kpi: Kpi, rule: AlertRule, latest: list[_Period]) -> list[Firing]:
    streak = latest[: rule.count]
    if len(streak) < (rule.count or 0) or not _contiguous(streak):
        return []
    if all(p.status == Status.off_track for p in streak):
        return [_firing(kpi, rule, streak[0])]
    return []


def _anomalies(
    wh: Warehouse,
    catalog: Catalog,
    metadata: sa.MetaData,
    rules: list[tuple[Kpi, AlertRule]],
) -> list[Firing]:
    a = kpi_anomalies_table(metadata)
    c = kpi_comparisons_table(metadata, catalog.dimensions)
    last_day = wh.scalar(sa.select(sa.func.max(a.c.period_start)))
    if last_day is None:
        return []
    since = as_date(last_day) - dt.timedelta(days=ANOMALY_LOOKBACK_DAYS - 1)
    day_total = sa.and_(
        c.c.kpi_id == a.c.kpi_id,
        c.c.grain == "day",
        c.c.period_start == a.c.period_start,
        *_totals(c, catalog),
    )
    frame = wh.read(
        sa.select(
            a.c.kpi_id,
            a.c.period_start,
            a.c.value,
            a.c.baseline,
            a.c.z_score,
            a.c.kind,
            c.c.status,
            c.c.target,
            c.c.attainment,
            c.c.variance_favourable,
        )
        .select_from(a.outerjoin(c, day_total))
        .where(
            a.c.is_anomaly.is_(True),
            a.c.period_start >= since,
            a.c.kpi_id.in_(sorted({kpi.id for kpi, _ in rules})),
        )
    )
    firings = []
    for kpi, rule in rules:
        for row in frame[frame["kpi_id"] == kpi.id].itertuples():
            day = as_date(row.period_start)
            firings.append(
                Firing(
                    kpi_id=kpi.id,
                    rule=rule,
                    period_start=day,
                    period_end=day,
                    status=row.status if isinstance(row.status, str) else None,
                    actual=_number(row.value),
                    target=_number(row.target),
                    attainment=_number(row.attainment),
                    anomaly_kind=row.kind if isinstance(row.kind, str) else None,
                    baseline=_number(row.baseline),
                    z_score=_number(row.z_score),
                    variance_favourable=_number(row.variance_favourable),
                )
            )
    return firings


def _number(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


# ---------------------------------------------------------------------------------------------
# Sending and recording
# ---------------------------------------------------------------------------------------------


def run_alerts(
    wh: Warehouse,
    catalog: Catalog,
    notifier: Notifier,
    now: dt.datetime | None = None,
    run_id: str | None = None,
    metadata: sa.MetaData | None = None,
) -> AlertRun:
    """Evaluate every rule, send what is new and out of cooldown, record every attempt."""
    now = _aware(now or dt.datetime.now(dt.UTC))
    metadata = metadata if metadata is not None else sa.MetaData()
    table = kpi_alerts_table(metadata)
    wh.ensure_tables([table])
    problems = alert_problems(catalog)
    firings = evaluate(wh, catalog, metadata)
    done, last_sent = _history(wh, table, firings)

    groups: dict[tuple[str, str], list[Firing]] = {}
    for firing in firings:
        groups.setdefault((firing.kpi_id, firing.rule.label), []).append(firing)

    records: list[AlertRecord] = []
    for key, group in groups.items():
        last = last_sent.get(key)
        # Newest first: when several days are new at once, the cooldown keeps the latest.
        for firing in sorted(group, key=lambda f: f.period_start, reverse=True):
            if firing.event_key in done:
                continue
            message = render_message(firing, catalog)
            if last is not None and now - last < firing.rule.cooldown:
                record = AlertRecord(firing, message, now, SUPPRESSED)
            else:
                results = _deliver(notifier, message, firing.rule.channels)
                record = AlertRecord(firing, message, now, _outcome(results), results)
                if record.outcome != FAILED:
                    last = now
            # Recorded at once, alert by alert: a crash later in the run must not lead to
            # sending this one again.
            wh.replace_rows(table, sa.false(), pd.DataFrame([record.as_row(run_id)]))
            _log(record)
            records.append(record)
    return AlertRun(records, problems)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _history(
    wh: Warehouse, table: sa.Table, firings: list[Firing]
) -> tuple[set[str], dict[tuple[str, str], dt.datetime]]:
    """Event keys already dealt with, and when each (KPI, rule) last sent an alert."""
    if not firings:
        return set(), {}
    keys = sorted({f.event_key for f in firings})
    done = wh.read(
        sa.select(table.c.event_key)
        .where(table.c.event_key.in_(keys), table.c.outcome != FAILED)
        .distinct()
    )
    last = wh.read(
        sa.select(table.c.kpi_id, table.c.rule, sa.func.max(table.c.fired_at).label("fired_at"))
        .where(
            table.c.kpi_id.in_(sorted({f.kpi_id for f in firings})),
            table.c.outcome.in_([SENT, NO_CHANNEL]),
        )
        .group_by(table.c.kpi_id, table.c.rule)
    )
    last_sent = {
        (row.kpi_id, row.rule): _aware(pd.Timestamp(row.fired_at).to_pydatetime())
        for row in last.itertuples()
    }
    return set(done["event_key"]), last_sent


def _deliver(
    notifier: Notifier, message: AlertMessage, channels: Sequence[str]
) -> dict[str, ChannelResult]:
    try:
        return dict(notifier.send(message, channels))
    except Exception as exc:
        # A notifier must not raise; if one does, the run still goes on. Only the type is
        # kept: the exception's text might quote a webhook URL or a password.
        error = f"notifier raised {type(exc).__name__}"
        return {channel: ChannelResult(FAILED, error) for channel in channels}


def _outcome(results: dict[str, ChannelResult]) -> str:
    outcomes = {r.outcome for r in results.values()}
    if DELIVERED in outcomes:
        return SENT
    if FAILED in outcomes:
        return FAILED
    return NO_CHANNEL


def _log(record: AlertRecord) -> None:
    key = record.firing.event_key
    if record.suppressed:
        log.info("alert %s suppressed by cooldown", key)
        return
    for channel, result in record.results.items():
        if result.outcome == FAILED:
            log.warning("alert %s: %s failed: %s", key, channel, result.error)
    log.info("alert %s: %s", key, record.outcome)
