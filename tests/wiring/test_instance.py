"""A real Dagster instance whose run, event and schedule storage is the CI PostgreSQL,
configured by deploy/dagster.yaml exactly as production is."""

from __future__ import annotations

import datetime as dt
import shutil

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from assets.settings import PROJECT_ROOT
from demo.generator import ga4_traffic
from demo.landing import write_demo_landing
from tests.support import fake_ga4, run_pipeline


def test_job_runs_on_a_postgres_backed_instance(postgres_url, duckdb_url, tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    # dagster-postgres speaks psycopg2; SQLAlchemy 2.1 would pick psycopg 3 for postgresql://.
    monkeypatch.setenv(
        "DAGSTER_PG_URL", postgres_url.replace("postgresql+psycopg:", "postgresql+psycopg2:")
    )
    start, end = dt.date(2026, 3, 1), dt.date(2026, 3, 7)
    landing = tmp_path / "landing"
    write_demo_landing(landing, start, end)

    with DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        with fake_ga4(ga4_traffic(start, end)) as server:
            result = run_pipeline(
                duckdb_url, server.endpoint, landing, start, end, instance=instance
            )
        assert result.success

    # A fresh instance on the same database sees the run and its events: they are stored.
    with DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(result.run_id)
        assert run is not None and run.status == DagsterRunStatus.SUCCESS
        assert run.job_name == "marketing_kpis_job"
        assert run.tags["dagster/asset_partition_range_start"] == "2026-03-01"
        records = instance.get_records_for_run(
            result.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
        ).records
        materialized = {r.event_log_entry.dagster_event.asset_key.to_user_string() for r in records}
        assert {"ga4_traffic", "kpi_values", "kpi_comparisons"} <= materialized
        checks = instance.get_records_for_run(
            result.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
        assert len(checks) >= 10  # one quality suite per raw source, and the anomaly check
        # Partitioned materializations are recorded per day of the run's range.
        ga4_days = {
            r.event_log_entry.dagster_event.partition
            for r in records
            if r.event_log_entry.dagster_event.asset_key.to_user_string() == "ga4_traffic"
        }
        assert ga4_days == {f"2026-03-0{d}" for d in range(1, 8)}
