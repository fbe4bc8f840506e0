"""Which fused KPIs share a join (kpi/compute/fused_groups.py): a running total, its base
and a growth of the same sources, slices and grains in one; apart where an incremental
run's join would start too late for one of them. That the rows are right in either case is
tests/kpi/compute/test_fused_running_totals.py's (its case has both kinds)."""

from __future__ import annotations

import datetime as dt
import re

from kpi.compute.fused_groups import join_reach
from kpi.compute.tables import KpiTables
from tests.kpi.compute.test_fused_running_totals import COMPUTED_AT, _case, _running, _tables_of


def _joins(tables: KpiTables, kpi_ids: list[str]) -> int:
    """How many joins of periods, slice values and rollups the fused statement makes."""
    select = tables.rollups.values_select(kpi_ids, COMPUTED_AT)
    return len(set(re.findall(r"\brollups_\d+\b", str(select))))


def test_a_dense_running_total_shares_the_join_of_its_base(tmp_path):
    """One join for a running total, its base and a growth of the same sources, slices and
    grains (each join of ~100,000 rows costs DuckDB ~15 ms); apart where the base has a
    grain the running total lacks: the join an incremental run starts at the running
    windows' first period would miss that grain's longer periods."""
    case = _case()
    case["kpis"].append(
        _running("revenue_mtd", "revenue", ["day", "month"], ["channel"], to_date="month")
    )
    tables = _tables_of(case, tmp_path / "defs")
    assert _joins(tables, ["sessions_by_campaign", "campaign_7d", "campaign_vs_week"]) == 1
    assert _joins(tables, ["sessions", "sessions_all_time"]) == 1
    assert _joins(tables, ["revenue", "revenue_ytd"]) == 1
    assert _joins(tables, ["revenue", "revenue_mtd"]) == 2  # revenue by quarter and year too
    assert _joins(tables, ["engagement", "engagement_mtd"]) == 2  # engagement by quarter
    # With the year to date, each of revenue's grains is one a running total has.
    assert _joins(tables, ["revenue", "revenue_ytd", "revenue_mtd"]) == 1
    # A sparse slice's running totals keep joins of their own (kpi.compute.sparse_running).
    case["dimensions"]["campaign"] = {"sparse": True}
    sparse = _tables_of(case, tmp_path / "sparse")
    assert _joins(sparse, ["smallest", "smallest_all_time"]) == 2


def test_the_join_of_a_group_with_growths_reaches_back_by_the_longest_shift():
    since = dt.date(2024, 3, 31)
    assert join_reach(since, []) == since
    assert join_reach(None, [(7, 0)]) is None  # a full refresh: the whole history
    # A month counts as 31 days: never short of the month before, whatever its length.
    assert join_reach(since, [(7, 0), (0, 1)]) == dt.date(2024, 2, 29)
    assert join_reach(since, [(28, 0)]) == dt.date(2024, 3, 3)
