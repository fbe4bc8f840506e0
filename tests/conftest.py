"""Shared fixtures: real warehouses (a DuckDB file, a fresh PostgreSQL database per test).

PostgreSQL is reached at KPI_TEST_POSTGRES_URL (default: the CI server on 127.0.0.1:5432).
When it cannot be reached the PostgreSQL tests are skipped with a loud warning, unless
KPI_REQUIRE_POSTGRES=1 (set by .ci/run), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
_pg_unreachable: list[str] = []


def _admin_url() -> sa.URL:
    url = sa.make_url(os.environ.get("KPI_TEST_POSTGRES_URL", DEFAULT_PG))
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


@pytest.fixture(autouse=True)
def _reports_in_tmp(tmp_path, monkeypatch):
    """Pipeline runs in tests write their HTML report into the test's folder, not data/."""
    monkeypatch.setenv("KPI_REPORT_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("KPI_QUALITY_DIR", str(tmp_path / "quality"))


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sa.Engine]:
    engine = sa.create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        message = (
            f"PostgreSQL is not reachable at {_admin_url().render_as_string(hide_password=True)}"
            f" ({type(exc.orig).__name__}); start it or set KPI_TEST_POSTGRES_URL"
        )
        if os.environ.get("KPI_REQUIRE_POSTGRES") == "1":
            pytest.fail(message + " - KPI_REQUIRE_POSTGRES=1 forbids skipping", pytrace=False)
        _pg_unreachable.append(message)
        pytest.skip(message)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_url(postgres_admin: sa.Engine) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = f"kpi_test_{uuid.uuid4().hex[:12]}"
    with postgres_admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = _admin_url().set(database=name)
    yield url.render_as_string(hide_password=False)
    with postgres_admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def duckdb_url(tmp_path) -> str:
    return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"


@pytest.fixture(params=["duckdb", "postgresql"])
def warehouse_url(request) -> str:
    """The same test on a real DuckDB file and on a real PostgreSQL database."""
    if request.param == "duckdb":
        return request.getfixturevalue("duckdb_url")
    return request.getfixturevalue("postgres_url")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _pg_unreachable:
        bar = "!" * 78
        terminalreporter.write_line(bar, red=True, bold=True)
        terminalreporter.write_line(
            "POSTGRESQL TESTS WERE SKIPPED: " + _pg_unreachable[0], red=True, bold=True
        )
        terminalreporter.write_line(
            "CI sets KPI_REQUIRE_POSTGRES=1 and fails instead; do not merge on this result.",
            red=True,
            bold=True,
        )
        terminalreporter.write_line(bar, red=True, bold=True)
