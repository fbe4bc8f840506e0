"""Property tests: the compiled KPI SQL against a plain pandas reference, on random data.

A small, self-contained catalogue is written to a temporary folder: one daily source with
calendar dates (``raw.traffic``) and one source of UTC timestamps with a customer id
(``raw.orders``). Its KPIs are one of each family the compiler has to get right:

- ``revenue``: a plain sum;
- ``revenue_per_session``: a ratio, sum over sum;
- ``customers``: a distinct count (not additive across days);
- ``revenue_mtd`` / ``revenue_ytd``: cumulative, month and (fiscal) year to date;
- ``revenue_per_session_7d`` / ``customers_7d``: rolling 7-day windows.

Each is refreshed through the real path (``refresh_periods`` + ``refresh_kpi_values`` into a
real DuckDB file with the pipeline's daily cubes and period rollups, and for a smaller test
the self-contained per-KPI queries on a real PostgreSQL database) at every grain it
declares, for the total and for the ``channel`` slice, and compared row by row with the
reference below. The reference implements the documented semantics on its own, with pandas
``Period`` arithmetic instead of ``kpi.compute.periods.Calendar``:

- periods are calendar periods in the reporting time zone (a timestamp counts on its local
  day), weeks start on the configured weekday, quarters and years on the fiscal month;
- there is one row per period overlapping ``first day of data .. as_of`` (times each slice
  value seen anywhere in the sources the KPI reads); days after ``as_of`` are not counted;
- a value covers ``period_start .. min(period_end, as_of)``; month/year to date covers the
  first day of the month/fiscal year of that window end up to it; rolling 7 days covers the
  7 days ending on it;
- a sum over a window without rows is 0 (gaps are zero-filled), a ratio is the sum of the
  numerator over the sum of the denominator and NULL when that is 0, a distinct count
  counts distinct non-NULL values over the whole window;
- ``sample_size`` is the number of source rows in the window whose measure is not NULL
  (the denominator's, for a ratio), ``is_complete_period`` says the period ended by
  ``as_of`` and started on or after the first day of data.

MTD is only declared at day, week and month: the catalogue rejects month-to-date at coarser
grains (checked in ``test_month_to_date_is_rejected_at_quarter_grain``); year to date covers
the quarter and year grains. The reporting zone, week start and fiscal year start are drawn
at random too.

Every example runs 10-20 compiled queries, so the example counts are small (the file runs
in ~25 s on 2 cores); ``KPI_PROPERTY_SCALE=10`` runs ten times as many. When a property
fails, Hypothesis shrinks the example for up to ~5 minutes (its own cap; each step re-runs
the SQL) before it prints a minimal one.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kpi.compute.tables import KpiTables
from kpi.language.loader import load_catalog
from kpi.language.problems import DefinitionError
from kpi.refresh import refresh_kpi_values, refresh_periods
from kpi.warehouse.connection import Warehouse

GRAINS = ("day", "week", "month", "quarter", "year")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
PANDAS_WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
PANDAS_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
# Zones with DST on either hemisphere, a half-hour offset, and a zone far from UTC.
ZONES = ("Europe/Copenhagen", "America/New_York", "Asia/Kolkata", "Pacific/Auckland", "UTC")
COMPUTED_AT = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
NOT_SET = "(not set)"
TRAFFIC_CHANNEL_MAP = {"search": "Paid Search"}

# Each example refreshes 10-20 compiled queries (~20 ms each), so the example counts are
# sized for the whole file to run in ~25 s on 2 cores; KPI_PROPERTY_SCALE=10 runs ten times
# as many examples (for a nightly run, or after touching kpi/compute/compiler.py or
# kpi/compute/periods.py).
SCALE = float(os.environ.get("KPI_PROPERTY_SCALE", "1"))


def suite(max_examples: int) -> settings:
    return settings(
        max_examples=max(1, round(max_examples * SCALE)),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# ---------------------------------------------------------------------------------------------
# The catalogue under test
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reporting:
    """The reporting settings of one example."""

    zone: str = "Europe/Copenhagen"
    week_start: str = "monday"
    fiscal_month: int = 1


SOURCES_YAML = """\
reporting:
  time_zone: {zone}
  currency: EUR
  week_start: {week_start}
  fiscal_year_start_month: {fiscal_month}
dimensions:
  channel: {{description: marketing channel}}
  device: {{description: device category}}
