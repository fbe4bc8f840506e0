"""A landing root that carries credentials (an object-store URL with ``user:secret@`` or a
``?token=``) is never shown with them: not in LandingUnavailable, not in the sensor's
warnings and messages, not in a run's failure, not in the file paths kept as lineage."""

from __future__ import annotations

import uuid

import fsspec
import pytest
from dagster import build_sensor_context, instance_for_test

from assets.settings import catalog
from ingest.landing import Landing, LandingUnavailable
from ingest.landing_changes import LandingState, scan_landing
from kpi.warehouse.dsn import redact_location
from tests.ingest.test_files_loading import (
    AD_HEADER,
    AD_ROWS,
    FIXTURE_DAYS,
    FX,
    failure_message,
    load,
    query,
)

SECRETS = ("s3cr3t", "t0k3n")


def _root() -> str:
    return f"memory://key:s3cr3t@bucket-{uuid.uuid4().hex[:8]}/landing?token=t0k3n"


def _clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, text


@pytest.fixture
def memory_root():
    root = _root()
    fs, base = fsspec.core.url_to_fs(root)
    yield root, fs, base
    if fs.exists(base):
        fs.rm(base, recursive=True)


@pytest.mark.parametrize(
    ("location", "shown"),
    [
        ("s3://AKIA:wJal%2Fr@bucket/landing", "s3://AKIA:***@bucket/landing"),
        (
            "https://user:pa@ss@host.example/x?sig=abc&token=t0k3n&v=1",
            "https://user:***@host.example/x?sig=***&token=***&v=1",
        ),
        ("https://ghp_t0k3n@host.example/landing", "https://***@host.example/landing"),
        ("abfs://c/landing?sv=2024&sig=s3cr3t", "abfs://c/landing?sv=2024&sig=***"),
        ("s3://bucket/landing@2026/x", "s3://bucket/landing@2026/x"),
        ("data/landing", "data/landing"),
        ("memory://landing", "memory://landing"),
    ],
)
def test_redact_location(location, shown):
    assert redact_location(location) == shown


def test_unavailable_root_and_folder_never_show_the_secret(memory_root):
    root, fs, base = memory_root
    with pytest.raises(LandingUnavailable) as missing:
        Landing(root).require()
    _clean(str(missing.value))
    assert "memory://key:***@bucket-" in str(missing.value)
    assert "token=***" in str(missing.value) and "LANDING_ROOT" in str(missing.value)

    fs.mkdir(base)
    with pytest.raises(LandingUnavailable) as folder:
        Landing(root).require("ad_spend")
    _clean(str(folder.value))
    assert "ad_spend" in str(folder.value)


def test_sensor_warnings_and_messages_never_show_the_secret(memory_root, capfd):
    from pipelines.sensors import landing_files_sensor
    from resources.landing import LandingResource

    root, fs, base = memory_root
    with pytest.raises(LandingUnavailable) as missing:
        scan_landing(Landing(root), {}, LandingState(), "Europe/Copenhagen")
    _clean(str(missing.value))

    # ad_spend has a file without a valid date (a message naming it); orders has no folder
    # (a warning naming it); adspend is a folder no source declares.
    fs.pipe(f"{base}/ad_spend/undated.csv", f"{AD_HEADER}\nsomeday,x,search,y,1,1,1,EUR\n".encode())
    fs.mkdir(f"{base}/adspend")
    sources = {n: catalog().sources[n] for n in ("ad_spend", "orders")}
    scan = scan_landing(Landing(root), sources, LandingState(), "Europe/Copenhagen")
    assert scan.messages and scan.warnings
    for text in [*scan.messages, *scan.warnings, *scan.state.files["ad_spend"]]:
        _clean(text)
    assert any("orders: the folder 'memory://key:***@" in w for w in scan.warnings)

    with instance_for_test() as instance:
        context = build_sensor_context(
            instance=instance, resources={"landing": LandingResource(root=root)}
        )
        result = landing_files_sensor(context)
    out, err = capfd.readouterr()
    _clean(out + err)
    _clean(result.cursor or "")
    assert "orders: the folder" in err


def test_runs_never_show_or_store_the_secret(duckdb_url, memory_root):
    root, fs, base = memory_root
    result = load(duckdb_url, root, window=FIXTURE_DAYS, raise_on_error=False)
    assert not result.success
    message, _ = failure_message(result)
    _clean(message)
    assert "LANDING_ROOT" in message

    fs.pipe(f"{base}/fx_rates/fx.csv", FX.encode())
    fs.pipe(f"{base}/ad_spend/a.csv", ("\n".join([AD_HEADER, *AD_ROWS]) + "\n").encode())
    assert load(duckdb_url, root, window=FIXTURE_DAYS).success
    stored = query(
        duckdb_url,
        "select distinct _source_file from raw.ad_spend "
        "union all select distinct file_path from raw.file_loads",
    )
    assert stored
    for (path,) in stored:
        _clean(path)
        assert path.startswith("memory://key:***@bucket-")
