"""The KPI compiler end to end, on a real DuckDB file and a real PostgreSQL database.

Each test is data: a few source rows, KPI definitions, and the rows expected from
``KpiCompiler.compile``, worked out by hand in the comments. Every test runs on both
warehouses (``warehouse_url``), so both must give exactly these numbers.

Weekdays: 2026-01-05, 01-12, 01-26, 02-02, 10-05, 10-26, 11-02 and 11-23 are Mondays.
"""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest
import yaml

from kpi.compute.tables import KpiTables
from kpi.language.loader import load_catalog
from kpi.refresh import refresh_kpi_values, refresh_periods
from kpi.warehouse.connection import Warehouse

D = dt.date
UTC = "UTC"

SOURCES = """\
reporting:
  time_zone: Europe/Copenhagen
  currency: EUR
  week_start: {week_start}
  fiscal_year_start_month: 1
dimensions:
  channel: {{description: one channel vocabulary for every source}}
  device: {{description: "desktop, mobile or tablet"}}
sources:
  traffic:
    table: raw.traffic
    time: {{column: date, type: date, time_zone: Europe/Copenhagen}}
    columns:
      date: {{type: date}}
      channel: {{type: string}}
      device: {{type: string}}
      sessions: {{type: integer, additivity: additive}}
      engaged: {{type: integer, additivity: additive}}
      conversions: {{type: integer, additivity: additive}}
      revenue: {{type: number, additivity: additive}}
    dimensions:
      channel: {{column: channel}}
      device: {{column: device}}
  spend:
    table: raw.spend
    time: {{column: date, type: date, time_zone: Europe/Copenhagen}}
    columns:
      date: {{type: date}}
      channel: {{type: string, description: the ad platform's own vocabulary}}
      cost: {{type: number, additivity: additive}}
    dimensions:
      channel:
        column: channel
        map: {{search: Paid Search, social: Paid Social}}
  orders:
    table: raw.orders
    time: {{column: ordered_at, type: timestamp, time_zone: UTC}}
    columns:
      order_id: {{type: string}}
      ordered_at: {{type: timestamp}}
      customer_id: {{type: string}}
      channel: {{type: string}}
      revenue: {{type: number, additivity: additive}}
    dimensions:
      channel: {{column: channel}}
  balances:
    table: raw.balances
    time: {{column: date, type: date, time_zone: Europe/Copenhagen}}
    columns:
      date: {{type: date}}
      channel: {{type: string}}
      subscribers: {{type: integer, additivity: semi_additive}}
    dimensions:
      channel: {{column: channel}}
"""


def kpi(kpi_id, **fields):
    """A KPI definition as YAML data, with the descriptive fields filled in."""
    return {
        "id": kpi_id,
        "name": kpi_id,
        "description": "test KPI",
        "owner": "t@example.com",
        "unit": "count",
        "direction": "higher_is_better",
        "type": "simple",
        **fields,
    }


def sum_of(source, expr, **extra):
    return {"source": source, "agg": "sum", "expr": expr, **extra}


def ts(text):
    """A UTC timestamp."""
    return pd.Timestamp(text, tz=UTC)


def order(order_id, utc_time, customer_id, channel, revenue):
    return {
        "order_id": order_id,
        "ordered_at": ts(utc_time),
        "customer_id": customer_id,
        "channel": channel,
        "revenue": revenue,
    }


class Env:
    def __init__(self, wh, tables):
        self.wh, self.tables = wh, tables

    def frame(self, kpi_id, grain, dims=()):
        return self.wh.read(self.tables.compiler.compile(kpi_id, grain, tuple(dims)))

    def values(self, kpi_id, grain, dims=(), column="value"):
        """{period_start: value} for the total, {(period_start, *dims): value} for slices."""
        out = {}
        for row in self.frame(kpi_id, grain, dims).to_dict("records"):
            key = _date(row["period_start"])
            if dims:
                key = (key, *[row[d] for d in dims])
            out[key] = _num(row[column])
        return out


def _date(value):
    return value if type(value) is dt.date else pd.Timestamp(value).date()


