"""KPI alerts: the alert rules of the definitions, evaluated after every refresh."""

import datetime as dt

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    asset,
)
from sqlalchemy import MetaData

from assets.kpis.tables import (
    KPI_FRESHNESS,
    OWNERS,
    catalog_code_version,
    kpi_anomalies,
    kpi_comparisons,
)
from assets.metadata import metadata_table, table_metadata
from assets.settings import catalog, warehouse_kind, warehouse_pool
from kpi.monitoring.alerts import AlertRun, run_alerts
from kpi.warehouse.schema import kpi_alerts_table
from resources.notifier import NotifierResource
from resources.warehouse import WarehouseResource

CHECK = "no_alerts_fired"


def _summary(run: AlertRun, suppressed: bool = False) -> pd.DataFrame:
    records = run.suppressed if suppressed else run.fired
    return pd.DataFrame(
        [
            {
                "kpi_id": r.firing.kpi_id,
                "rule": r.firing.rule.label,
                "period_start": r.firing.period_start,
                "status": r.firing.status,
                "outcome": r.outcome,
                **{channel: res.outcome for channel, res in r.results.items()},
            }
            for r in records
        ]
    )


@asset(
    code_version=catalog_code_version(),
    freshness_policy=KPI_FRESHNESS,
    group_name="kpis",
    owners=OWNERS,
    kinds={"sql", "slack", "email", warehouse_kind()},
    pool=warehouse_pool(),
    deps=[kpi_comparisons, kpi_anomalies],
    check_specs=[
        AssetCheckSpec(
            CHECK,
            asset="kpi_alerts",
            description="Warns when an alert rule of the KPI definitions fired in this run "
            "(a status change, an anomaly, or consecutive breaches); lists them.",
        )
    ],
)
def kpi_alerts(
    context: AssetExecutionContext, warehouse: WarehouseResource, notifier: NotifierResource
) -> MaterializeResult:
    """The alert rules declared in `kpi_definitions/` (status changes, anomalies, breaches in
    a row), evaluated on `kpi_comparisons` and `kpi_anomalies`. New events are sent to Slack
    and by email, once each and not within a rule's cooldown; every attempt is kept in
    `kpi.kpi_alerts`. A channel that fails is logged and recorded, never fails the run."""
    wh = warehouse.warehouse
    metadata = MetaData()
    run = run_alerts(
        wh,
        catalog(),
        notifier,
        now=dt.datetime.now(dt.UTC),
        run_id=context.run.run_id,
        metadata=metadata,
    )
    for problem in run.problems:
        context.log.warning(f"alert rule that cannot fire: {problem}")
    for record, channel, error in run.failures:
        # The error was scrubbed by the notifier: no webhook URL, no password.
        context.log.warning(f"alert {record.firing.event_key}: {channel} failed: {error}")
    for record in run.fired:
        context.log.info(f"alert {record.firing.event_key}: {record.outcome}")

    table = kpi_alerts_table(metadata)
    fired, suppressed = _summary(run), _summary(run, suppressed=True)
    failures = pd.DataFrame(
        [
            {"event_key": r.firing.event_key, "channel": channel, "error": error}
            for r, channel, error in run.failures
        ]
    )
    return MaterializeResult(
        metadata={
            **table_metadata(wh, table, table.c.run_id == context.run.run_id),
            "fired": len(run.fired),
            "suppressed_by_cooldown": len(run.suppressed),
            "failed_channels": len(run.failures),
            "channels_configured": notifier.configured_channels,
            "alerts": metadata_table(fired),
            "suppressed": metadata_table(suppressed),
            "failures": metadata_table(failures),
            "rule_problems": [str(p) for p in run.problems],
        },
        check_results=[
            AssetCheckResult(
                check_name=CHECK,
                passed=not run.fired,
                severity=AssetCheckSeverity.WARN,
                metadata={
                    "fired": len(run.fired),
                    "alerts": metadata_table(fired),
                    "event_keys": [r.firing.event_key for r in run.fired],
                },
            )
        ],
    )
