"""The rows of running totals in sparse slices (kpi/compute/sparse_running.py). Their rows
and numbers against the compiler's per-KPI queries are in test_fused_running_totals.py
(test_sparse_running_totals_have_the_rows_of_the_per_kpi_queries), the hand-worked ones in
tests/kpi_cases/sparse_running_totals*.yaml."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from kpi.cli import DIALECTS, load_dialect
from kpi.compute.sparse_running import GAPLESS_KINDS, running_rows
from kpi.warehouse.statements import compile_select
from tests.kpi.compute.test_fused_running_totals import COMPUTED_AT, _sparse_case, _tables_of


def _present() -> sa.Subquery:
    return (
        sa.select(
            sa.literal("day").label("grain"),
            sa.literal(dt.date(2024, 1, 1)).label("period_start"),
            sa.literal("campaign").label("slice"),
            sa.literal("c1").label("v_campaign"),
        )
    ).subquery()


def test_a_rolling_window_has_no_run_of_periods(tmp_path):
    tables = _tables_of(_sparse_case(), tmp_path / "defs")
    for kind in ("rolling_7", "rolling_28", "rolling_90"):
        assert kind not in GAPLESS_KINDS
        with pytest.raises(ValueError, match=kind):
            running_rows(_present(), tables.compiler.periods, kind)


def test_each_window_starts_its_runs_where_it_should(tmp_path):
    """All time: one run per value from its first period; to date: one per value and
    window start, joined on it."""
    tables = _tables_of(_sparse_case(), tmp_path / "defs")
    periods = tables.compiler.periods
    all_time = str(running_rows(_present(), periods, "all_time"))
    assert "year_to_date_start" not in all_time and "min(" in all_time
    ytd = str(running_rows(_present(), periods, "year_to_date"))
    assert ytd.count("year_to_date_start") >= 3  # read, grouped by, joined on
    assert "month_to_date_start" not in ytd


def test_sparse_running_totals_compile_for_every_dialect(tmp_path):
    tables = _tables_of(_sparse_case(), tmp_path / "defs")
    fused = sorted(k for k, kpi in tables.catalog.kpis.items() if tables.rollups.fusable(kpi))
    since = sa.bindparam("since", dt.date(2024, 3, 20), type_=sa.Date())
    for dialect in DIALECTS:
        compiled_dialect, _ = load_dialect(dialect)
        select = tables.rollups.values_select(fused, COMPUTED_AT, since)
        sql = compile_select(compiled_dialect, select).sql.replace("`", "").replace('"', "")
        assert "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW" in sql, dialect
        assert "PRECEDING AND CURRENT ROW" not in sql.replace("UNBOUNDED PRECEDING", ""), dialect
        for kind in ("month_to_date", "quarter_to_date", "year_to_date"):
            assert f"{kind}_start" in sql, (dialect, kind)
