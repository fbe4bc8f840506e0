"""The rows a refresh stored against those of the compiler's self-contained per-KPI
queries on the raw rows (the reference path), for the tests of the fused and kept paths."""

from __future__ import annotations

import datetime as dt
import math

import sqlalchemy as sa

from kpi.compute.tables import KpiTables
from kpi.warehouse.connection import Warehouse


def per_kpi_rows(wh: Warehouse, raw: KpiTables, computed_at: dt.datetime) -> dict[tuple, tuple]:
    """Every KPI's rows from the compiler's self-contained queries on the raw tables."""
    rows = {}
    for kpi_id, kpi in raw.catalog.kpis.items():
        for grain in kpi.grains:
            for dims in raw.compiler.slices(kpi):
                query = raw.compiler.compile(kpi_id, grain, dims, computed_at=computed_at)
                names = list(query.selected_columns.keys())
                for r in wh.rows(query):
                    m = dict(zip(names, r, strict=True))
                    key = (kpi_id, str(grain), m["period_start"], m["channel"], m["campaign"])
                    rows[key] = (m["value"], m["numerator"], m["denominator"], m["sample_size"])
    return rows


def stored_rows(wh: Warehouse, tables: KpiTables) -> dict[tuple, tuple]:
    """The rows of kpi_values, keyed as ``per_kpi_rows``; none written twice."""
    v = tables.values
    keys = [v.c.kpi_id, v.c.grain, v.c.period_start, v.c.channel, v.c.campaign]
    found = wh.rows(sa.select(*keys, v.c.value, v.c.numerator, v.c.denominator, v.c.sample_size))
    assert len(found) == len({tuple(r[:5]) for r in found}), "a row written twice"
    return {tuple(r[:5]): tuple(r[5:]) for r in found}


def assert_same(got: dict, want: dict, when: str = "") -> None:
    """The same keys, and the same numbers within 1e-9 (NULL where the other is NULL)."""
    assert got.keys() == want.keys(), (when, sorted(got.keys() ^ want.keys(), key=str)[:5])
    for key, values in want.items():
        for a, b in zip(got[key], values, strict=True):
            if a is None or b is None:
                assert a is None and b is None, (when, key, got[key], values)
            else:
                same = math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
                assert same, (when, key, got[key], values)
