"""The time-based expectations of every file source and of the GA4 reports beyond traffic, in
real Dagster runs on a real warehouse (a DuckDB file; PostgreSQL where marked).

Each test starts from the demo generators' data, which satisfies every suite, and breaks one
thing: a volume drop of 80 %, a date no partition holds (after today, before the first
partition), a row of another partition, stale data, an empty partition. It then asserts the
failed check (and its severity) or the quarantined rows that result.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from dagster import AssetCheckSeverity, ExecuteInProcessResult

from assets.settings import catalog, history_start
from demo import extra_sources, generator
from demo.fake_ga4 import FakeGA4Server
from demo.generator import ga4_traffic, outage_day
from demo.landing import fx_rates
from quality.suites import Freshness, Volume, load_suite
from quality.writes import SHIPPED_SUITES
from tests.ingest.test_files_loading import load, query
from tests.support import traffic_rows
from tests.wiring.test_ga4_assets import DAYS, GA4_ASSETS, _prop, _rows, _run

D = dt.date
ZONE = "Europe/Copenhagen"
# Five weeks, Monday to Sunday, and a Wednesday with four weeks of history before it.
VOLUME_WINDOW = (D(2026, 2, 2), D(2026, 3, 8))
DROP_DAY = D(2026, 3, 4)


@dataclass(frozen=True)
class FileSource:
    name: str
    folder: str
    make: Callable[[dt.date, dt.date], pd.DataFrame]
    needs_fx: bool = False

    @property
    def time_column(self) -> str:
        return catalog().sources[self.name].time.column

    def expectation(self, kind: type) -> object:
        suite = load_suite(SHIPPED_SUITES / f"{self.name}.yaml")
        return next(e for e in suite.expectations if isinstance(e, kind))

    def days(self, frame: pd.DataFrame) -> pd.Series:
        """Each row's reporting-zone day."""
        values = frame[self.time_column]
        if catalog().sources[self.name].time.type == "timestamp":
            return pd.to_datetime(values, utc=True).dt.tz_convert(ZONE).dt.date
        return pd.to_datetime(values).dt.date

    def write(self, root: Path, frame: pd.DataFrame, fx_until: dt.date | None = None) -> None:
        """The frame as the source's one landing file, plus the rates it is converted with
        (up to ``fx_until`` if given)."""
        folder = root / self.folder
        folder.mkdir(parents=True, exist_ok=True)
        money = {} if self.name == "fx_rates" else {"float_format": "%.2f"}
        frame.to_csv(folder / "data.csv", index=False, lineterminator="\n", **money)
        if self.needs_fx and len(frame):
            days = self.days(frame)
            (root / "fx_rates").mkdir(parents=True, exist_ok=True)
            fx = fx_rates(min(days), fx_until or max(days))
            fx.to_csv(root / "fx_rates" / "data.csv", index=False, lineterminator="\n")

    def run(self, url: str, root: Path, window: tuple[dt.date, dt.date]) -> ExecuteInProcessResult:
        names = ["fx_rates", self.name] if self.needs_fx else [self.name]
        return load(url, root, window=window, names=names, raise_on_error=False)

    def with_row_on(self, frame: pd.DataFrame, day: dt.date) -> pd.DataFrame:
        """``frame`` plus a copy of its last row moved to ``day``, under a key of its own."""
        spec = catalog().sources[self.name]
        row = frame.iloc[[-1]].copy()
        if spec.time.type == "timestamp":
            at = dt.datetime.combine(day, dt.time(12), ZoneInfo(ZONE))
            row[self.time_column] = pd.Timestamp(at).tz_convert("UTC")
        else:
            row[self.time_column] = day
        if self.time_column not in spec.key:
            row[spec.key[0]] = f"STRAY-{day}"
        return pd.concat([frame, row], ignore_index=True)


SOURCES = {
    s.name: s
    for s in [
        FileSource("ad_spend", "ad_spend", generator.ad_spend, needs_fx=True),
        FileSource("orders", "orders", generator.orders),
        FileSource("survey_answers", "survey", generator.survey_answers),
        FileSource("donations", "donations", extra_sources.donations),
        FileSource("volunteer_hours", "volunteer_hours", extra_sources.volunteer_hours),
        FileSource("operations", "operations", extra_sources.operations_output),
        FileSource("fx_rates", "fx_rates", fx_rates),
    ]
}
EMPTY_DAYS_ALLOWED = {"volunteer_hours", "operations"}  # no row_count: see their suites


def _yesterday() -> dt.date:
    return dt.datetime.now(ZoneInfo(ZONE)).date() - dt.timedelta(days=1)


