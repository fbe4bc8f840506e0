"""The landing sensor, evaluated with a real ephemeral Dagster instance on real folders
(a local path and ``memory://``): one run per contiguous range of new days, nothing twice."""

from __future__ import annotations

import datetime as dt
import os
import uuid
import warnings
from pathlib import Path

import fsspec
import pytest
from dagster import DagsterInstance, Definitions, SensorResult, build_sensor_context

from assets.partitions import daily_partitions
from ingest.landing_changes import Change, LandingState, contiguous_ranges
from pipelines import definitions
from pipelines.sensors import landing_files_sensor
from resources.landing import LandingResource
from resources.settings import settings

D = dt.date
START = "dagster/asset_partition_range_start"
END = "dagster/asset_partition_range_end"
AD_HEADER = "date,platform,channel,campaign,impressions,clicks,cost,currency"
ORDERS_HEADER = (
    "order_id,ordered_at,customer_id,channel,revenue,cost_of_goods,currency,is_new_customer"
)


def ad_csv(*days: str, campaign: str = "brand", cost: str = "10.00") -> str:
    rows = [f"{d},meta,social,{campaign},10,1,{cost},EUR" for d in days]
    return "\n".join([AD_HEADER, *rows]) + "\n"


@pytest.fixture
def instance():
    with DagsterInstance.ephemeral() as inst:
        yield inst


def evaluate(instance: DagsterInstance, root: str | Path, cursor: str | None) -> SensorResult:
    context = build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"landing": LandingResource(root=str(root))},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return landing_files_sensor(context)


def ranges(result: SensorResult) -> list[tuple[str, str]]:
    return [(r.tags[START], r.tags[END]) for r in result.run_requests or []]


def test_one_run_per_contiguous_range_and_nothing_the_second_time(instance, tmp_path):
    root = tmp_path / "landing"
    (root / "ad_spend").mkdir(parents=True)
    (root / "orders").mkdir()
    (root / "ad_spend" / "a.csv").write_text(ad_csv("2026-01-05", "2026-01-06"))
    (root / "ad_spend" / "b.csv").write_text(ad_csv("2026-01-07", campaign="other"))  # adjacent
    # 23:30 UTC on Jan 19 is Jan 20 in Copenhagen, the reporting zone of the partitions.
    (root / "orders" / "o.csv").write_text(
        f"{ORDERS_HEADER}\nA1,2026-01-19T23:30:00+00:00,c1,Direct,10.00,4.00,EUR,true\n"
    )
    (root / "ad_spend" / "empty.csv").write_text("")

    first = evaluate(instance, root, None)
    assert ranges(first) == [("2026-01-05", "2026-01-07"), ("2026-01-20", "2026-01-20")]
    keys = [r.run_key for r in first.run_requests]
    assert len(set(keys)) == 2 and all(k.startswith("landing-2026-01-") for k in keys)
    for request in first.run_requests:
        assert daily_partitions.has_partition_key(request.tags[START])
        assert daily_partitions.has_partition_key(request.tags[END])

    # The cursor survives a restart: a new evaluation from it requests nothing.
    second = evaluate(instance, root, first.cursor)
    assert second.run_requests == []
    assert second.skip_reason.skip_message == "no new or changed landing files"
    assert second.cursor == first.cursor

    # Lost cursor: the same files give the same run keys, which Dagster runs only once.
    again = evaluate(instance, root, None)
    assert [r.run_key for r in again.run_requests] == keys


def test_copies_and_touches_are_ignored_changed_files_trigger_again(instance, tmp_path):
    root = tmp_path / "landing"
    folder = root / "ad_spend"
    folder.mkdir(parents=True)
    (folder / "a.csv").write_text(ad_csv("2026-01-10", "2026-01-11"))
    cursor = evaluate(instance, root, None).cursor

    (folder / "a_copy.csv").write_bytes((folder / "a.csv").read_bytes())
    os.utime(folder / "a.csv", (2_000_000_000, 2_000_000_000))  # touched, same bytes
    result = evaluate(instance, root, cursor)
    assert result.run_requests == []
    cursor = result.cursor

    # A corrected file under the same name: its new days and the days of its old version.
    (folder / "a.csv").write_text(ad_csv("2026-01-11", "2026-01-12", cost="12.00"))
    changed = evaluate(instance, root, cursor)
    assert ranges(changed) == [("2026-01-10", "2026-01-12")]
    assert evaluate(instance, root, changed.cursor).run_requests == []


