"""Shared fixtures: real warehouses (a DuckDB file, a fresh PostgreSQL database per test).

PostgreSQL is reached at KPI_TEST_POSTGRES_URL (default: the CI server on 127.0.0.1:5432).
When it cannot be reached the PostgreSQL tests are skipped with a loud warning, unless
KPI_REQUIRE_POSTGRES=1 (set by .ci/run), which turns the skip into a failure.

The suite runs in parallel (pytest-xdist, `make test`): every worker has its own databases,
named after the worker, and nothing here is shared between workers. A test's database is
empty and has a name no other test had; dropping a database costs PostgreSQL a checkpoint
(~0.5 s), so a finished test's database is emptied (every schema dropped, connections ended)
and renamed for the worker's next test instead, and dropped at the end of the session.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

# Tests run the code location as the demo does (KPI_DEMO, see resources/settings.py); tests of
# the production path start a subprocess with the switch off.
os.environ["KPI_DEMO"] = "1"
# Every platform's demo spend in the landing files, as the tests' fixtures were worked out;
# the tests of the ad platform APIs (tests/e2e/test_ad_platforms.py) switch to the APIs.
os.environ.setdefault("DEMO_AD_SOURCE", "files")

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

# The skip messages that must not pass quietly: the summary repeats them in red.
PG_SKIP = "PostgreSQL is not reachable"
BROWSER_SKIP = "romium is not installed"  # headless Chromium / chromium
_loud_skips: dict[str, str] = {}


def _admin_url() -> sa.URL:
    url = sa.make_url(os.environ.get("KPI_TEST_POSTGRES_URL", DEFAULT_PG))
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


@pytest.fixture(autouse=True)
def _validations_forgotten() -> None:
    """Each test validates its own frames: a report remembered from another test's input
    (quality.validated) would hide what this one's GX call does."""
    from quality.validate import VALIDATED

    VALIDATED.clear()


@pytest.fixture(autouse=True)
def _reports_in_tmp(tmp_path, monkeypatch):
    """Pipeline runs in tests write their HTML report, quality pages and parsed files into
    the test's folder, not data/."""
    monkeypatch.setenv("KPI_REPORT_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("KPI_QUALITY_DIR", str(tmp_path / "quality"))
    monkeypatch.setenv("KPI_PARSE_CACHE_DIR", str(tmp_path / "parsed"))


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sa.Engine]:
    engine = sa.create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        message = (
            f"{PG_SKIP} at {_admin_url().render_as_string(hide_password=True)}"
            f" ({type(exc.orig).__name__}); start it or set KPI_TEST_POSTGRES_URL"
        )
        if os.environ.get("KPI_REQUIRE_POSTGRES") == "1":
            pytest.fail(message + " - KPI_REQUIRE_POSTGRES=1 forbids skipping", pytrace=False)
        pytest.skip(message)
    yield engine
    engine.dispose()


def _fresh_name(worker: str) -> str:
    return f"kpi_test_{worker}_{uuid.uuid4().hex[:12]}"


def _empty(admin: sa.Engine, name: str) -> None:
    """End every connection to ``name`` and drop everything in it: as new as CREATE DATABASE
    makes it (only the empty ``public`` schema)."""
    with admin.connect() as conn:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :d AND pid <> pg_backend_pid()"
            ),
            {"d": name},
        )
    engine = sa.create_engine(
        _admin_url().set(database=name), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
    )
    try:
        with engine.connect() as conn:
            schemas = conn.execute(
                sa.text(
                    "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
                    "AND nspname <> 'information_schema'"
                )
            ).scalars()
            for schema in list(schemas):
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            conn.execute(sa.text("CREATE SCHEMA public AUTHORIZATION pg_database_owner"))
            conn.execute(sa.text("GRANT USAGE ON SCHEMA public TO PUBLIC"))
            left = conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'"
                )
            ).scalar()
            assert left == 0, f"{name} still holds {left} relations after emptying"
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def _postgres_pool(postgres_admin: sa.Engine, worker_id: str) -> Iterator[list[str]]:
    """This worker's emptied databases, ready for the next test; dropped at the end."""
    free: list[str] = []
    yield free
    with postgres_admin.connect() as conn:
        for name in free:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def make_postgres_url(
    postgres_admin: sa.Engine, _postgres_pool: list[str], worker_id: str
) -> Iterator[Callable[[], str]]:
    """Call for a fresh, empty database (as many as the test needs), emptied afterwards."""
    taken: list[str] = []

    def make() -> str:
        name = _fresh_name(worker_id)
        with postgres_admin.connect() as conn:
            if _postgres_pool:
                conn.execute(sa.text(f'ALTER DATABASE "{_postgres_pool.pop()}" RENAME TO "{name}"'))
            else:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        taken.append(name)
        return _admin_url().set(database=name).render_as_string(hide_password=False)

    yield make
    for name in taken:
        try:
            _empty(postgres_admin, name)
        except Exception:  # not provably empty (or an old server): never reused, dropped
            with postgres_admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        else:
            _postgres_pool.append(name)