def _check(result: ExecuteInProcessResult, name: str):
    """The ``quality_suite`` check of asset ``name`` (GA4 assets have a flags check too)."""
    return next(
        c
        for c in result.get_asset_check_evaluations()
        if c.asset_key.path == [name] and c.check_name == "quality_suite"
    )


def _metadata(result: ExecuteInProcessResult, name: str) -> dict:
    events = result.asset_materializations_for_node(name)
    return {k: v.value for k, v in events[0].metadata.items()}


def _url(request: pytest.FixtureRequest, backend: str) -> str:
    return request.getfixturevalue("duckdb_url" if backend == "duckdb" else "postgres_url")


def _cases(*extra: tuple[str, str]) -> list:
    return [pytest.param(n, "duckdb", id=n) for n in SOURCES] + [
        pytest.param(n, b, id=f"{n}-{b}") for n, b in extra
    ]


# -- volume --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "backend"), _cases(("orders", "postgresql"), ("operations", "postgresql"))
)
def test_a_volume_drop_of_80_percent_fails_the_check_with_error(name, backend, request, tmp_path):
    source = SOURCES[name]
    exp = source.expectation(Volume)
    assert exp.severity == "error"  # a partial delivery blocks the KPIs until it is re-sent
    frame = source.make(*VOLUME_WINDOW)
    # The broken export: a day keeps a fifth of its rows (rounded down); a source judged on
    # 7-day totals loses four fifths of the whole week ending on that day.
    broken = {DROP_DAY - dt.timedelta(days=i) for i in range(exp.period_days)}
    days = source.days(frame)
    rank = frame.groupby(days.values).cumcount()
    per_day = days.map(days.value_counts())
    keep = ~days.isin(broken) | (rank < (per_day * 0.2).astype(int))
    source.write(tmp_path, frame[keep])

    url = _url(request, backend)
    result = source.run(url, tmp_path, VOLUME_WINDOW)
    assert not result.success  # the blocking check stops the run
    check = _check(result, name)
    assert not check.passed and check.severity == AssetCheckSeverity.ERROR
    flagged = [D.fromisoformat(a.split(":")[0]) for a in check.metadata["volume_anomalies"].value]
    if exp.period_days == 1:
        assert flagged == [DROP_DAY]
    else:
        assert DROP_DAY in flagged
        assert all(abs((d - DROP_DAY).days) < exp.period_days for d in flagged)
    assert exp.display_name in check.metadata["failures"].value
    # A table-level failure: the rows are loaded as delivered, nothing is quarantined.
    meta = _metadata(result, name)
    assert (meta["rows_loaded"], meta["rows_quarantined"]) == (int(keep.sum()), 0)


# -- dates no partition holds --------------------------------------------------------------------


@pytest.mark.parametrize(("name", "backend"), _cases(("orders", "postgresql")))
def test_a_future_date_is_quarantined_by_the_run_of_the_last_partition(
    name, backend, request, tmp_path
):
    source = SOURCES[name]
    yesterday = _yesterday()
    window = (yesterday - dt.timedelta(days=13), yesterday)
    future = yesterday + dt.timedelta(days=31)
    frame = source.with_row_on(source.make(*window), future)
    source.write(tmp_path, frame)

    url = _url(request, backend)
    for _ in range(2):  # a re-run replaces the quarantined row: never duplicated
        result = source.run(url, tmp_path, window)
        assert result.success
        rows = query(url, f"select _failed_expectations, _partition from raw.{name}__quarantine")
        today = yesterday + dt.timedelta(days=1)
        assert rows == [
            (
                f"date_in_partition({source.time_column}): {future} is after today ({today}); "
                "no partition holds it",
                future,
            )
        ]
        meta = _metadata(result, name)
        assert (meta["rows_received"], meta["rows_quarantined"]) == (len(frame), 1)
        assert meta["rows_conserved"] is True
        check = _check(result, name)
        assert check.passed, check.metadata["failures"].value
    loaded = query(url, f"select count(*) from raw.{name}")
    assert loaded == [(len(frame) - 1,)]


@pytest.mark.parametrize("name", list(SOURCES))
def test_a_date_before_the_first_partition_is_quarantined_and_another_days_row_waits(
    name, duckdb_url, tmp_path
):
    source = SOURCES[name]
    first = D.fromisoformat(history_start())
    window = (first, first + dt.timedelta(days=13))
    before = first - dt.timedelta(days=1)
    later = first + dt.timedelta(days=20)  # a day of another partition: not this run's
    frame = source.with_row_on(source.with_row_on(source.make(*window), before), later)
    source.write(tmp_path, frame)

    result = source.run(duckdb_url, tmp_path, window)
    assert result.success
    rows = query(duckdb_url, f"select _failed_expectations, _partition from raw.{name}__quarantine")
    assert rows == [
        (
            f"date_in_partition({source.time_column}): {before} is before the first partition "
            f"({first}); no partition holds it",
            before,
        )
    ]
    meta = _metadata(result, name)
    # The later day's row is neither loaded nor quarantined here: its own partition's run
    # loads it, so it is not counted as received by this one.
    assert (meta["rows_received"], meta["rows_loaded"]) == (len(frame) - 1, len(frame) - 2)
    assert query(duckdb_url, f"select count(*) from raw.{name}") == [(len(frame) - 2,)]
    assert _check(result, name).passed


