"""The warehouse resource: every write of the pipeline goes through it."""

from __future__ import annotations

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from kpi.warehouse.connection import DEFAULT_WAREHOUSE_URL, Warehouse, redact_url
from kpi.warehouse.session_settings import parse_settings


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
    postgres_settings: str | None = Field(
        default=None,
        description="KPI_POSTGRES_SETTINGS: PostgreSQL parameters set (SET LOCAL) at the "
        "start of each of the pipeline's transactions, comma-separated name=value pairs; "
        "unset: jit=off (why: kpi/warehouse/session_settings.py); none: the "
        "server's own",
    )
    _warehouse: Warehouse | None = PrivateAttr(default=None)

    def _open(self) -> Warehouse:
        settings = parse_settings(self.postgres_settings)
        return Warehouse(self.url, postgres_settings=settings)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._warehouse = self._open()

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._warehouse is not None:
            # DuckDB allows one writer per file: release it as soon as the step is done.
            self._warehouse.dispose()
            self._warehouse = None

    @property
    def warehouse(self) -> Warehouse:
        if self._warehouse is None:
            self._warehouse = self._open()
        return self._warehouse

    @property
    def display_url(self) -> str:
        return redact_url(self.url)
