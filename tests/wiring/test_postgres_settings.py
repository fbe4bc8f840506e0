"""The warehouse resource's PostgreSQL settings (kpi/warehouse/session_settings.py): from
KPI_POSTGRES_SETTINGS through the code location's resource to the warehouse's engine."""

from __future__ import annotations

from dagster import EnvVar

from kpi.warehouse.session_settings import DEFAULT_POSTGRES_SETTINGS, settings_of
from pipelines.definitions import resources
from resources.settings import Settings
from resources.warehouse import WarehouseResource


def test_the_resource_passes_its_settings_on(monkeypatch):
    default = WarehouseResource(url="duckdb:///:memory:")
    chosen = WarehouseResource(url="duckdb:///:memory:", postgres_settings="jit=on")
    none = WarehouseResource(url="duckdb:///:memory:", postgres_settings="none")
    assert settings_of(default.warehouse.engine) == DEFAULT_POSTGRES_SETTINGS
    assert settings_of(chosen.warehouse.engine) == {"jit": "on"}
    assert settings_of(none.warehouse.engine) == {}
    # The code location reads them from KPI_POSTGRES_SETTINGS when it is set.
    monkeypatch.setenv("KPI_POSTGRES_SETTINGS", "work_mem=16MB")
    warehouse = resources(Settings.from_env())["warehouse"]
    assert isinstance(warehouse.postgres_settings, EnvVar)
    assert warehouse.postgres_settings.get_value() == "work_mem=16MB"