sources:
  traffic:
    table: raw.traffic
    description: daily sessions and revenue by channel and device
    time: {{column: date, type: date, time_zone: {zone}}}
    columns:
      date: {{type: date}}
      channel: {{type: string}}
      device: {{type: string}}
      sessions: {{type: integer, additivity: additive}}
      revenue: {{type: number, additivity: additive}}
    dimensions:
      channel: {{column: channel, map: {{search: Paid Search}}}}
      device: {{column: device}}
  orders:
    table: raw.orders
    description: one row per order, at a UTC instant
    time: {{column: ordered_at, type: timestamp, time_zone: UTC}}
    columns:
      order_id: {{type: string}}
      ordered_at: {{type: timestamp}}
      customer_id: {{type: string}}
      channel: {{type: string}}
    dimensions:
      channel: {{column: channel}}
"""

_KPI_HEADER = """\
  - id: {id}
    name: {id}
    description: property-test KPI {id}
    owner: test@example.com
    unit: {unit}
    direction: higher_is_better
    dimensions: [channel]
    grains: [{grains}]
"""

KPIS = {
    "revenue": (
        "currency",
        GRAINS,
        "type: simple\nmeasure: {source: traffic, agg: sum, expr: revenue}",
    ),
    "revenue_per_session": (
        "currency",
        GRAINS,
        "type: ratio\n"
        "numerator: {source: traffic, agg: sum, expr: revenue}\n"
        "denominator: {source: traffic, agg: sum, expr: sessions}",
    ),
    "customers": (
        "count",
        GRAINS,
        "type: simple\nmeasure: {source: orders, agg: count_distinct, expr: customer_id}",
    ),
    "revenue_mtd": (
        "currency",
        ("day", "week", "month"),
        "type: cumulative\ncumulative: {of: revenue, to_date: month}",
    ),
    "revenue_ytd": (
        "currency",
        GRAINS,
        "type: cumulative\ncumulative: {of: revenue, to_date: year}",
    ),
    "revenue_per_session_7d": (
        "currency",
        GRAINS,
        "type: cumulative\ncumulative: {of: revenue_per_session, window_days: 7}",
    ),
    "customers_7d": (
        "count",
        GRAINS,
        "type: cumulative\ncumulative: {of: customers, window_days: 7}",
    ),
}


def _kpis_yaml(kpis: dict[str, tuple[str, tuple[str, ...], str]]) -> str:
    parts = ["area: properties\nkpis:\n"]
    for kpi_id, (unit, grains, body) in kpis.items():
        parts.append(_KPI_HEADER.format(id=kpi_id, unit=unit, grains=", ".join(grains)))
        parts.append(textwrap.indent(body, "    ") + "\n")
    return "".join(parts)


def write_definitions(folder: Path, reporting: Reporting, kpis: dict | None = None) -> Path:
    """Write sources.yaml and the KPI file for ``reporting`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sources.yaml").write_text(
        SOURCES_YAML.format(
            zone=reporting.zone,
            week_start=reporting.week_start,
            fiscal_month=reporting.fiscal_month,
        )
    )
    (folder / "properties.yaml").write_text(_kpis_yaml(KPIS if kpis is None else kpis))
    return folder


@pytest.fixture(scope="module")
def kpi_tables(tmp_path_factory) -> Callable[[Reporting], KpiTables]:
    """KPI tables of the test catalogue, one per reporting setting (cached).

    ``use_cubes=True`` is the path the pipeline runs (daily cubes, period rollups and one
    fused statement for the plain KPIs); False is the self-contained query per KPI.
    """
    cache: dict[tuple[Reporting, bool], KpiTables] = {}
    root = tmp_path_factory.mktemp("definitions")

    def get(reporting: Reporting, use_cubes: bool = True) -> KpiTables:
        if (reporting, use_cubes) not in cache:
            zone = reporting.zone.replace("/", "_")
            name = f"{zone}_{reporting.week_start}_{reporting.fiscal_month}_{use_cubes}"
            folder = write_definitions(root / name, reporting)
            cache[reporting, use_cubes] = KpiTables.for_catalog(load_catalog(folder), use_cubes)
        return cache[reporting, use_cubes]

    return get


def _open(url: str, kpi_tables: Callable[[Reporting], KpiTables]) -> Warehouse:
    wh = Warehouse(url)
    wh.ensure_tables(kpi_tables(Reporting()).all_tables())
    return wh


@pytest.fixture
def duckdb_wh(duckdb_url, kpi_tables) -> Iterator[Warehouse]:
    """One DuckDB file per test function, emptied by every example."""
    wh = _open(duckdb_url, kpi_tables)
    yield wh
    wh.dispose()


@pytest.fixture
def postgres_wh(postgres_url, kpi_tables) -> Iterator[Warehouse]:
    wh = _open(postgres_url, kpi_tables)
    yield wh
    wh.dispose()


# ---------------------------------------------------------------------------------------------
# Random data
# ---------------------------------------------------------------------------------------------


@dataclass
class Example:
    """One random warehouse state: reporting settings, both sources, and the as-of date."""

    reporting: Reporting
    traffic: pd.DataFrame
    orders: pd.DataFrame
    as_of: dt.date


TRAFFIC_CHANNELS = ("search", "Paid Search", "Email", "Organic", None)
ORDER_CHANNELS = ("Paid Search", "Email", "Direct", None)
DEVICES = ("mobile", "desktop", None)
CUSTOMERS = ("c1", "c2", "c3", "c4", "c5", "c6", None)


@st.composite
def examples(draw, max_rows: int = 60, fixed_reporting: bool = False) -> Example:
    """~100 days of data with gaps, zero denominators, NULLs and a few dimension values."""
    if fixed_reporting:
        reporting = Reporting()
    else:
        reporting = Reporting(
            zone=draw(st.sampled_from(ZONES)),
            week_start=draw(st.sampled_from(WEEKDAYS)),
            fiscal_month=draw(st.integers(1, 12)),
        )
    start = draw(st.dates(dt.date(2023, 1, 1), dt.date(2026, 9, 30)))
    span = draw(st.integers(1, 100))
    # Only some days of the range get rows: the others are gaps.
    active = draw(st.lists(st.integers(0, span - 1), min_size=1, max_size=25, unique=True))

    traffic_row = st.tuples(
        st.sampled_from(active),
        st.sampled_from(TRAFFIC_CHANNELS),
        st.sampled_from(DEVICES),
        st.one_of(st.none(), st.integers(0, 3), st.just(0)),  # many zero denominators
        st.one_of(
            st.none(),
            st.just(0.0),
            st.floats(0, 1e4, allow_nan=False, allow_infinity=False, allow_subnormal=False),
        ),
    )
    traffic_rows = draw(st.lists(traffic_row, max_size=max_rows))
    traffic = pd.DataFrame(
        {
            "date": [start + dt.timedelta(days=r[0]) for r in traffic_rows],
            "channel": pd.Series([r[1] for r in traffic_rows], dtype=object),
            "device": pd.Series([r[2] for r in traffic_rows], dtype=object),
            "sessions": pd.array([r[3] for r in traffic_rows], dtype="Int64"),
            "revenue": pd.array([r[4] for r in traffic_rows], dtype="Float64"),
        }
    )

    # Orders at UTC instants around the same days; seconds spread over the whole day so
    # that the local day differs from the UTC day near midnight.
    order_row = st.tuples(
        st.sampled_from(active),
        st.integers(-86_400, 2 * 86_400 - 1),
        st.sampled_from(CUSTOMERS),
        st.sampled_from(ORDER_CHANNELS),
    )
    order_rows = draw(st.lists(order_row, max_size=max_rows))
    midnight = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    orders = pd.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(len(order_rows))],
            "ordered_at": pd.to_datetime(
                [midnight + dt.timedelta(days=r[0], seconds=r[1]) for r in order_rows], utc=True
            ),
            "customer_id": pd.Series([r[2] for r in order_rows], dtype=object),
            "channel": pd.Series([r[3] for r in order_rows], dtype=object),
        }
    )
    # The as-of date may cut the data, fall after it, or (rarely) before all of it.
    as_of = start + dt.timedelta(days=draw(st.integers(-3, span + 10)))
    return Example(reporting, traffic, orders, as_of)


# ---------------------------------------------------------------------------------------------
# The reference: plain pandas, its own calendar
# ---------------------------------------------------------------------------------------------


def _freq(grain: str, reporting: Reporting) -> str:
    """The pandas period frequency of a grain, anchored on the week start and fiscal month."""
    if grain == "day":
        return "D"
    if grain == "week":  # a week is named after its last day: the day before the week start
        return f"W-{PANDAS_WEEKDAYS[(WEEKDAYS.index(reporting.week_start) - 1) % 7]}"
    if grain == "month":
        return "M"
    last_month = PANDAS_MONTHS[(reporting.fiscal_month - 2) % 12]  # the fiscal year's last
    return f"{'Q' if grain == 'quarter' else 'Y'}-{last_month}"


@functools.lru_cache(maxsize=65_536)
def ref_period(day: dt.date, grain: str, reporting: Reporting) -> tuple[dt.date, dt.date]:
    """(first day, last day) of the period of ``grain`` that contains ``day``."""
    period = pd.Period(pd.Timestamp(day), freq=_freq(grain, reporting))
    return period.start_time.date(), period.end_time.date()


def local_days(orders: pd.DataFrame, zone: str) -> list[dt.date]:
    """The calendar day of each order in ``zone``."""
    return list(orders["ordered_at"].dt.tz_convert(zone).dt.date)


def ref_first_day(ex: Example) -> dt.date:
    days = list(ex.traffic["date"]) + local_days(ex.orders, ex.reporting.zone)
    return min([*days, ex.as_of])


def ref_periods(ex: Example, grain: str) -> list[tuple[dt.date, dt.date]]:
    """Every period of ``grain`` that overlaps the first day of data .. as_of."""
    first = ref_first_day(ex)
    days = pd.date_range(first, ex.as_of, freq="D").date
    return sorted({ref_period(d, grain, ex.reporting) for d in days})


def ref_window(kpi_id: str, end: dt.date, start: dt.date, ex: Example) -> tuple[dt.date, dt.date]:
    """The days a value of ``kpi_id`` covers for a period ``start .. end``."""
    last = min(end, ex.as_of)
    if kpi_id.endswith("_mtd"):
        return last.replace(day=1), last
    if kpi_id.endswith("_ytd"):
        return ref_period(last, "year", ex.reporting)[0], last
    if kpi_id.endswith("_7d"):
        return last - dt.timedelta(days=6), last
    return start, last


@dataclass(frozen=True)
class Row:
    period_end: dt.date
    is_complete_period: bool
    value: float | None
    numerator: float | None
    denominator: float | None
    sample_size: int


def _sum(values: list) -> float:
    """SQL SUM with zero-filled gaps: NULLs are skipped, nothing at all gives 0."""
    return float(sum(float(v) for v in values if v is not None and not pd.isna(v)))


def _records(ex: Example, from_orders: bool) -> list[tuple]:
    """Source rows as (local day, conformed channel, a, b) tuples."""
    if from_orders:
        days = local_days(ex.orders, ex.reporting.zone)
        columns = [ex.orders["channel"], ex.orders["customer_id"], ex.orders["customer_id"]]
    else:
        days = list(ex.traffic["date"])
        columns = [ex.traffic["channel"], ex.traffic["revenue"], ex.traffic["sessions"]]
    channel_map = {} if from_orders else TRAFFIC_CHANNEL_MAP  # only traffic maps its channels
    out = []
    for day, channel, a, b in zip(days, *[c.tolist() for c in columns], strict=True):
        channel = NOT_SET if pd.isna(channel) else channel_map.get(channel, channel)
        out.append((day, channel, None if pd.isna(a) else a, None if pd.isna(b) else b))
    return out


def ref_values(ex: Example, kpi_id: str, grains: tuple[str, ...]) -> dict[tuple, Row]:
    """Expected ``kpi_values`` rows keyed by (kpi_id, grain, period_start, channel)."""
    from_orders = kpi_id.startswith("customers")
    records = _records(ex, from_orders)
    channels = [None, *sorted({r[1] for r in records})]  # the total, then each slice value
    first = ref_first_day(ex)
    out: dict[tuple, Row] = {}
    for grain in grains:
        for start, end in ref_periods(ex, grain):
            lo, hi = ref_window(kpi_id, end, start, ex)
            in_window = [r for r in records if lo <= r[0] <= hi]
            complete = end <= ex.as_of and start >= first
            for channel in channels:
                rows = [r for r in in_window if channel is None or r[1] == channel]
                num = den = None
                # The sample: rows whose measure (the denominator's, for a ratio) is known.
                measured = 3 if kpi_id.startswith("revenue_per_session") else 2
                size = sum(1 for r in rows if r[measured] is not None)
                if from_orders:
                    value: float | None = float(len({r[2] for r in rows if r[2] is not None}))
                elif kpi_id.startswith("revenue_per_session"):
                    num, den = _sum([r[2] for r in rows]), _sum([r[3] for r in rows])
                    value = num / den if den != 0 else None
                else:
                    value = _sum([r[2] for r in rows])
                out[(kpi_id, grain, start, channel)] = Row(end, complete, value, num, den, size)
    return out


# ---------------------------------------------------------------------------------------------
# Running the real thing and comparing
# ---------------------------------------------------------------------------------------------


def _float(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def compute(wh: Warehouse, tables: KpiTables, ex: Example, kpi_ids: list[str]) -> dict:
    """Load ``ex`` into the (emptied) warehouse, refresh ``kpi_ids`` and read them back."""
    raw = tables.raw_tables
    wh.replace_rows(raw["traffic"], None, ex.traffic)
    wh.replace_rows(raw["orders"], None, ex.orders)
    wh.replace_rows(tables.values, None, pd.DataFrame())
    refresh_periods(wh, tables, ex.as_of)
    # The test empties kpi_values behind the refresh's back: a full refresh, not an incremental one.
    refresh_kpi_values(wh, tables, kpi_ids, computed_at=COMPUTED_AT, full_refresh=True)
    frame = wh.read(sa.select(tables.values))
    assert frame["device"].isna().all(), "the channel slice must leave `device` NULL"
    assert set(frame["kpi_id"]) <= set(kpi_ids)
    out: dict[tuple, Row] = {}
    for r in frame.itertuples(index=False):
        channel = None if pd.isna(r.channel) else r.channel
        key = (r.kpi_id, r.grain, r.period_start, channel)
        assert key not in out, f"duplicate row {key}"
        out[key] = Row(
            r.period_end,
            bool(r.is_complete_period),
            _float(r.value),
            _float(r.numerator),
            _float(r.denominator),
            int(r.sample_size),
        )
    return out


def _close(actual: float | None, expected: float | None) -> bool:
    if actual is None or expected is None:
        return actual is None and expected is None
    return actual == pytest.approx(expected, rel=1e-9)


def assert_matches(actual: dict[tuple, Row], expected: dict[tuple, Row]) -> None:
    missing = sorted(set(expected) - set(actual), key=str)
    extra = sorted(set(actual) - set(expected), key=str)
    assert not missing and not extra, f"missing rows {missing[:5]}, unexpected rows {extra[:5]}"
    wrong = []
    for key, exp in expected.items():
        got = actual[key]
        same = (
            got.period_end == exp.period_end
            and got.is_complete_period == exp.is_complete_period
            and got.sample_size == exp.sample_size
            and _close(got.value, exp.value)
            and _close(got.numerator, exp.numerator)
            and _close(got.denominator, exp.denominator)
        )
        if not same:
            wrong.append(f"{key}:\n    got      {got}\n    expected {exp}")
    assert not wrong, f"{len(wrong)} wrong row(s):\n" + "\n".join(wrong[:5])


def check(
    wh: Warehouse, kpi_tables, ex: Example, kpi_ids: list[str], use_cubes: bool = True
) -> None:
    tables = kpi_tables(ex.reporting, use_cubes)
    actual = compute(wh, tables, ex, kpi_ids)
    expected: dict[tuple, Row] = {}
    for kpi_id in kpi_ids:
        expected |= ref_values(ex, kpi_id, KPIS[kpi_id][1])
    assert_matches(actual, expected)


# ---------------------------------------------------------------------------------------------
# The properties
# ---------------------------------------------------------------------------------------------


@suite(15)
@given(ex=examples())
def test_ratio_matches_reference(duckdb_wh, kpi_tables, ex):
    # The numerator and denominator columns are the plain sums (``revenue`` itself is
    # checked on the fixed example below and through the to-date KPIs).
    check(duckdb_wh, kpi_tables, ex, ["revenue_per_session"])


@suite(15)
@given(ex=examples())
def test_count_distinct_matches_reference(duckdb_wh, kpi_tables, ex):
    check(duckdb_wh, kpi_tables, ex, ["customers"])


@suite(12)
@given(ex=examples())
def test_month_and_year_to_date_match_reference(duckdb_wh, kpi_tables, ex):
    check(duckdb_wh, kpi_tables, ex, ["revenue_mtd", "revenue_ytd"])


@suite(10)
@given(ex=examples())
def test_rolling_7_days_match_reference(duckdb_wh, kpi_tables, ex):
    check(duckdb_wh, kpi_tables, ex, ["revenue_per_session_7d", "customers_7d"])


@pytest.mark.postgres
@suite(6)
@given(ex=examples(max_rows=25))
def test_postgres_ratio_distinct_and_to_date_match_reference(postgres_wh, kpi_tables, ex):
    # The self-contained per-KPI queries here; the DuckDB properties above run the
    # pipeline's path (cubes, rollups, fused statement).
    kpis = ["revenue_per_session", "customers", "revenue_mtd"]
    check(postgres_wh, kpi_tables, ex, kpis, use_cubes=False)


# ---------------------------------------------------------------------------------------------
# The reference itself, on dates checked by hand
# ---------------------------------------------------------------------------------------------


def test_reference_calendar_on_known_dates():
    d = dt.date
    monday, sunday = Reporting(week_start="monday"), Reporting(week_start="sunday")
    # 2024-03-31 is a Sunday.
    assert ref_period(d(2024, 3, 31), "week", monday) == (d(2024, 3, 25), d(2024, 3, 31))
    assert ref_period(d(2024, 3, 31), "week", sunday) == (d(2024, 3, 31), d(2024, 4, 6))
    april = Reporting(fiscal_month=4)
    assert ref_period(d(2024, 3, 31), "quarter", april) == (d(2024, 1, 1), d(2024, 3, 31))
    assert ref_period(d(2024, 3, 31), "year", april) == (d(2023, 4, 1), d(2024, 3, 31))
    assert ref_period(d(2024, 4, 1), "year", april) == (d(2024, 4, 1), d(2025, 3, 31))
    feb = Reporting(fiscal_month=2)
    assert ref_period(d(2024, 1, 15), "quarter", feb) == (d(2023, 11, 1), d(2024, 1, 31))
    assert ref_period(d(2024, 2, 29), "month", feb) == (d(2024, 2, 1), d(2024, 2, 29))
    # 23:30 UTC on 2024-03-30 is already the 31st in Copenhagen; 22:30 UTC on the 31st
    # (after the switch to summer time) is 00:30 on 1 April.
    orders = pd.DataFrame(
        {"ordered_at": pd.to_datetime(["2024-03-30 23:30", "2024-03-31 22:30"], utc=True)}
    )
    assert list(local_days(orders, "Europe/Copenhagen")) == [d(2024, 3, 31), d(2024, 4, 1)]


def test_month_to_date_is_rejected_at_quarter_grain(tmp_path):
    kpis = {
        "revenue": KPIS["revenue"],
        "revenue_mtd": ("currency", ("month", "quarter"), KPIS["revenue_mtd"][2]),
    }
    with pytest.raises(DefinitionError, match="month-to-date cannot be reported"):
        load_catalog(write_definitions(tmp_path, Reporting(), kpis))


def test_zero_filled_gap_and_zero_denominator_on_a_fixed_example(duckdb_wh, kpi_tables):
    """A readable anchor for the properties: two days with a gap between them."""
    d = dt.date
    traffic = pd.DataFrame(
        {
            "date": [d(2024, 5, 1), d(2024, 5, 3)],
            "channel": ["search", "Email"],
            "device": ["mobile", "mobile"],
            "sessions": pd.array([4, 0], dtype="Int64"),
            "revenue": [10.0, 5.0],
        }
    )
    orders = pd.DataFrame(
        {
            "order_id": pd.Series([], dtype=object),
            "ordered_at": pd.to_datetime([], utc=True),
            "customer_id": pd.Series([], dtype=object),
            "channel": pd.Series([], dtype=object),
        }
    )
    ex = Example(Reporting(), traffic, orders, d(2024, 5, 3))
    kpi_ids = ["revenue", "revenue_per_session"]
    actual = compute(duckdb_wh, kpi_tables(ex.reporting), ex, kpi_ids)
    gap = actual[("revenue_per_session", "day", d(2024, 5, 2), None)]
    assert (gap.value, gap.numerator, gap.denominator, gap.sample_size) == (None, 0.0, 0.0, 0)
    email = actual[("revenue_per_session", "day", d(2024, 5, 3), "Email")]
    assert (email.value, email.numerator, email.denominator) == (None, 5.0, 0.0)
    month = actual[("revenue_per_session", "month", d(2024, 5, 1), None)]
    assert month.value == pytest.approx(15.0 / 4) and not month.is_complete_period
    assert actual[("revenue", "day", d(2024, 5, 2), "Paid Search")].value == 0.0
    assert_matches(
        actual, ref_values(ex, "revenue", GRAINS) | ref_values(ex, "revenue_per_session", GRAINS)
    )