@pytest.fixture
def postgres_url(make_postgres_url: Callable[[], str]) -> str:
    """A fresh, empty database for one test (no other test used this name)."""
    return make_postgres_url()


@pytest.fixture
def duckdb_url(tmp_path) -> str:
    return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"


@pytest.fixture(params=["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def warehouse_url(request) -> str:
    """The same test on a real DuckDB file and on a real PostgreSQL database."""
    if request.param == "duckdb":
        return request.getfixturevalue("duckdb_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def worker_id(request) -> str:
    """The xdist worker ("gw0", ...), or "main" without xdist (pytest-xdist's own fixture
    says "master"; this one also works when xdist is not installed)."""
    return getattr(request.config, "workerinput", {}).get("workerid", "main")


# Slow tests in files whose tests are not marked one by one: a node id prefix each.
SLOW_ELSEWHERE = (
    "tests/e2e/test_demo_run.py::",  # `make run` in a subprocess
    "tests/e2e/test_webserver.py::",  # `dagster dev`, a run through it, a browser
    "tests/wiring/test_instance.py::test_job_runs_on_a_postgres_backed_instance",
    # Module fixtures that build a warehouse through the KPI refresh: ~3 s (DuckDB) and
    # ~6.5 s (PostgreSQL) each before the first test.
    "tests/kpi/publication/test_report_gaps.py::",
    # Two writers held at a barrier that times out (WAIT = 3 s) twice: 6 s each, by design.
    "tests/kpi/warehouse/test_concurrent_writers.py::test_two_writers_of_one_slice_leave_one_copy",
)


POSTGRES_FIXTURES = {"postgres_admin", "postgres_url", "make_postgres_url"}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items) -> None:
    """Mark the slow tests listed above; keep the tests that share an expensive module-scoped
    fixture of their own module on one xdist worker (--dist loadgroup), so that it is built
    once, not once per worker."""
    for item in items:
        if item.nodeid.startswith(SLOW_ELSEWHERE):
            item.add_marker(pytest.mark.slow)
        # Every test that reaches PostgreSQL carries the `postgres` marker (`make test-fast`
        # leaves them out; `make test` and CI run them).
        if POSTGRES_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)
        module = getattr(item, "module", None)
        info = getattr(item, "_fixtureinfo", None)
        if module is None or info is None:
            continue
        for defs in info.name2fixturedefs.values():
            own = defs[-1]
            if own.scope == "module" and getattr(own.func, "__module__", None) == module.__name__:
                item.add_marker(pytest.mark.xdist_group(module.__name__))
                break


def pytest_runtest_logreport(report) -> None:
    """Runs where the summary is printed: in the xdist controller too, for every worker's
    reports (a list filled inside a worker would never reach the summary)."""
    if report.skipped and isinstance(report.longrepr, tuple):
        message = str(report.longrepr[2])
        for kind, marker in (("POSTGRESQL", PG_SKIP), ("BROWSER", BROWSER_SKIP)):
            if marker in message:
                _loud_skips.setdefault(kind, message.removeprefix("Skipped: "))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for kind, message in _loud_skips.items():
        flag = "KPI_REQUIRE_POSTGRES" if kind == "POSTGRESQL" else "KPI_REQUIRE_BROWSER"
        bar = "!" * 78
        terminalreporter.write_line(bar, red=True, bold=True)
        terminalreporter.write_line(f"{kind} TESTS WERE SKIPPED: {message}", red=True, bold=True)
        terminalreporter.write_line(
            f"CI sets {flag}=1 and fails instead; do not merge on this result.",
            red=True,
            bold=True,
        )
        terminalreporter.write_line(bar, red=True, bold=True)