def _num(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


@pytest.fixture
def build(tmp_path, warehouse_url):
    """build(kpis, rows, as_of): definitions in tmp_path, rows loaded, periods refreshed."""
    engines = []

    def _build(kpis, rows, as_of, week_start="monday"):
        folder = tmp_path / "defs"
        folder.mkdir(exist_ok=True)
        (folder / "sources.yaml").write_text(SOURCES.format(week_start=week_start))
        (folder / "test.yaml").write_text(yaml.safe_dump({"area": "test", "kpis": kpis}))
        catalog = load_catalog(folder)
        tables = KpiTables.for_catalog(catalog)
        wh = Warehouse(warehouse_url)
        engines.append(wh)
        wh.ensure_tables(tables.all_tables())
        for source, records in rows.items():
            wh.replace_rows(tables.raw_tables[source], None, pd.DataFrame(records))
        refresh_periods(wh, tables, as_of)
        return Env(wh, tables)

    yield _build
    for wh in engines:
        wh.dispose()


def traffic(*rows, columns=("date", "channel", "sessions")):
    return [dict(zip(columns, r, strict=True)) for r in rows]


# ---------------------------------------------------------------------------------------------
# Sums and gaps
# ---------------------------------------------------------------------------------------------


def test_sum_with_gaps(build):
    env = build(
        [kpi("sessions", measure=sum_of("traffic", "sessions"), dimensions=["channel"])],
        {
            "traffic": traffic(
                (D(2026, 1, 5), "Organic Search", 10),
                (D(2026, 1, 5), "Paid Search", 5),
                (D(2026, 1, 7), "Organic Search", 7),
                (D(2026, 1, 12), "Organic Search", 3),
                (D(2026, 2, 2), "Organic Search", 20),
            )
        },
        as_of=D(2026, 2, 3),
    )
    days = env.values("sessions", "day")
    # 01-05 .. 02-03 = 27 + 3 = 30 days, every one present; days without rows are 0.
    assert len(days) == 30
    assert days[D(2026, 1, 5)] == 15  # 10 + 5
    assert days[D(2026, 1, 6)] == 0
    assert days[D(2026, 1, 7)] == 7
    assert days[D(2026, 2, 2)] == 20
    assert days[D(2026, 2, 3)] == 0
    assert sum(days.values()) == 45
    assert sum(v == 0 for v in days.values()) == 26  # 30 days, 4 with rows
    # Weeks: 15 + 7 = 22; 3; two empty weeks; 20.
    assert env.values("sessions", "week") == {
        D(2026, 1, 5): 22,
        D(2026, 1, 12): 3,
        D(2026, 1, 19): 0,
        D(2026, 1, 26): 0,
        D(2026, 2, 2): 20,
    }
    assert env.values("sessions", "month") == {D(2026, 1, 1): 25, D(2026, 2, 1): 20}
    # By channel: Paid Search has no February rows but still gets its 0.
    assert env.values("sessions", "month", ["channel"]) == {
        (D(2026, 1, 1), "Organic Search"): 20,
        (D(2026, 1, 1), "Paid Search"): 5,
        (D(2026, 2, 1), "Organic Search"): 20,
        (D(2026, 2, 1), "Paid Search"): 0,
    }
    # Sample size = source rows: January 4, February 1, an empty day 0.
    assert env.values("sessions", "month", column="sample_size") == {
        D(2026, 1, 1): 4,
        D(2026, 2, 1): 1,
    }
    assert env.values("sessions", "day", column="sample_size")[D(2026, 1, 6)] == 0
    # January began before the first data day (01-05), February is open: neither complete.
    months = env.frame("sessions", "month")
    assert months.is_complete_period.tolist() == [False, False]
    weeks = env.frame("sessions", "week").set_index("period_start")
    assert bool(weeks.is_complete_period.iloc[1]) is True  # week of 01-12
    # Other dimension columns of a total row are NULL; the slice row names its channel.
    assert months.channel.isna().all() and months.device.isna().all()


def test_null_dimension_value_is_not_set(build):
    env = build(
        [kpi("sessions", measure=sum_of("traffic", "sessions"), dimensions=["channel"])],
        {"traffic": traffic((D(2026, 1, 5), None, 4), (D(2026, 1, 5), "Direct", 1))},
        as_of=D(2026, 1, 5),
    )
    assert env.values("sessions", "day", ["channel"]) == {
        (D(2026, 1, 5), "(not set)"): 4,
        (D(2026, 1, 5), "Direct"): 1,
    }


# ---------------------------------------------------------------------------------------------
# Ratios
# ---------------------------------------------------------------------------------------------

CONVERSION_RATE = kpi(
    "conversion_rate",
    unit="percent",
    type="ratio",
    numerator=sum_of("traffic", "conversions"),
    denominator=sum_of("traffic", "sessions"),
    dimensions=["channel"],
    grains=["day", "week", "month"],
)


def test_ratio_is_sum_over_sum(build):
    env = build(
        [CONVERSION_RATE],
        {
            "traffic": traffic(
                (D(2026, 1, 5), "Organic Search", 100, 1),
                (D(2026, 1, 6), "Organic Search", 10, 1),
                (D(2026, 1, 7), "Paid Search", 40, 2),
                columns=("date", "channel", "sessions", "conversions"),
            )
        },
        as_of=D(2026, 1, 7),
    )
    # Days: 1/100, 1/10, 2/40.
    assert env.values("conversion_rate", "day") == {
        D(2026, 1, 5): pytest.approx(0.01),
        D(2026, 1, 6): pytest.approx(0.1),
        D(2026, 1, 7): pytest.approx(0.05),
    }
    # Week and month: (1 + 1 + 2) / (100 + 10 + 40) = 4 / 150 = 0.02667, not the mean of
    # the daily rates (0.01 + 0.1 + 0.05) / 3 = 0.0533.
    for grain, start in (("week", D(2026, 1, 5)), ("month", D(2026, 1, 1))):
        row = env.frame("conversion_rate", grain).iloc[0]
        assert _date(row.period_start) == start
        assert row.value == pytest.approx(4 / 150)
        assert (row.numerator, row.denominator) == (4, 150)
        assert row.sample_size == 3  # rows behind the denominator
    # Per channel, the week re-divides each channel's sums: 2/110 and 2/40.
    assert env.values("conversion_rate", "week", ["channel"]) == {
        (D(2026, 1, 5), "Organic Search"): pytest.approx(2 / 110),
        (D(2026, 1, 5), "Paid Search"): pytest.approx(0.05),
    }


def test_zero_denominator_is_null(build):
    env = build(
        [CONVERSION_RATE],
        {
            "traffic": traffic(
                (D(2026, 1, 5), "Organic Search", 0, 3),  # 3 / 0
                (D(2026, 1, 7), "Organic Search", 10, 1),
                columns=("date", "channel", "sessions", "conversions"),
            )
        },
        as_of=D(2026, 1, 7),
    )
    days = env.frame("conversion_rate", "day").set_index("period_start")
    # 01-05: 3 / 0 -> NULL, not inf and no error; 01-06 (no rows): 0 / 0 -> NULL.
    assert [_num(v) for v in days.value] == [None, None, pytest.approx(0.1)]
    assert days.numerator.tolist() == [3, 0, 1]
    assert days.denominator.tolist() == [0, 0, 10]
    # Week: (3 + 1) / (0 + 10) = 0.4.
    assert env.values("conversion_rate", "week") == {D(2026, 1, 5): pytest.approx(0.4)}


# ---------------------------------------------------------------------------------------------
# Other aggregations
# ---------------------------------------------------------------------------------------------


def test_count_distinct_is_not_additive(build):
    unique_customers = kpi(
        "unique_customers",
        measure={"source": "orders", "agg": "count_distinct", "expr": "customer_id"},
        dimensions=["channel"],
    )
    orders = [
        order("o1", "2026-01-05 10:00", "c1", "web", 10.0),
        order("o2", "2026-01-06 10:00", "c1", "web", 20.0),
        order("o3", "2026-01-06 11:00", "c2", "app", 30.0),
        order("o4", "2026-02-02 10:00", "c1", "web", 40.0),
    ]
    env = build([unique_customers], {"orders": orders}, as_of=D(2026, 2, 2))
    days = env.values("unique_customers", "day")
    # c1 on 01-05; c1 and c2 on 01-06; nobody on 01-07; c1 on 02-02.
    assert (days[D(2026, 1, 5)], days[D(2026, 1, 6)], days[D(2026, 1, 7)]) == (1, 2, 0)
    assert days[D(2026, 2, 2)] == 1
    # The week of 01-05 has 2 distinct customers, not 1 + 2 = 3 from the days.
    assert env.values("unique_customers", "week")[D(2026, 1, 5)] == 2
    # January: c1 and c2 = 2 (the day rows sum to 3); February: c1 = 1.
    assert env.values("unique_customers", "month") == {D(2026, 1, 1): 2, D(2026, 2, 1): 1}
    assert env.values("unique_customers", "month", ["channel"]) == {
        (D(2026, 1, 1), "app"): 1,
        (D(2026, 1, 1), "web"): 1,  # c1 twice in January: once
        (D(2026, 2, 1), "app"): 0,
        (D(2026, 2, 1), "web"): 1,
    }
    assert env.values("unique_customers", "month", column="sample_size")[D(2026, 1, 1)] == 3


def test_average_over_rows_not_over_days(build):
    avg = kpi("avg_sessions", measure={"source": "traffic", "agg": "average", "expr": "sessions"})
    env = build(
        [avg],
        {
            "traffic": traffic(
                (D(2026, 1, 5), "Organic Search", 10),
                (D(2026, 1, 5), "Paid Search", 20),
                (D(2026, 1, 6), "Organic Search", 60),
            )
        },
        as_of=D(2026, 1, 7),
    )
    # Days: (10 + 20) / 2 = 15; 60; no rows -> NULL (not 0).
    assert env.values("avg_sessions", "day") == {
        D(2026, 1, 5): 15,
        D(2026, 1, 6): 60,
        D(2026, 1, 7): None,
    }
    # Week and month: 90 / 3 = 30, not the mean of daily averages (15 + 60) / 2 = 37.5.
    week = env.frame("avg_sessions", "week").iloc[0]
    assert (week.value, week.numerator, week.denominator) == (30, 90, 3)
    assert env.values("avg_sessions", "month") == {D(2026, 1, 1): 30}


def test_count_with_filter_min_and_max(build):
    kpis = [
        # Share of rows with 10+ sessions among rows with a conversions value (CSAT-style).
        kpi(
            "busy_share",
            unit="percent",
            type="ratio",
            numerator={"source": "traffic", "agg": "count", "filter": "sessions >= 10"},
            denominator={"source": "traffic", "agg": "count", "expr": "conversions"},
        ),
        kpi("min_sessions", measure={"source": "traffic", "agg": "min", "expr": "sessions"}),
        kpi("max_sessions", measure={"source": "traffic", "agg": "max", "expr": "sessions"}),
        kpi("avg_conv", measure={"source": "traffic", "agg": "average", "expr": "conversions"}),
    ]
    env = build(
        kpis,
        {
            "traffic": traffic(
                (D(2026, 1, 5), "a", 12, 1),
                (D(2026, 1, 5), "b", 3, None),
                (D(2026, 1, 6), "a", 10, 3),
                (D(2026, 1, 6), "b", 9, 0),
                columns=("date", "channel", "sessions", "conversions"),
            )
        },
        as_of=D(2026, 1, 7),
    )
    # 01-05: 1 row with 10+ sessions / 1 non-null conversions = 1.0; 01-06: 1 / 2 = 0.5;
    # week: 2 / 3. 01-07: 0 / 0 -> NULL.
    assert env.values("busy_share", "day") == {
        D(2026, 1, 5): pytest.approx(1.0),
        D(2026, 1, 6): pytest.approx(0.5),
        D(2026, 1, 7): None,
    }
    assert env.values("busy_share", "week") == {D(2026, 1, 5): pytest.approx(2 / 3)}
    # min / max over rows: days 3 / 12 and 9 / 10; week 3 / 12; an empty day has none.
    assert env.values("min_sessions", "day") == {
        D(2026, 1, 5): 3,
        D(2026, 1, 6): 9,
        D(2026, 1, 7): None,
    }
    assert env.values("max_sessions", "week") == {D(2026, 1, 5): 12}
    assert env.values("min_sessions", "month") == {D(2026, 1, 1): 3}
    # average skips NULLs: 01-05 = 1 / 1 = 1 (not 1 / 2); week (1 + 3 + 0) / 3.
    assert env.values("avg_conv", "day")[D(2026, 1, 5)] == 1
    assert env.values("avg_conv", "week") == {D(2026, 1, 5): pytest.approx(4 / 3)}


def test_last_takes_the_last_day_of_the_period(build):
    subscribers = kpi(
        "subscribers",
        measure={"source": "balances", "agg": "last", "expr": "subscribers"},
        dimensions=["channel"],
    )
    rows = [
        {"date": d, "channel": c, "subscribers": n}
        for d, c, n in [
            (D(2026, 1, 5), "a", 100),
            (D(2026, 1, 5), "b", 50),
            (D(2026, 1, 6), "a", 110),
            (D(2026, 1, 6), "b", 55),
            (D(2026, 1, 12), "a", 130),
            (D(2026, 1, 12), "b", 60),
        ]
    ]
    env = build([subscribers], {"balances": rows}, as_of=D(2026, 1, 13))
    # Days add across channels: 150, 165; 01-12: 190.
    days = env.values("subscribers", "day")
    assert (days[D(2026, 1, 5)], days[D(2026, 1, 6)], days[D(2026, 1, 12)]) == (150, 165, 190)
    # Week of 01-05: the last day with data is 01-06 -> 165 (not 150 + 165 = 315).
    # Week of 01-12 (open at 01-13): 190. January: 190.
    assert env.values("subscribers", "week") == {D(2026, 1, 5): 165, D(2026, 1, 12): 190}
    assert env.values("subscribers", "month") == {D(2026, 1, 1): 190}
    assert env.values("subscribers", "week", ["channel"]) == {
        (D(2026, 1, 5), "a"): 110,
        (D(2026, 1, 5), "b"): 55,
        (D(2026, 1, 12), "a"): 130,
        (D(2026, 1, 12), "b"): 60,
    }
    # A day without a balance has no value (a balance is not zero).
    assert days[D(2026, 1, 7)] is None
    assert env.values("subscribers", "day", column="sample_size")[D(2026, 1, 7)] == 0


# ---------------------------------------------------------------------------------------------
# Time zones
# ---------------------------------------------------------------------------------------------


def test_timestamps_are_dated_in_the_reporting_time_zone(build):
    revenue = kpi(
        "order_revenue",
        unit="currency",
        measure=sum_of("orders", "revenue"),
        grains=["day", "month"],
    )
    orders = [
        order("o1", "2026-01-15 12:00", "c", "web", 1.0),
        order("o2", "2026-01-31 22:30", "c", "web", 10.0),  # 23:30 CET, still January 31
        order("o3", "2026-01-31 23:30", "c", "web", 100.0),  # 00:30 CET on February 1
        order("o4", "2026-06-30 21:30", "c", "web", 1000.0),  # 23:30 CEST, still June 30
        order("o5", "2026-06-30 22:30", "c", "web", 10000.0),  # 00:30 CEST on July 1
    ]
    env = build([revenue], {"orders": orders}, as_of=D(2026, 7, 1))
    # In UTC January would hold 111 and July nothing.
    assert env.values("order_revenue", "month") == {
        D(2026, 1, 1): 11,
        D(2026, 2, 1): 100,
        D(2026, 3, 1): 0,
        D(2026, 4, 1): 0,
        D(2026, 5, 1): 0,
        D(2026, 6, 1): 1000,
        D(2026, 7, 1): 10000,
    }
    days = env.values("order_revenue", "day")
    assert days[D(2026, 1, 31)] == 10
    assert days[D(2026, 2, 1)] == 100
    assert days[D(2026, 6, 30)] == 1000
    assert days[D(2026, 7, 1)] == 10000
    # The periods start on the first local day of data, 01-15: 17 + 28 + 31 + 30 + 31 + 30 + 1.
    assert len(days) == 168


# ---------------------------------------------------------------------------------------------
# Conformed dimensions across sources
# ---------------------------------------------------------------------------------------------

ROAS = kpi(
    "roas",
    unit="ratio",
    type="ratio",
    numerator=sum_of("traffic", "revenue", filter="channel in ('Paid Search', 'Paid Social')"),
    denominator=sum_of("spend", "cost"),
    dimensions=["channel"],
)
AD_COST = kpi("ad_cost", unit="currency", measure=sum_of("spend", "cost"), dimensions=["channel"])
PAID_SEARCH_COST = kpi(
    "paid_search_cost",
    unit="currency",
    measure=sum_of("spend", "cost", filter="channel == 'Paid Search'"),
)

CROSS_SOURCE_ROWS = {
    "traffic": traffic(
        (D(2026, 1, 5), "Paid Search", "desktop", 200.0),
        (D(2026, 1, 5), "Paid Search", "mobile", 100.0),
        (D(2026, 1, 5), "Paid Social", "mobile", 50.0),
        (D(2026, 1, 5), "Organic Search", "desktop", 1000.0),
        columns=("date", "channel", "device", "revenue"),
    ),
    # The ad platforms call the channels `search` and `social`.
    "spend": [
        {"date": D(2026, 1, 5), "channel": "search", "cost": 100.0},
        {"date": D(2026, 1, 5), "channel": "social", "cost": 100.0},
    ],
}


def test_cross_source_ratio_joins_on_the_conformed_channel(build):
    env = build([ROAS, AD_COST], CROSS_SOURCE_ROWS, as_of=D(2026, 1, 5))
    # Total: (200 + 100 + 50) / (100 + 100) = 1.75; Organic revenue is filtered out.
    assert env.values("roas", "day") == {D(2026, 1, 5): pytest.approx(1.75)}
    # By channel, each side summed first: Paid Search (200 + 100) / 100 = 3.0 (joining the
    # two traffic rows to the one spend row first would give 300 / 200 = 1.5); Paid Social
    # 50 / 100 = 0.5; Organic Search has no cost: 0 / 0 -> NULL. No `search`/`social` rows.
    assert env.values("roas", "day", ["channel"]) == {
        (D(2026, 1, 5), "Organic Search"): None,
        (D(2026, 1, 5), "Paid Search"): pytest.approx(3.0),
        (D(2026, 1, 5), "Paid Social"): pytest.approx(0.5),
    }
    assert env.values("roas", "day", ["channel"], column="denominator") == {
        (D(2026, 1, 5), "Organic Search"): 0,
        (D(2026, 1, 5), "Paid Search"): 100,
        (D(2026, 1, 5), "Paid Social"): 100,
    }
    # The spend source alone is reported in the conformed vocabulary too.
    assert env.values("ad_cost", "day", ["channel"]) == {
        (D(2026, 1, 5), "Paid Search"): 100,
        (D(2026, 1, 5), "Paid Social"): 100,
    }


def test_filter_on_a_mapped_dimension_uses_the_conformed_vocabulary(build):
    env = build([PAID_SEARCH_COST], CROSS_SOURCE_ROWS, as_of=D(2026, 1, 5))
    # Only the `search` row maps to Paid Search: 100.
    assert env.values("paid_search_cost", "day") == {D(2026, 1, 5): 100}


# ---------------------------------------------------------------------------------------------
# Derived, cumulative, period over period
# ---------------------------------------------------------------------------------------------


def test_derived_one_minus_ratio(build):
    engagement = kpi(
        "engagement_rate",
        unit="percent",
        type="ratio",
        numerator=sum_of("traffic", "engaged"),
        denominator=sum_of("traffic", "sessions"),
    )
    bounce = kpi(
        "bounce_rate",
        unit="percent",
        direction="lower_is_better",
        type="derived",
        expr="1 - engagement_rate",
    )
    env = build(
        [engagement, bounce],
        {
            "traffic": traffic(
                (D(2026, 1, 5), "Organic Search", 100, 60),
                (D(2026, 1, 6), "Organic Search", 10, 10),
                columns=("date", "channel", "sessions", "engaged"),
            )
        },
        as_of=D(2026, 1, 7),
    )
    # Days: 1 - 60/100 = 0.4; 1 - 10/10 = 0; no sessions -> NULL (not 1 - 0 = 1).
    assert env.values("bounce_rate", "day") == {
        D(2026, 1, 5): pytest.approx(0.4),
        D(2026, 1, 6): pytest.approx(0.0),
        D(2026, 1, 7): None,
    }
    # Week and month: 1 - 70/110 = 40/110 = 0.3636 (the mean of daily bounce would be 0.2).
    assert env.values("bounce_rate", "week") == {D(2026, 1, 5): pytest.approx(40 / 110)}
    assert env.values("bounce_rate", "month") == {D(2026, 1, 1): pytest.approx(40 / 110)}
    # A derived value carries the sample size of its input.
    assert env.values("bounce_rate", "week", column="sample_size") == {D(2026, 1, 5): 2}


def test_month_to_date_and_rolling_seven_days(build):
    revenue = kpi("revenue", unit="currency", measure=sum_of("traffic", "revenue"))
    mtd = kpi(
        "revenue_mtd",
        unit="currency",
        type="cumulative",
        cumulative={"of": "revenue", "to_date": "month"},
    )
    r7 = kpi(
        "revenue_7d",
        unit="currency",
        type="cumulative",
        cumulative={"of": "revenue", "window_days": 7},
        grains=["day", "week"],
    )
    # Revenue doubles each day: 01-26 = 1, 01-27 = 2, ... 02-03 = 256.
    start = D(2026, 1, 26)
    rows = traffic(
        *[(start + dt.timedelta(days=i), "Direct", float(2**i)) for i in range(9)],
        columns=("date", "channel", "revenue"),
    )
    env = build([revenue, mtd, r7], {"traffic": rows}, as_of=D(2026, 2, 3))
    # Month to date restarts on 02-01: 1, 3, 7, 15, 31, 63 | 64, 192, 448.
    assert env.values("revenue_mtd", "day") == {
        D(2026, 1, 26): 1,
        D(2026, 1, 27): 3,
        D(2026, 1, 28): 7,
        D(2026, 1, 29): 15,
        D(2026, 1, 30): 31,
        D(2026, 1, 31): 63,
        D(2026, 2, 1): 64,
        D(2026, 2, 2): 192,
        D(2026, 2, 3): 448,
    }
    # A week's month-to-date is taken at its last day: Sun 02-01 -> 64; the open week
    # ends at as_of 02-03 -> 64 + 128 + 256 = 448.
    assert env.values("revenue_mtd", "week") == {D(2026, 1, 26): 64, D(2026, 2, 2): 448}
    assert env.values("revenue_mtd", "month") == {D(2026, 1, 1): 63, D(2026, 2, 1): 448}
    # Rolling 7 days: 01-27 -> 1 + 2 = 3 (no data before 01-26); 02-01 -> 01-26..02-01 =
    # 127; 02-03 -> 01-28..02-03 = 4 + 8 + ... + 256 = 508.
    r7_days = env.values("revenue_7d", "day")
    assert (r7_days[D(2026, 1, 27)], r7_days[D(2026, 2, 1)], r7_days[D(2026, 2, 3)]) == (
        3,
        127,
        508,
    )
    assert env.values("revenue_7d", "week") == {D(2026, 1, 26): 127, D(2026, 2, 2): 508}


def test_period_over_period_compares_the_same_days(build):
    revenue = kpi(
        "revenue", unit="currency", measure=sum_of("traffic", "revenue"), grains=["week", "month"]
    )
    mom = kpi(
        "revenue_growth",
        unit="percent",
        type="period_over_period",
        period_over_period={"of": "revenue", "offset": "previous_period"},
        grains=["week", "month"],
    )
    yoy = kpi(
        "revenue_yoy",
        unit="percent",
        type="period_over_period",
        period_over_period={"of": "revenue", "offset": "same_period_last_year"},
        grains=["month"],
    )
    rows = traffic(
        (D(2025, 11, 5), "Direct", 5.0),
        (D(2025, 11, 28), "Direct", 1000.0),  # after the 27th: outside the to-date window
        (D(2026, 10, 5), "Direct", 10.0),
        (D(2026, 10, 30), "Direct", 100.0),
        (D(2026, 11, 5), "Direct", 15.0),
        columns=("date", "channel", "revenue"),
    )
    env = build([revenue, mom, yoy], {"traffic": rows}, as_of=D(2026, 11, 27))
    months = env.frame("revenue_growth", "month").set_index("period_start")
    nov, oct_ = months.loc[D(2026, 11, 1)], months.loc[D(2026, 10, 1)]
    # November is open (1..27): 15 against October 1..27 = 10 -> (15 - 10) / 10 = +0.5,
    # not against the whole of October (110): -0.86.
    assert bool(nov.is_complete_period) is False
    assert (nov.numerator, nov.denominator) == (15, 10)
    assert nov.value == pytest.approx(0.5)
    # October: 110 against September = 0 -> growth NULL (not inf, not an error).
    assert (oct_.numerator, oct_.denominator) == (110, 0)
    assert _num(oct_.value) is None
    # Weeks: Mon 11-02 (15) vs Mon 10-26 (100 on Fri 10-30) -> -0.85; 11-09: 0 vs 15 -> -1;
    # the open week 11-23 (Mon..Fri) vs 11-16..11-20: 0 vs 0 -> NULL; 10-05: 10 vs 0 -> NULL.
    weeks = env.values("revenue_growth", "week")
    assert weeks[D(2026, 11, 2)] == pytest.approx(-0.85)
    assert weeks[D(2026, 11, 9)] == pytest.approx(-1.0)
    assert weeks[D(2026, 11, 23)] is None
    assert weeks[D(2026, 10, 5)] is None
    # Year over year, to date: Nov 1..27 2026 = 15 vs Nov 1..27 2025 = 5 (the 1000 on
    # 2025-11-28 is outside) -> +2.0.
    yoy_nov = env.frame("revenue_yoy", "month").set_index("period_start").loc[D(2026, 11, 1)]
    assert (yoy_nov.numerator, yoy_nov.denominator) == (15, 5)
    assert yoy_nov.value == pytest.approx(2.0)


def test_period_over_period_of_a_cumulative_kpi(build):
    revenue = kpi("revenue", unit="currency", measure=sum_of("traffic", "revenue"))
    mtd = kpi(
        "revenue_mtd",
        unit="currency",
        type="cumulative",
        cumulative={"of": "revenue", "to_date": "month"},
        grains=["month"],
    )
    growth = kpi(
        "revenue_mtd_growth",
        unit="percent",
        type="period_over_period",
        period_over_period={"of": "revenue_mtd"},
        grains=["month"],
    )
    rows = traffic(
        (D(2026, 10, 5), "Direct", 10.0),
        (D(2026, 10, 30), "Direct", 100.0),
        (D(2026, 11, 5), "Direct", 15.0),
        columns=("date", "channel", "revenue"),
    )
    env = build([revenue, mtd, growth], {"traffic": rows}, as_of=D(2026, 11, 27))
    nov = env.frame("revenue_mtd_growth", "month").set_index("period_start").loc[D(2026, 11, 1)]
    # November to date (15) against October to the same day (10): +0.5.
    assert (nov.numerator, nov.denominator) == (15, 10)
    assert nov.value == pytest.approx(0.5)


# ---------------------------------------------------------------------------------------------
# Calendar configuration
# ---------------------------------------------------------------------------------------------


def test_weeks_start_on_sunday(build):
    env = build(
        [kpi("sessions", measure=sum_of("traffic", "sessions"))],
        {
            "traffic": traffic(
                (D(2026, 1, 3), "Direct", 1),  # Saturday
                (D(2026, 1, 4), "Direct", 2),  # Sunday
                (D(2026, 1, 10), "Direct", 4),  # Saturday
                (D(2026, 1, 11), "Direct", 8),  # Sunday
            )
        },
        as_of=D(2026, 1, 11),
        week_start="sunday",
    )
    # Sunday weeks: 12-28..01-03 = 1; 01-04..01-10 = 2 + 4 = 6; 01-11.. = 8.
    # (Monday weeks would give 12-29: 1 + 2 = 3 and 01-05: 4 + 8 = 12.)
    assert env.values("sessions", "week") == {
        D(2025, 12, 28): 1,
        D(2026, 1, 4): 6,
        D(2026, 1, 11): 8,
    }
    weeks = env.frame("sessions", "week")
    assert [_date(d) for d in weeks.period_end] == [D(2026, 1, 3), D(2026, 1, 10), D(2026, 1, 17)]


# ---------------------------------------------------------------------------------------------
# DuckDB and PostgreSQL give identical rows
# ---------------------------------------------------------------------------------------------


def test_duckdb_and_postgresql_give_identical_kpi_values(tmp_path, duckdb_url, postgres_url):
    kpis = [
        kpi("sessions", measure=sum_of("traffic", "sessions"), dimensions=["channel", "device"]),
        CONVERSION_RATE,
        ROAS,
        kpi(
            "bounce",
            unit="percent",
            type="derived",
            expr="1 - conversion_rate / 2",
            dimensions=["channel"],
        ),
        kpi(
            "unique_customers",
            measure={"source": "orders", "agg": "count_distinct", "expr": "customer_id"},
        ),
        kpi("order_revenue", unit="currency", measure=sum_of("orders", "revenue")),
        kpi(
            "subscribers",
            measure={"source": "balances", "agg": "last", "expr": "subscribers"},
            dimensions=["channel"],
        ),
        kpi("sessions_mtd", type="cumulative", cumulative={"of": "sessions", "to_date": "month"}),
        kpi("sessions_28d", type="cumulative", cumulative={"of": "sessions", "window_days": 28}),
        kpi(
            "sessions_growth",
            type="period_over_period",
            period_over_period={"of": "sessions"},
            grains=["week", "month"],
        ),
    ]
    days = [D(2026, 1, 1) + dt.timedelta(days=i) for i in range(0, 70, 3)]
    rows = {
        "traffic": [
            {
                "date": d,
                "channel": ["Paid Search", "Paid Social", "Organic Search"][i % 3],
                "device": ["desktop", "mobile"][i % 2],
                "sessions": 10 + 7 * i,
                "conversions": i % 4,
                "revenue": 12.5 * i,
            }
            for i, d in enumerate(days)
        ],
        "spend": [
            {"date": d, "channel": ["search", "social"][i % 2], "cost": 3.0 + i}
            for i, d in enumerate(days)
        ],
        "orders": [
            {
                "order_id": f"o{i}",
                "ordered_at": ts(f"{d.isoformat()} 23:{i % 60:02d}"),
                "customer_id": f"c{i % 5}",
                "channel": "web",
                "revenue": 9.99 * i,
            }
            for i, d in enumerate(days)
        ],
        "balances": [
            {"date": d, "channel": c, "subscribers": 100 + i}
            for i, d in enumerate(days)
            for c in ("a", "b")
        ],
    }
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "sources.yaml").write_text(SOURCES.format(week_start="monday"))
    (folder / "test.yaml").write_text(yaml.safe_dump({"area": "test", "kpis": kpis}))
    computed_at = dt.datetime(2026, 3, 15, tzinfo=dt.UTC)
    frames = []
    for url in (duckdb_url, postgres_url):
        tables = KpiTables.for_catalog(load_catalog(folder))
        wh = Warehouse(url)
        try:
            wh.ensure_tables(tables.all_tables())
            for source, records in rows.items():
                wh.replace_rows(tables.raw_tables[source], None, pd.DataFrame(records))
            refresh_periods(wh, tables, D(2026, 3, 12))
            counts = refresh_kpi_values(wh, tables, computed_at=computed_at)
            frame = wh.read(tables.values.select())
        finally:
            wh.dispose()
        key = ["kpi_id", "grain", "period_start", "channel", "device"]
        frame["period_start"] = frame.period_start.map(_date)
        frame = frame.drop(columns=["computed_at"]).sort_values(key, na_position="first")
        frames.append((counts, frame.reset_index(drop=True)))
    (duck_counts, duck), (pg_counts, pg) = frames
    assert duck_counts == pg_counts
    assert len(duck) == len(pg) > 1000
    for col in ["kpi_id", "grain", "period_start", "channel", "device", "definition_version"]:
        assert duck[col].tolist() == pg[col].tolist(), col
    assert (
        duck.is_complete_period.astype(bool).tolist() == pg.is_complete_period.astype(bool).tolist()
    )
    for col in ["value", "numerator", "denominator", "sample_size"]:
        a = [_num(v) for v in duck[col].astype(object)]
        b = [_num(v) for v in pg[col].astype(object)]
        assert [v is None for v in a] == [v is None for v in b], col
        assert [v for v in a if v is not None] == pytest.approx(
            [v for v in b if v is not None], rel=1e-12
        ), col