def test_memory_landing_bad_files_and_days_without_partitions(instance):
    root = f"memory://sensor-{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    base = "/" + root.removeprefix("memory://")
    yesterday = dt.date.fromisoformat(daily_partitions.get_last_partition_key())
    today = yesterday + dt.timedelta(days=1)
    try:
        # A file with a bad value still triggers: the run fails and lists the problem.
        fs.pipe(f"{base}/ad_spend/bad.csv", ad_csv("2026-02-01", cost="ten").encode())
        # Rows for today and yesterday: only yesterday has a partition yet.
        fs.pipe(f"{base}/ad_spend/recent.csv", ad_csv(str(yesterday), str(today)).encode())
        # No valid date at all: nothing to run, and it is not looked at again.
        fs.pipe(f"{base}/ad_spend/undated.csv", ad_csv("someday").encode())
        result = evaluate(instance, root, None)
        assert ranges(result) == [
            ("2026-02-01", "2026-02-01"),
            (yesterday.isoformat(), yesterday.isoformat()),
        ]
        state = LandingState.from_json(result.cursor)
        assert sorted(Path(p).name for p in state.files["ad_spend"]) == [
            "bad.csv",
            "recent.csv",
            "undated.csv",
        ]
        assert evaluate(instance, root, result.cursor).run_requests == []

        # Overwritten in memory (the filesystem reports a new time): triggers again.
        fs.pipe(f"{base}/ad_spend/bad.csv", ad_csv("2026-02-01", cost="10.00").encode())
        assert ranges(evaluate(instance, root, result.cursor)) == [("2026-02-01", "2026-02-01")]
    finally:
        fs.rm(base, recursive=True)


def test_an_unreadable_listing_does_not_forget_the_files(instance, tmp_path):
    root = tmp_path / "landing"
    (root / "ad_spend").mkdir(parents=True)
    (root / "ad_spend" / "a.csv").write_text(ad_csv("2026-01-10"))
    cursor = evaluate(instance, root, None).cursor
    (root / "ad_spend").rename(tmp_path / "away")  # an unmounted or unreachable folder
    assert evaluate(instance, root, cursor).cursor == cursor
    (tmp_path / "away").rename(root / "ad_spend")
    assert evaluate(instance, root, cursor).run_requests == []


def test_ranges_merge_overlaps_and_neighbours_and_clip():
    def change(first: dt.date, last: dt.date, sha: str) -> Change:
        return Change("ad_spend", f"f{sha}.csv", sha, first, last, "new")

    merged = contiguous_ranges(
        [
            change(D(2026, 1, 5), D(2026, 1, 9), "b"),
            change(D(2026, 1, 1), D(2026, 1, 4), "a"),  # next to the one above
            change(D(2026, 1, 20), D(2026, 2, 5), "c"),  # clipped at the end
            change(D(2023, 12, 1), D(2023, 12, 31), "d"),  # before the first partition
        ],
        D(2024, 1, 1),
        D(2026, 1, 31),
    )
    assert [(r.first, r.last, r.sha256s) for r in merged] == [
        (D(2026, 1, 1), D(2026, 1, 9), ("a", "b")),
        (D(2026, 1, 20), D(2026, 1, 31), ("c",)),
    ]
    # The run key depends on the files, not on their order.
    swapped = contiguous_ranges(
        [change(D(2026, 1, 1), D(2026, 1, 9), "b"), change(D(2026, 1, 1), D(2026, 1, 9), "a")],
        D(2024, 1, 1),
        D(2026, 1, 31),
    )
    assert swapped[0].run_key == merged[0].run_key


def test_the_sensor_fits_the_code_location():
    """What pipelines/definitions.py gets when the sensor is added to it."""
    assert landing_files_sensor.name == "landing_files_sensor"
    assert landing_files_sensor.job_name == "marketing_kpis_job"
    defs = Definitions(
        assets=list(definitions.defs.assets),
        jobs=list(definitions.defs.jobs),
        schedules=list(definitions.defs.schedules),
        sensors=[landing_files_sensor],
        resources=definitions.resources(settings()),
        executor=definitions.defs.executor,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Definitions.validate_loadable(defs)
        assert defs.resolve_sensor_def("landing_files_sensor").job_name == "marketing_kpis_job"