# -- freshness -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SOURCES))
def test_stale_data_warns(name, duckdb_url, tmp_path):
    source = SOURCES[name]
    exp = source.expectation(Freshness)
    assert exp.severity == "warn"
    yesterday = _yesterday()
    window = (yesterday - dt.timedelta(days=13), yesterday)
    # The last delivery stopped one day beyond what the suite allows.
    frame = source.make(window[0], yesterday - dt.timedelta(days=exp.max_lag_days + 1))
    source.write(tmp_path, frame, fx_until=yesterday)  # the exchange rates are current

    result = source.run(duckdb_url, tmp_path, window)
    check = _check(result, name)
    failures = check.metadata["failures"].value
    latest = max(source.days(frame))
    assert (
        f"| {exp.display_name} | warn | 1 | `latest {latest} for a window ending {yesterday}`"
        in (failures)
    )
    # Staleness alone is a warning. But the window's last days are empty, and a source whose
    # volume compares single days at severity error also sees them as a drop to 0, which
    # blocks (as the daily run of such an empty day would).
    suite = load_suite(SHIPPED_SUITES / f"{name}.yaml")
    volume = next((e for e in suite.expectations if isinstance(e, Volume)), None)
    if volume is not None and volume.severity == "error" and volume.period_days == 1:
        assert not result.success
        assert check.severity == AssetCheckSeverity.ERROR
        empty = [latest + dt.timedelta(days=i) for i in range(1, (yesterday - latest).days + 1)]
        if volume.same_weekday:
            # A weekday the source never delivers on (operations: Saturday, Sunday) has a
            # median of 0 and is no drop: the last empty day that counts is the one judged.
            delivers = {day.weekday() for day in source.days(frame)}
            empty = [day for day in empty if day.weekday() in delivers]
        assert f"{empty[-1]}: 0 vs median" in str(check.metadata["volume_anomalies"].value)
    else:
        assert result.success  # a warning does not block
        assert not check.passed and check.severity == AssetCheckSeverity.WARN


# -- empty partition -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SOURCES))
def test_an_empty_partition_blocks_unless_the_source_has_quiet_days(name, duckdb_url, tmp_path):
    source = SOURCES[name]
    sunday = D(2026, 3, 8)
    # The week up to Saturday was delivered and loaded; Sunday's rows never came (the
    # exchange rates did).
    frame = source.make(sunday - dt.timedelta(days=6), sunday)
    frame = frame[source.days(frame) < sunday]
    source.write(tmp_path, frame, fx_until=sunday)
    assert source.run(
        duckdb_url, tmp_path, (sunday - dt.timedelta(days=6), sunday - dt.timedelta(days=1))
    ).success

    result = source.run(duckdb_url, tmp_path, (sunday, sunday))
    check = _check(result, name)
    assert _metadata(result, name)["rows_loaded"] == 0
    if name in EMPTY_DAYS_ALLOWED:
        # No operations output at weekends, and days without volunteer shifts, are normal.
        assert result.success and check.passed, check.metadata["failures"].value
    else:
        assert not result.success
        assert not check.passed and check.severity == AssetCheckSeverity.ERROR
        assert "| row_count(min=1) | error | 1 | 0 |" in check.metadata["failures"].value


# -- market: a monthly source --------------------------------------------------------------------


def _market(months: list[dt.date]) -> pd.DataFrame:
    return pd.DataFrame({"month": months, "market_revenue": [2_400_000.0] * len(months)})


def _write_market(root: Path, months: list[dt.date]) -> None:
    (root / "market").mkdir(parents=True, exist_ok=True)
    _market(months).to_csv(root / "market" / "data.csv", index=False, lineterminator="\n")


def _months_back(day: dt.date, n: int) -> dt.date:
    month = day.replace(day=1)
    for _ in range(n):
        month = (month - dt.timedelta(days=1)).replace(day=1)
    return month


