"""A failed run is announced on the alert channels (Slack, e-mail) of the notifier."""

from dagster import DefaultSensorStatus, RunFailureSensorContext, run_failure_sensor

from kpi.monitoring.alerts import AlertMessage
from resources.notifier import NotifierResource

CHANNELS = ("slack", "email")


def failure_message(job_name: str, run_id: str, error: str | None) -> AlertMessage:
    """What the on-call data engineer reads: which job, which run, the first error line."""
    first_line = (error or "no error message").strip().splitlines()[0][:300]
    subject = f"[marketing-kpis] run of {job_name} failed"
    text = f"Run {run_id} of {job_name} failed: {first_line}\nOpen the run in the Dagster UI."
    slack = f":rotating_light: *{job_name} failed* (run `{run_id[:8]}`)\n{first_line}"
    return AlertMessage(subject=subject, text=text, slack_text=slack)


@run_failure_sensor(
    name="run_failure_alert_sensor",
    description="Sends a message through the notifier (Slack webhook and/or e-mail) when a "
    "run fails. A failed notification is logged, never raised.",
    default_status=DefaultSensorStatus.RUNNING,
)
def run_failure_alert_sensor(context: RunFailureSensorContext, notifier: NotifierResource):
    error = context.failure_event.message if context.failure_event else None
    message = failure_message(context.dagster_run.job_name, context.dagster_run.run_id, error)
    results = notifier.send(message, CHANNELS)
    for channel, result in results.items():
        detail = f" ({result.error})" if result.error else ""
        context.log.info(f"run failure notice via {channel}: {result.outcome}{detail}")
