"""The GA4 load without Dagster (``ingest.ga4.loading``): pulled from the fake Data API over
gRPC with the official client, written to a real DuckDB file. The Dagster asset around it is
tested in ``test_ga4_assets.py``."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from demo.fake_ga4 import FakeGA4Server
from ingest.ga4.client import make_client
from ingest.ga4.loading import GA4LoadError, load_report
from ingest.ga4.pull import Bucket, BucketResult, pull_buckets
from ingest.ga4.reports import load_reports, table_declarations
from ingest.ga4.retry import RetryPolicy
from ingest.ga4.spec import ReportSpec
from kpi.language.catalog import DEFAULT_DEFINITIONS_DIR
from kpi.language.loader import load_catalog
from kpi.warehouse.connection import Warehouse
from tests.wiring.test_ga4_assets import DAYS, _day_sessions, _prop

CATALOG = load_catalog(DEFAULT_DEFINITIONS_DIR)
REPORT = load_reports(
    DEFAULT_DEFINITIONS_DIR / "ga4" / "reports.yaml",
    table_declarations(CATALOG),
    week_start=CATALOG.reporting.week_start,
)["traffic"]


@dataclass
class Puller:
    """What the GA4 resource does, without Dagster: the official client against ``endpoint``."""

    endpoint: str
    property_ids: Sequence[str]

    def pull(
        self, property_id: str, spec: ReportSpec, buckets: Sequence[Bucket]
    ) -> Iterator[list[BucketResult]]:
        client = make_client(self.endpoint)
        retry = RetryPolicy(max_attempts=1, initial_backoff_s=0.0, jitter=False)
        return pull_buckets(client, property_id, spec, buckets, retry=retry)


def _load(
    url: str,
    server: FakeGA4Server,
    properties: Sequence[str],
    log: logging.Logger,
    **options: Any,
):
    wh = Warehouse(url)
    try:
        return load_report(
            wh,
            Puller(server.endpoint, properties),
            REPORT,
            CATALOG.sources[REPORT.source],
            DAYS[0],
            DAYS[1],
            run_id="run-1",
            time_zone=CATALOG.reporting.time_zone,
            log=log,
            **options,
        ), wh.read(sa.text("select property_id, date, sessions from raw.ga4_traffic"))
    finally:
        wh.dispose()


def test_a_load_writes_its_rows_and_counts_them(
    duckdb_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    log = logging.getLogger("test_ga4_loading")
    caplog.set_level(logging.INFO, logger=log.name)
    with FakeGA4Server([_prop("111")]) as server:
        load, raw = _load(duckdb_url, server, ["111"], log)
    assert [b.key for b in load.buckets] == DAYS[:2]
    assert load.conservation.received == load.conservation.loaded == 12
    assert load.log["status"].tolist() == ["loaded", "loaded"]
    by_day = raw.groupby("date")["sessions"].sum().to_dict()
    assert by_day == {DAYS[0]: _day_sessions(1), DAYS[1]: _day_sessions(2)}
    # Messages go to the logger passed in.
    assert "GA4 property 111: 12 rows of report traffic" in caplog.text


def test_the_suites_folder_is_the_argument(
    duckdb_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows are split with the suite of the folder passed in (#16), not with one the
    environment names: here a suite quarantining every row, while KPI_DEFINITIONS_DIR points
    at a folder that does not exist."""
    suites = tmp_path / "suites"
    shutil.copytree(DEFAULT_DEFINITIONS_DIR / "quality", suites)
    suite = suites / "ga4_traffic.yaml"
    shipped = "{type: between, column: sessions, min: 0}"
    assert shipped in suite.read_text()
    suite.write_text(
        suite.read_text().replace(shipped, "{type: between, column: sessions, min: 1000000}")
    )
    monkeypatch.setenv("KPI_DEFINITIONS_DIR", str(tmp_path / "no-such-definitions"))
    with FakeGA4Server([_prop("111")]) as server:
        load, raw = _load(
            duckdb_url, server, ["111"], logging.getLogger("test_ga4_loading"), suites=suites
        )
    assert (load.conservation.received, load.conservation.loaded) == (12, 0)
    assert load.conservation.quarantined == 12 and raw.empty


def test_a_failing_property_raises_a_load_error_after_the_others_load(duckdb_url: str) -> None:
    with FakeGA4Server([_prop("111"), _prop("222")]) as server:
        server.inject_faults(grpc.StatusCode.PERMISSION_DENIED)  # the first call: property 111
        with pytest.raises(GA4LoadError) as info:
            _load(duckdb_url, server, ["111", "222"], logging.getLogger("test_ga4_loading"))
    error = info.value
    assert "failed for 1 of 2 properties" in error.description and str(error) == error.description
    assert "- property 111:" in error.description
    assert "The other properties were loaded." in error.description
    assert error.run_id == "run-1" and set(error.failures) == {"111"}
    assert sorted(zip(error.log["property_id"], error.log["status"], strict=True)) == [
        ("111", "failed"),
        ("111", "failed"),
        ("222", "loaded"),
        ("222", "loaded"),
    ]
    wh = Warehouse(duckdb_url)
    try:
        loaded = wh.read(sa.text("select distinct property_id from raw.ga4_traffic"))
        logged = wh.read(sa.text("select count(*) n from raw.ga4_load_log"))
    finally:
        wh.dispose()
    assert loaded["property_id"].tolist() == ["222"]
    assert logged["n"].iloc[0] == 4  # the load log is written before the error is raised
