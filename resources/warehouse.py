"""The warehouse resource: every write of the pipeline goes through it."""

from __future__ import annotations

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from kpi.warehouse.connection import DEFAULT_WAREHOUSE_URL, Warehouse, redact_url


class WarehouseResource(ConfigurableResource):
    """A SQL warehouse reached by a SQLAlchemy URL (DuckDB by default, or PostgreSQL).

    Set ``WAREHOUSE_URL`` to use another warehouse; the URL may hold a password, so it is
    read with ``EnvVar`` and only ever shown redacted.
    """

    url: str = Field(
        default=DEFAULT_WAREHOUSE_URL,
        description="WAREHOUSE_URL: SQLAlchemy URL, e.g. duckdb:///data/warehouse.duckdb or "
        "postgresql://... (shown redacted)",
    )
    _warehouse: Warehouse | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._warehouse = Warehouse(self.url)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._warehouse is not None:
            # DuckDB allows one writer per file: release it as soon as the step is done.
            self._warehouse.dispose()
            self._warehouse = None

    @property
    def warehouse(self) -> Warehouse:
        if self._warehouse is None:
            self._warehouse = Warehouse(self.url)
        return self._warehouse

    @property
    def display_url(self) -> str:
        return redact_url(self.url)
