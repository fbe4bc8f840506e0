"""Landing folders that are missing, unreadable or mistyped (issue 13, items 11 and 23):
a missing folder is an error named before anything is deleted, rows of no partition are
quarantined even when a whole file holds nothing else, and a folder no source declares is
reported with the nearest declared one."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from dagster import build_sensor_context, instance_for_test

from ingest.landing import Landing, LandingUnavailable
from tests.ingest.test_files_loading import (
    AD_HEADER,
    AD_ROWS,
    FIXTURE_DAYS,
    failure_message,
    load,
    query,
    write_landing,
)

D = dt.date


def _counts(url: str) -> tuple[int, int]:
    ((ads,),) = query(url, "select count(*) from raw.ad_spend")
    ((fx,),) = query(url, "select count(*) from raw.fx_rates")
    return ads, fx


def test_missing_landing_root_fails_before_deleting_loaded_rows(warehouse_url, tmp_path):
    root = tmp_path / "landing"
    write_landing(root, {"a.csv": "\n".join([AD_HEADER, *AD_ROWS]) + "\n"})
    assert load(warehouse_url, root, window=FIXTURE_DAYS).success
    assert _counts(warehouse_url) == (3, 3)

    missing = tmp_path / "not_mounted"
    result = load(warehouse_url, missing, window=FIXTURE_DAYS, raise_on_error=False)
    assert not result.success
    message, _ = failure_message(result)  # fx_rates fails; ad_spend, downstream, is skipped
    assert "fx_rates:" in message
    assert str(missing) in message and "LANDING_ROOT" in message
    assert "nothing was loaded or deleted" in message
    assert _counts(warehouse_url) == (3, 3)


def test_missing_source_folder_fails_before_deleting_its_rows(warehouse_url, tmp_path):
    root = tmp_path / "landing"
    write_landing(root, {"a.csv": "\n".join([AD_HEADER, *AD_ROWS]) + "\n"})
    assert load(warehouse_url, root, window=FIXTURE_DAYS).success
    (root / "ad_spend" / "a.csv").unlink()
    (root / "ad_spend").rmdir()

    result = load(warehouse_url, root, window=FIXTURE_DAYS, raise_on_error=False)
    assert not result.success
    message, _ = failure_message(result)
    assert "ad_spend:" in message
    assert str(root / "ad_spend") in message
    assert _counts(warehouse_url) == (3, 3)


def test_an_empty_source_folder_is_no_error(tmp_path):
    (tmp_path / "ad_spend").mkdir()
    Landing(tmp_path).require("ad_spend")  # no files yet: a folder, empty
    with pytest.raises(LandingUnavailable, match="does not exist"):
        Landing(tmp_path / "nope").require()
    with pytest.raises(LandingUnavailable, match="orders"):
        Landing(tmp_path).require("orders")


def _scan(root, state=None):
    from assets.settings import catalog
    from ingest.landing_changes import LandingState, scan_landing

    sources = {n: catalog().sources[n] for n in ("ad_spend", "orders", "survey_answers")}
    return scan_landing(Landing(root), sources, state or LandingState(), "Europe/Copenhagen")


def test_scan_names_a_folder_no_source_declares_and_the_nearest(tmp_path):
    for folder in ("ad_spend", "orders", "survey", "adspend", "misc"):
        (tmp_path / folder).mkdir()
    (tmp_path / "adspend" / "x.csv").write_text(AD_HEADER + "\n" + AD_ROWS[0] + "\n")
    scan = _scan(tmp_path)
    assert scan.changes == []
    typo, other = scan.warnings
    assert typo.startswith("landing folder `adspend/` is declared by no source")
    assert "did you mean `ad_spend/` (source ad_spend)?" in typo
    assert other.startswith("landing folder `misc/`") and "did you mean" not in other


def test_scan_fails_on_a_missing_root_and_warns_on_a_missing_source_folder(tmp_path):
    with pytest.raises(LandingUnavailable, match="LANDING_ROOT"):
        _scan(tmp_path / "not_mounted")
    (tmp_path / "ad_spend").mkdir()
    (tmp_path / "ad_spend" / "a.csv").write_text("\n".join([AD_HEADER, *AD_ROWS]) + "\n")
    (tmp_path / "survey").mkdir()
    first = _scan(tmp_path)
    assert [c.source for c in first.changes] == ["ad_spend"]
    (warning,) = first.warnings
    assert warning.startswith("orders: the folder") and str(tmp_path / "orders") in warning
    # The folder of a source that had files goes missing: its state is kept, not forgotten.
    (tmp_path / "ad_spend" / "a.csv").unlink()
    (tmp_path / "ad_spend").rmdir()
    second = _scan(tmp_path, first.state)
    assert second.state.files["ad_spend"] == first.state.files["ad_spend"]
    assert any(w.startswith("ad_spend: the folder") for w in second.warnings)


def test_sensor_logs_the_typo_at_warn(tmp_path, capfd):
    from pipelines.sensors import landing_files_sensor
    from resources.landing import LandingResource

    for folder in ("ad_spend", "orders", "survey", "fx_rates", "donations"):
        (tmp_path / folder).mkdir()
    for folder in ("volunteer_hours", "operations", "market", "adspend"):
        (tmp_path / folder).mkdir()
    with instance_for_test() as instance:
        context = build_sensor_context(
            instance=instance, resources={"landing": LandingResource(root=str(tmp_path))}
        )
        result = landing_files_sensor(context)
    assert json.loads(result.cursor)["v"] == 1
    _, err = capfd.readouterr()
    assert "WARNING - landing folder `adspend/` is declared by no source" in err
    assert "did you mean `ad_spend/` (source ad_spend)?" in err


def test_a_file_wholly_before_the_first_partition_is_quarantined_by_the_daily_run(
    warehouse_url, tmp_path
):
    from ingest.files.reach import today_in as _today

    root = tmp_path / "landing"
    # Partitions start on 2024-01-01 (KPI_HISTORY_START's default): both rows are before.
    (root / "operations").mkdir(parents=True)
    (root / "operations" / "old.csv").write_text(
        "date,team,output_units,hours_worked\n2023-12-30,a,10,2.5\n2023-12-31,a,12,3.0\n"
    )
    today = _today("Europe/Copenhagen")
    daily = (today - dt.timedelta(days=3), today - dt.timedelta(days=1))
    # The quality check rightly fails a window without rows; the rows are what is tested.
    load(warehouse_url, root, window=daily, raise_on_error=False, names=["operations"])
    rows = query(
        warehouse_url,
        "select _source_line, _partition, _failed_expectations from raw.operations__quarantine "
        "order by _source_line",
    )
    assert [(line, day) for line, day, _ in rows] == [(2, D(2023, 12, 30)), (3, D(2023, 12, 31))]
    assert "2023-12-30 is before the first partition (2024-01-01)" in rows[0][2]
    assert query(warehouse_url, "select count(*) from raw.operations") == [(0,)]
    # Received 2 = loaded 0 + quarantined 2; a run of days in the middle leaves them alone,
    # and the next daily run replaces them, never twice.
    load(
        warehouse_url,
        root,
        window=(D(2025, 3, 1), D(2025, 3, 2)),
        raise_on_error=False,
        names=["operations"],
    )
    load(warehouse_url, root, window=daily, raise_on_error=False, names=["operations"])
    count = "select count(*) from raw.operations__quarantine"
    assert query(warehouse_url, count) == [(2,)]


def test_sensor_warns_about_a_file_wholly_before_the_first_partition(tmp_path, capfd):
    from pipelines.sensors import landing_files_sensor
    from resources.landing import LandingResource

    for folder in ("ad_spend", "orders", "survey", "fx_rates", "donations"):
        (tmp_path / folder).mkdir()
    for folder in ("volunteer_hours", "operations", "market"):
        (tmp_path / folder).mkdir()
    (tmp_path / "operations" / "old.csv").write_text(
        "date,team,output_units,hours_worked\n2023-12-30,a,10,2.5\n"
    )
    with instance_for_test() as instance:
        context = build_sensor_context(
            instance=instance, resources={"landing": LandingResource(root=str(tmp_path))}
        )
        result = landing_files_sensor(context)
    assert not result.run_requests
    _, err = capfd.readouterr()
    assert "WARNING - operations:" in err
    assert "holds only days before the first partition (2024-01-01)" in err
