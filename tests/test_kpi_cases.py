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
import yaml

from kpi.catalog import load_catalog
from kpi.refresh import KpiTables, refresh_cubes, refresh_periods
from kpi.warehouse import Warehouse

CASES = sorted((Path(__file__).parent / "kpi_cases").glob("*.yaml"))


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


@pytest.mark.parametrize("use_cubes", [False, True], ids=["raw", "cubes"])
@pytest.mark.parametrize("case_path", CASES, ids=[p.stem for p in CASES])
def test_kpi_case(case_path: Path, use_cubes: bool, warehouse_url: str, tmp_path: Path):
    """Self-contained queries and the rollup path used by refreshes give the same rows."""
    case = yaml.safe_load(case_path.read_text())
    _write_definitions(case, tmp_path / "defs")
    catalog = load_catalog(tmp_path / "defs")
    tables = KpiTables.for_catalog(catalog, use_cubes=use_cubes)
    wh = Warehouse(warehouse_url)
    try:
        wh.ensure_tables(tables.all_tables())
        for source, rows in case["rows"].items():
            spec = catalog.sources[source]
            wh.replace_rows(tables.raw_tables[source], None, _frame(rows, spec))
        refresh_periods(wh, tables, dt.date.fromisoformat(str(case["as_of"])))
        if use_cubes:
            refresh_cubes(wh, tables)
        for expected in case["expect"]:
            dims = tuple(expected.get("dims", []))
            got = wh.read(tables.compiler.compile(expected["kpi"], expected["grain"], dims))
            _assert_rows(got, expected, dims, case_path.stem)
    finally:
        wh.dispose()


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
