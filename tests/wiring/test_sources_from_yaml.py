"""The file sources come from sources.yaml alone: a source declared there with a ``landing``
folder (and its quality suite) gets its asset, its blocking check, a place among the raw
tables the KPIs read, and loads its landing files, with no Python list to update.

The code location is loaded in a subprocess from a copy of ``kpi_definitions/`` given by
``KPI_DEFINITIONS_DIR``, as a deployment with its own definitions folder would load it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from assets.settings import PROJECT_ROOT

NEW_SOURCE = """
  newsletter_signups:
    table: raw.newsletter_signups
    description: Newsletter sign-ups, one row per sign-up
    time: {column: date, type: date, time_zone: Europe/Copenhagen}
    landing: newsletter
    key: [signup_id]
    columns:
      signup_id: {type: string}
      date: {type: date}
      list_name: {type: string, required: true, allowed: [weekly, offers]}
"""

NEW_SUITE = """suite: newsletter_signups
expectations:
  - {type: columns_present, columns: [signup_id, date, list_name]}
  - {type: not_null, column: signup_id}
  - {type: unique, columns: [signup_id]}
  - {type: date_in_partition, column: date}
"""

NEW_AREA = """area: newsletter
description: Newsletter growth.
kpis:
  - id: newsletter_signups_count
    name: Newsletter sign-ups
    description: Number of sign-ups.
    owner: marketing@example.com
    unit: count
    direction: higher_is_better
    format: "#,##0"
    type: simple
    measure: {source: newsletter_signups, agg: count}
    grains: [day, month]
"""

# Run in the subprocess: the Definitions of the copied folder, then one real run of the new
# asset over a landing file, in a DuckDB file.
SCRIPT = """
import json, sys
import duckdb
from dagster import AssetCheckKey, AssetKey, DagsterInstance, materialize
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from assets.files.sources import file_assets
from assets.kpis.tables import RAW_ASSETS
from assets.settings import catalog
from pipelines.definitions import defs
from resources.landing import LandingResource
from resources.quality import QualityResource
from resources.warehouse import WarehouseResource

landing, warehouse = sys.argv[1], sys.argv[2]
graph = defs.resolve_asset_graph()
key = AssetKey("newsletter_signups")
asset = next(a for a in file_assets if a.key == key)
result = materialize(
    [asset],
    resources={
        "landing": LandingResource(root=landing),
        "quality": QualityResource(docs_folder=landing + "-docs"),
        "warehouse": WarehouseResource(url="duckdb:///" + warehouse),
    },
    instance=DagsterInstance.ephemeral(),
    tags={
        ASSET_PARTITION_RANGE_START_TAG: "2026-01-05",
        ASSET_PARTITION_RANGE_END_TAG: "2026-01-06",
    },
)
checks = result.get_asset_check_evaluations()
con = duckdb.connect(warehouse)
rows = con.execute(
    "select signup_id, date::varchar, list_name from raw.newsletter_signups order by signup_id"
).fetchall()
quarantined = con.execute(
    "select signup_id, _failed_expectations from raw.newsletter_signups__quarantine"
).fetchall()
print(json.dumps({
    "asset": graph.has(key),
    "description": asset.specs_by_key[key].description,
    "check": AssetCheckKey(key, "quality_suite") in graph.asset_check_keys,
    "kpi_deps": sorted(k.to_user_string() for k in graph.get(AssetKey("kpi_periods")).parent_keys),
    "raw_assets": RAW_ASSETS,
    "kpi": catalog().kpis["newsletter_signups_count"].measure.source,
    "success": result.success,
    "checks": [(c.check_name, c.passed) for c in checks],
    "rows": rows,
    "quarantined": [r[0] for r in quarantined],
}))
"""


def test_a_file_source_declared_only_in_yaml_gets_its_asset_check_and_kpi_and_loads(tmp_path):
    defs_dir = tmp_path / "defs"
    shutil.copytree(PROJECT_ROOT / "kpi_definitions", defs_dir)
    sources = defs_dir / "sources.yaml"
    sources.write_text(sources.read_text().rstrip("\n") + "\n" + NEW_SOURCE)
    (defs_dir / "quality" / "newsletter_signups.yaml").write_text(NEW_SUITE)
    (defs_dir / "newsletter.yaml").write_text(NEW_AREA)

    landing = tmp_path / "landing"
    for source in ("ad_spend", "orders", "survey", "fx_rates", "donations", "volunteer_hours"):
        (landing / source).mkdir(parents=True)
    (landing / "operations").mkdir()
    (landing / "market").mkdir()
    (landing / "newsletter").mkdir()
    (landing / "newsletter" / "jan.csv").write_text(
        "signup_id,date,list_name\n"
        "s1,2026-01-05,weekly\n"
        "s2,2026-01-06,offers\n"
        "s3,2026-01-06,monthly\n"  # not an allowed list: quarantined, named
    )
    env = {**os.environ, "KPI_DEFINITIONS_DIR": str(defs_dir)}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(landing), str(tmp_path / "wh.duckdb")],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["asset"]
    assert out["description"].startswith("Newsletter sign-ups, one row per sign-up\n\n")
    assert "`newsletter/`" in out["description"]
    assert out["check"]
    assert "newsletter_signups" in out["kpi_deps"]
    assert "newsletter_signups" in out["raw_assets"]
    assert "fx_rates" not in out["raw_assets"]
    assert out["kpi"] == "newsletter_signups"
    assert out["success"]
    assert out["checks"] == [["quality_suite", True]]
    assert out["rows"] == [["s1", "2026-01-05", "weekly"], ["s2", "2026-01-06", "offers"]]
    assert out["quarantined"] == ["s3"]
