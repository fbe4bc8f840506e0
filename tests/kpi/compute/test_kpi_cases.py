"""KPI integration tests written as data (tests/kpi_cases/*.yaml), MetricFlow style.

Each case holds source declarations, KPI definitions, fixture rows, an as-of date and the
rows expected, worked out by hand (the arithmetic is in the case's comments). Every case
runs on a real DuckDB file and on a real PostgreSQL database.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from kpi.compute.tables import KpiTables
from kpi.language.loader import load_catalog
from kpi.refresh import refresh_cubes, refresh_kpi_values, refresh_periods
from kpi.warehouse.connection import Warehouse

CASES = sorted((Path(__file__).resolve().parents[2] / "kpi_cases").glob("*.yaml"))


def _write_definitions(case: dict, folder: Path) -> None:
    folder.mkdir()
    sources = {
        "reporting": case.get("reporting", {"time_zone": "UTC"}),
        "dimensions": case.get("dimensions", {}),
        "sources": case["sources"],
    }
    (folder / "sources.yaml").write_text(yaml.safe_dump(sources, sort_keys=False))
    area = {"area": "test", "kpis": case["kpis"]}
    (folder / "test.yaml").write_text(yaml.safe_dump(area, sort_keys=False))


def _frame(rows: list[dict], spec) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for name, col in spec.columns.items():
        if name not in frame:
            continue
        if col.type == "timestamp":
            frame[name] = pd.to_datetime(frame[name], utc=True)
        elif col.type == "date":
            frame[name] = pd.to_datetime(frame[name]).dt.date
    return frame


@pytest.mark.parametrize("path", ["raw", "cubes", "refresh"])
@pytest.mark.parametrize("case_path", CASES, ids=[p.stem for p in CASES])
def test_kpi_case(case_path: Path, path: str, warehouse_url: str, tmp_path: Path):
    """Every way the rows are computed gives the expected ones.

    raw: the self-contained query of one KPI, grain and slice (``kpi compile``);
    cubes: the same query reading the daily cubes;
    refresh: what the pipeline runs, ``refresh_kpi_values`` (period rollups fused into one
    statement where they apply, per-KPI queries on cubes elsewhere), read from kpi_values.
    """
    case = yaml.safe_load(case_path.read_text())
    _write_definitions(case, tmp_path / "defs")
    catalog = load_catalog(tmp_path / "defs")
    tables = KpiTables.for_catalog(catalog, use_cubes=path != "raw")
    wh = Warehouse(warehouse_url)
    try:
        wh.ensure_tables(tables.all_tables())
        for source, rows in case["rows"].items():
            spec = catalog.sources[source]
            wh.replace_rows(tables.raw_tables[source], None, _frame(rows, spec))
        refresh_periods(wh, tables, dt.date.fromisoformat(str(case["as_of"])))
        if path == "cubes":
            refresh_cubes(wh, tables)
        if path == "refresh":
            refresh_kpi_values(wh, tables)
        for expected in case["expect"]:
            dims = tuple(expected.get("dims", []))
            if path == "refresh":
                got = wh.read(_stored(tables, expected["kpi"], expected["grain"], dims))
            else:
                got = wh.read(tables.compiler.compile(expected["kpi"], expected["grain"], dims))
            _assert_rows(got, expected, dims, case_path.stem)
    finally:
        wh.dispose()


def _stored(tables: KpiTables, kpi_id: str, grain: str, dims: tuple[str, ...]) -> sa.Select:
    """The kpi_values rows of one KPI, grain and slice (the other dimensions are NULL)."""
    v = tables.values
    return sa.select(v).where(
        v.c.kpi_id == kpi_id,
        v.c.grain == grain,
        *[
            v.c[d].is_not(None) if d in dims else v.c[d].is_(None)
            for d in tables.catalog.dimensions
        ],
    )


def _assert_rows(got: pd.DataFrame, expected: dict, dims: tuple[str, ...], case: str) -> None:
    where = f"{case}: {expected['kpi']} by {expected['grain']} {list(dims)}"
    want = expected["rows"]
    assert len(got) == len(want), f"{where}: {len(got)} rows, expected {len(want)}\n{got}"
    got = got.sort_values(["period_start", *dims]).reset_index(drop=True)
    for i, row in enumerate(want):
        actual = got.iloc[i]
        for column, value in row.items():
            have = actual[column]
            if column in ("period_start", "period_end"):
                have, value = pd.Timestamp(have).date(), dt.date.fromisoformat(str(value))
            if value is None:
                assert have is None or pd.isna(have), f"{where} row {i} {column}: {have!r}"
            elif isinstance(value, float):
                assert have == pytest.approx(value, rel=1e-9), f"{where} row {i} {column}"
            else:
                assert have == value, f"{where} row {i} {column}: {have!r} != {value!r}"
