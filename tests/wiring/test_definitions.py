"""The Dagster code location: it loads, and every asset is described for the UI."""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
import sys
import warnings

from dagster import AssetKey, DagsterInstance, build_schedule_context

from assets.settings import PROJECT_ROOT
from pipelines.definitions import defs
from pipelines.schedules import daily_refresh_schedule, lookback_range

KPI_ASSETS = {
    "kpi_catalog",
    "kpi_periods",
    "kpi_values",
    "kpi_targets",
    "kpi_comparisons",
    "kpi_anomalies",
    "kpi_report",
    "kpi_alerts",
}
RAW = {
    "ga4_traffic",
    "ga4_users_monthly",
    "ga4_ecommerce",
    "ga4_users_weekly",
    "fx_rates",
    "ad_spend",
    "orders",
    "survey_answers",
    "donations",
    "volunteer_hours",
    "operations",
    "market",
    "google_ads",
    "meta_ads",
}


def test_definitions_load_without_warnings_from_our_code():
    # A fresh interpreter, so module-level warnings are seen again.
    code = (
        "import warnings; warnings.simplefilter('error');"
        "import pipelines.definitions as d; d.defs.resolve_job_def('marketing_kpis_job')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_every_asset_has_description_owner_group_and_kinds():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {*RAW, *KPI_ASSETS}
    for spec in defs.resolve_all_asset_specs():
        assert spec.description and len(spec.description) > 40, spec.key
        assert spec.owners, spec.key
        assert spec.group_name, spec.key
        assert spec.kinds, spec.key
        # Code versions follow the definitions: a changed KPI or source shows as changed.
        assert spec.code_version, spec.key


def test_raw_assets_have_blocking_quality_checks_and_kpis_depend_on_them():
    checks = {
        key.asset_key.to_user_string(): key for key in defs.resolve_asset_graph().asset_check_keys
    }
    assert set(checks) >= RAW | {"kpi_anomalies", "kpi_alerts"}
    graph = defs.resolve_asset_graph()
    upstream = graph.get(AssetKey("kpi_periods")).parent_keys
    assert {k.to_user_string() for k in upstream} == RAW - {"fx_rates"}
    for spec in defs.resolve_all_asset_specs():
        if spec.key.to_user_string() in RAW:
            check_spec = next(iter(defs.get_assets_def(spec.key).check_specs))
            assert check_spec.blocking
    # Anomalies are an early warning, never a reason to stop the pipeline.
    anomalies = next(iter(defs.get_assets_def(AssetKey("kpi_anomalies")).check_specs))
    assert not anomalies.blocking


def test_targets_are_phased_after_the_values_they_read():
    # Seasonal phasing spreads a target by last year's daily values in kpi_values.
    graph = defs.resolve_asset_graph()
    parents = {k.to_user_string() for k in graph.get(AssetKey("kpi_targets")).parent_keys}
    assert {"kpi_values", "kpi_periods"} <= parents
    comparisons = graph.get(AssetKey("kpi_comparisons")).parent_keys
    assert {"kpi_values", "kpi_targets"} <= {k.to_user_string() for k in comparisons}


def test_kpi_tables_have_a_freshness_policy():
    for spec in defs.resolve_all_asset_specs():
        if spec.group_name == "kpis":
            assert spec.freshness_policy is not None, spec.key
            assert spec.freshness_policy.fail_window.to_timedelta().total_seconds() == 30 * 3600


def test_kpi_values_lists_every_kpi_with_owner_and_formula():
    from assets.settings import catalog

    spec = next(s for s in defs.resolve_all_asset_specs() if s.key == AssetKey("kpi_values"))
    assert spec.code_version  # changes when any definition_version changes
    from assets.kpis.tables import _catalog_table

    rows = {r.data["kpi_id"]: r.data for r in _catalog_table().records}
    assert set(rows) == set(catalog().kpis)
    for kpi in catalog().kpis.values():
        assert rows[kpi.id]["owner"] == kpi.owner and rows[kpi.id]["formula"]
        assert rows[kpi.id]["type"] == kpi.type  # a plain string, as Dagster stores it


def test_daily_schedule_repulls_the_last_three_days():
    assert lookback_range(dt.datetime(2026, 3, 10, 6), 3) == ("2026-03-07", "2026-03-09")
    context = build_schedule_context(
        instance=DagsterInstance.ephemeral(),
        scheduled_execution_time=dt.datetime(2026, 3, 10, 6, tzinfo=dt.UTC),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        request = daily_refresh_schedule(context)
    assert request.tags["dagster/asset_partition_range_start"] == "2026-03-07"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-03-09"
    assert request.run_key == "daily-2026-03-09"


def test_invalid_definitions_stop_the_code_location_from_loading(tmp_path):
    import shutil

    from assets.settings import PROJECT_ROOT

    broken = tmp_path / "defs"
    shutil.copytree(PROJECT_ROOT / "kpi_definitions", broken)
    sales = broken / "sales.yaml"
    text = sales.read_text().replace("expr: transactions}", "expr: transactionz}", 1)
    sales.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "transactionz" in t)
    env = {**__import__("os").environ, "KPI_DEFINITIONS_DIR": str(broken)}
    result = subprocess.run(
        [sys.executable, "-c", "import pipelines.definitions"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode != 0
    assert "DefinitionError" in result.stderr
    assert f"sales.yaml:{line} [number_of_sales]" in result.stderr
    assert "unknown column `transactionz`" in result.stderr
    assert "did you mean `transactions`?" in result.stderr


def test_a_new_target_makes_targets_and_comparisons_stale_but_not_values():
    from assets.kpis import tables as kpi_assets
    from assets.settings import catalog

    shipped = catalog()
    before = (kpi_assets.catalog_code_version(), kpi_assets.goals_code_version())
    kpi = shipped.kpis["sessions"]
    target = kpi.target.model_copy(update={"value": (kpi.target.value or 0) + 1})
    kpis = {**shipped.kpis, "sessions": kpi.model_copy(update={"target": target})}
    changed = dataclasses.replace(shipped, kpis=kpis)
    after = (kpi_assets.catalog_code_version(changed), kpi_assets.goals_code_version(changed))
    assert after[0] == before[0]  # the values do not depend on targets
    assert after[1] != before[1]  # kpi_targets, kpi_comparisons and kpi_catalog do


# ---------------------------------------------------------------------------------------------
# The demo switch and the settings (resources/settings.py)
# ---------------------------------------------------------------------------------------------


def _load_definitions(code: str, **env: str | None) -> subprocess.CompletedProcess:
    """Run ``code`` after importing pipelines.definitions in a fresh interpreter with ``env``
    (a None value removes the variable)."""
    import os

    environ = {**os.environ}
    for name, value in env.items():
        environ.pop(name, None)
        if value is not None:
            environ[name] = value
    return subprocess.run(
        [sys.executable, "-c", "import sys; import pipelines.definitions as d\n" + code],
        capture_output=True,
        text=True,
        env=environ,
    )


def test_what_loading_the_code_location_made_is_left_out_of_the_collector():
    """pipelines.definitions freezes what its import made (gc.freeze): the cyclic
    collector's passes during a run then scan the run's own objects, not the whole of
    Dagster, pandas and SQLAlchemy again. Objects made afterwards are collected as usual."""
    code = (
        "import gc\n"
        "frozen, tracked = gc.get_freeze_count(), len(gc.get_objects())\n"
        "class Cycle: pass\n"
        "a, b = Cycle(), Cycle(); a.other, b.other = b, a; del a, b\n"
        "print(frozen, tracked, gc.isenabled(), gc.collect() >= 2)\n"
    )
    done = _load_definitions(code, KPI_DEMO="1")
    assert done.returncode == 0, done.stderr[-2000:]
    frozen, tracked, enabled, collected = done.stdout.split()
    assert int(frozen) > 100_000 and int(tracked) < int(frozen) / 10
    assert enabled == "True" and collected == "True"


def test_production_definitions_never_import_the_demo():
    code = (
        "ga4 = d.defs.resources['ga4']\n"
        "print(type(ga4).__module__, type(ga4).__name__, ga4.property_ids)\n"
        "print(sorted(m for m in sys.modules if m == 'demo' or m.startswith('demo.')))\n"
    )
    done = _load_definitions(code, KPI_DEMO=None, GA4_PROPERTY_IDS="111, 222")
    assert done.returncode == 0, done.stderr[-2000:]
    resource, modules = done.stdout.splitlines()
    assert resource == "resources.ga4 GA4Resource ['111', '222']"
    assert modules == "[]"


def test_without_the_switch_or_property_ids_the_location_fails_naming_both():
    done = _load_definitions("", KPI_DEMO="0", GA4_PROPERTY_IDS=None)
    assert done.returncode != 0
    assert "GA4_PROPERTY_IDS is not set" in done.stderr
    assert "KPI_DEMO=1" in done.stderr


def test_the_switch_serves_the_demo_data_whatever_the_property_ids():
    code = (
        "from demo.generator import DEMO_PROPERTY_ID\n"
        "ga4 = d.defs.resources['ga4']\n"
        "print(type(ga4).__module__, type(ga4).__name__, ga4.property_ids == [DEMO_PROPERTY_ID])\n"
        "print(ga4.demo_start, ga4.demo_end, ga4.api_endpoint)\n"
    )
    done = _load_definitions(
        code,
        KPI_DEMO="1",
        GA4_PROPERTY_IDS="111",
        GA4_API_ENDPOINT=None,
        DEMO_START="2026-03-01",
        DEMO_END="2026-03-07",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        "demo.resources DemoGA4Resource True",
        "2026-03-01 2026-03-07 None",
    ]


def test_the_demo_resource_serves_the_demo_window_through_the_production_client():
    from dagster import build_init_resource_context

    from demo.generator import DEMO_PROPERTY_ID
    from demo.resources import DemoGA4Resource
    from ingest.ga4.spec import ReportSpec
    from resources.ga4 import GA4Resource

    assert {"serve_demo_data", "demo_start", "demo_end"}.isdisjoint(GA4Resource.model_fields)
    ga4 = DemoGA4Resource(demo_start="2026-03-01", demo_end="2026-03-03")
    assert ga4.property_ids == [DEMO_PROPERTY_ID]
    spec = ReportSpec("traffic", ("date",), ("sessions",))
    with ga4.from_resource_context_cm(build_init_resource_context()) as live:
        result = live.run_report(DEMO_PROPERTY_ID, spec, dt.date(2026, 3, 1), dt.date(2026, 3, 3))
    days = {str(d) for d in result.rows["date"]}
    assert days == {"2026-03-01", "2026-03-02", "2026-03-03"}


def test_settings_are_read_from_the_environment_and_checked():
    from resources.settings import Settings, SettingsError

    defaults = Settings.from_env({})
    assert (defaults.demo, defaults.ga4_property_ids, defaults.daily_run_hour) == (False, (), 6)
    assert defaults.history_start == dt.date(2024, 1, 1) and defaults.lookback_days == 3
    given = Settings.from_env(
        {
            "KPI_DEMO": "1",
            "KPI_DAILY_RUN_HOUR": "7",
            "KPI_HISTORY_START": "2025-10-05",
            "KPI_DEFINITIONS_DIR": "/srv/defs",
            "GA4_LOOKBACK_DAYS": "5",
            "WAREHOUSE_URL": "postgresql://kpi:s3cret@db/kpi",
        }
    )
    assert given.demo and given.daily_run_hour == 7 and given.lookback_days == 5
    assert given.history_start == dt.date(2025, 10, 5)
    assert str(given.definitions_dir) == "/srv/defs"
    assert "s3cret" not in repr(given)
    for name, value in [
        ("KPI_DAILY_RUN_HOUR", "24"),
        ("KPI_HISTORY_START", "2025-13-01"),
        ("GA4_LOOKBACK_DAYS", "three"),
        ("KPI_DEMO", "maybe"),
    ]:
        try:
            Settings.from_env({name: value})
        except SettingsError as exc:
            assert f"{name}={value!r}" in str(exc)
        else:
            raise AssertionError(f"{name}={value} was accepted")


def test_the_schedule_and_partitions_follow_the_settings():
    code = (
        "from assets.partitions import daily_partitions\n"
        "from pipelines.schedules import daily_refresh_schedule as s\n"
        "print(s.cron_schedule, daily_partitions.start.date())\n"
    )
    done = _load_definitions(code, KPI_DAILY_RUN_HOUR="7", KPI_HISTORY_START="2025-10-05")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "0 7 * * * 2025-10-05"


def test_every_asset_opening_a_duckdb_warehouse_is_in_its_pool_and_shows_the_kind():
    """DuckDB lets one process hold the file: every asset that uses the warehouse is in the
    `duckdb_warehouse` pool (the instance limits it to one run at a time) and shows the
    warehouse as a kind in the UI."""
    from assets.settings import DUCKDB_POOL

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assets_def = defs.resolve_assets_def(key)
        if "warehouse" in assets_def.required_resource_keys:
            assert node.pools == {DUCKDB_POOL}, key
            assert "duckdb" in node.kinds, key
    instance_yaml = (PROJECT_ROOT / "deploy" / "dagster.dev.yaml").read_text()
    assert "granularity: run" in instance_yaml and "default_limit: 1" in instance_yaml


def test_kpi_values_shows_the_raw_tables_its_kpis_read_as_inputs():
    from assets.settings import catalog

    graph = defs.resolve_asset_graph()
    parents = {k.to_user_string() for k in graph.get(AssetKey("kpi_values")).parent_keys}
    cat = catalog()
    read = {m.source for k in cat.kpis.values() for _, m in k.measures}
    assert {"orders", "ga4_traffic", "paid_media"} <= read
    # A union source shows as the assets that store its rows: files and each ad platform.
    stored = {s for name in read for s in cat.stored_sources(name)}
    assert {"ad_spend", "google_ads", "meta_ads"} <= stored <= parents


def test_unset_resource_settings_name_their_environment_variable():
    """The UI shows an unset setting as null: its description names the variable to set."""
    from resources.ga4 import GA4Resource
    from resources.notifier import NotifierResource
    from resources.reports import ReportResource

    for resource, field, variable in [
        (GA4Resource, "credentials_json", "GA4_CREDENTIALS_JSON"),
        (NotifierResource, "slack_webhook_url", "SLACK_WEBHOOK_URL"),
        (NotifierResource, "smtp_host", "SMTP_HOST"),
        (ReportResource, "base_url", "KPI_REPORT_BASE_URL"),
    ]:
        assert resource.model_fields[field].description.startswith(variable), field