def test_market_quarantines_months_no_partition_holds_and_warns_when_stale(duckdb_url, tmp_path):
    yesterday = _yesterday()
    first = D.fromisoformat(history_start())
    future = (yesterday.replace(day=1) + dt.timedelta(days=95)).replace(day=1)  # 3 months on
    recent = [_months_back(yesterday, n) for n in (2, 1, 0)]
    _write_market(tmp_path, [_months_back(first, 1), first, *recent, future])

    # The run reaching the last partition: the recent months load, the future one is
    # quarantined, and the latest month is fresh.
    window = (recent[0], yesterday)
    result = load(duckdb_url, tmp_path, window=window, names=["market"], raise_on_error=False)
    assert result.success and _check(result, "market").passed
    # The run reaching the first partition: the month before it is quarantined.
    result = load(duckdb_url, tmp_path, window=(first, first), names=["market"])
    assert result.success and _check(result, "market").passed
    rows = query(
        duckdb_url, "select _partition, _failed_expectations from raw.market__quarantine order by 1"
    )
    assert [r[0] for r in rows] == [_months_back(first, 1), future]
    assert rows[0][1].startswith(f"date_in_partition(month): {_months_back(first, 1)} is before")
    assert rows[1][1].startswith(f"date_in_partition(month): {future} is after today")
    assert query(duckdb_url, "select month from raw.market order by 1") == [
        (m,) for m in [first, *recent]
    ]

    # A window without the first day of a month has no market row by design: it passes.
    mid = (recent[1] + dt.timedelta(days=9), recent[1] + dt.timedelta(days=11))
    result = load(duckdb_url, tmp_path, window=mid, names=["market"])
    assert result.success and _check(result, "market").passed

    # Reports stopped four months ago: the latest month loaded is too old.
    stale_root = tmp_path / "stale"
    _write_market(stale_root, [_months_back(yesterday, n) for n in (5, 4)])
    other = duckdb_url.replace("warehouse.duckdb", "stale.duckdb")
    window = (_months_back(yesterday, 5), yesterday)
    result = load(other, stale_root, window=window, names=["market"])
    check = _check(result, "market")
    assert result.success and not check.passed and check.severity == AssetCheckSeverity.WARN
    latest = _months_back(yesterday, 4)
    assert f"`latest {latest} for a window ending {yesterday}`" in check.metadata["failures"].value


# -- GA4 reports beyond traffic ------------------------------------------------------------------


def test_ga4_ecommerce_flags_the_tracking_outage_as_a_volume_warning(duckdb_url):

    # Demo traffic ending 2026-03-10 loses 80 % of its sessions on 2026-01-29; the window
    # has nine days of history before it.
    assert outage_day(D(2026, 3, 10)) == D(2026, 1, 29)
    rows = ga4_traffic(D(2026, 1, 20), D(2026, 3, 10))
    with FakeGA4Server([_prop(rows=rows)]) as server:
        result = _run(
            server, duckdb_url, D(2026, 1, 20), D(2026, 1, 31), assets=[GA4_ASSETS["ga4_ecommerce"]]
        )
    assert result.success  # a warning: the rows are what GA4 has, the KPIs go on
    check = _check(result, "ga4_ecommerce")
    assert not check.passed and check.severity == AssetCheckSeverity.WARN
    assert [a.split(":")[0] for a in check.metadata["volume_anomalies"].value] == ["2026-01-29"]


def test_ga4_reports_block_on_an_empty_load_and_warn_when_stale(duckdb_url, tmp_path):

    names = ["ga4_ecommerce", "ga4_users_weekly", "ga4_users_monthly"]
    reports = [GA4_ASSETS[n] for n in names]
    # Nothing at all for the window: an empty load blocks each report.
    with FakeGA4Server([_prop(rows=traffic_rows([]))]) as server:
        result = _run(server, duckdb_url, DAYS[0], DAYS[-1], assets=reports)
    assert not result.success
    for name in names:
        check = _check(result, name)
        assert not check.passed and check.severity == AssetCheckSeverity.ERROR, name
        assert "row_count(min=1)" in check.metadata["failures"].value

    # Data for the first ISO week (2026-03-02..08) only, pulled through April 5th: the last
    # week, month and day pulled are missing, so each report warns that it is stale.
    other = f"duckdb:///{tmp_path / 'stale.duckdb'}"
    with FakeGA4Server([_prop(rows=_rows())]) as server:
        result = _run(server, other, DAYS[0], D(2026, 4, 5), assets=reports)
    assert result.success
    latest = {"ga4_ecommerce": "2026-03-08", "ga4_users_weekly": "2026-03-02"}
    latest["ga4_users_monthly"] = "2026-03-01"
    ends = {"ga4_ecommerce": "2026-04-05", "ga4_users_weekly": "2026-03-30"}
    ends["ga4_users_monthly"] = "2026-04-01"
    for name in names:
        check = _check(result, name)
        assert not check.passed and check.severity == AssetCheckSeverity.WARN, name
        sample = f"latest {latest[name]} for a window ending {ends[name]}"
        assert sample in check.metadata["failures"].value, name
