"""Benchmark: the GA4 + ad-spend KPIs at day, week and month grain, three ways.

Contenders, each in a fresh subprocess (so wall time and the RSS high-water mark of one do
not leak into another), all on the same DuckDB file:

1. ``ours``: ``load_catalog`` + ``refresh_calendar`` + ``refresh_kpi_values`` from
   ``kpi.refresh``, i.e. the compiled SQLAlchemy SQL running inside DuckDB (daily cubes,
   period rollups, one INSERT of every KPI, one transaction) and writing ``kpi.kpi_values``;
2. ``floor``: hand-written DuckDB SQL, one scan per source into daily aggregates, then one
   query per KPI family (GROUP BY date_trunc / GROUPING SETS); the baseline;
3. ``pandas``: the raw columns read into pandas (duckdb ``.df()``) and ``groupby``.

All three compute every row (value, numerator, denominator, sample size) of the 14 KPIs
in ``BENCH_KPIS``, for the total and for each dimension slice the catalogue declares. The
script then checks that all rows agree and prints wall time (the fastest of ``--repeat``
runs, default 3, the contenders taking turns), peak RSS and the ratio to the floor. With
``--scaling-rows`` (default 1,000,000) ``ours`` also runs on a second, smaller database, to
show whether its memory grows with the row count.

The raw data is generated inside DuckDB with SQL (``range()`` and ``hash()``), never in
pandas: ``raw.ga4_traffic`` over ~3 years with every channel/source/medium/device
combination each day, and ``raw.ad_spend`` with ~5% as many rows. The other sources of the
catalogue stay empty.

Usage (``.venv/bin/python bench/kpi_bench.py --help``)::

    usage: kpi_bench.py [-h] [--rows ROWS] [--db PATH] [--days DAYS]
                        [--contenders LIST] [--scaling-rows LIST]
                        [--pandas-max-rows ROWS] [--keep]

    Time and peak memory of computing the GA4 + ad-spend KPIs: kpi.refresh (ours)
    vs hand-written DuckDB SQL (floor) vs pandas.

    options:
      -h, --help            show this help message and exit
      --rows ROWS           GA4 rows to generate (default 10,000,000; ad spend
                            gets 5% as many)
      --db PATH             DuckDB file to (re)create (only one this script made);
                            default: a temp dir
      --days DAYS           days of data, ending on the as-of date 2025-12-31
                            (default 1096)
      --contenders LIST     comma-separated subset of floor,ours,pandas (default:
                            all)
      --scaling-rows LIST   also run `ours` on databases of these row counts
                            (default 1000000; '' to skip)
      --pandas-max-rows ROWS
                            skip pandas above this many rows (default: never skip)
      --keep                keep the generated database files
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The ours_pg contender lives beside this script (bench/ is sys.path[0] when it runs).
from pg_contender import (  # noqa: E402
    DATABASE,
    StatementTimer,
    copy_back,
    explain_slowest,
    prepare,
)

# ours_pg's worker leaves its slowest statement here for --explain.
SLOWEST = Path(tempfile.gettempdir()) / "kpi_bench_pg_slowest.json"
AS_OF = dt.date(2025, 12, 31)
GRAINS = ("day", "week", "month")
NOT_SET = "(not set)"
RESULTS = "bench_results"  # schema of the benchmark's own tables
PAID = ("Paid Search", "Paid Social", "Display")
# The `paid_media` source's channel map (kpi_definitions/sources.yaml), written out by hand.
AD_CHANNEL_MAP = {
    "search": "Paid Search",
    "social": "Paid Social",
    "display": "Display",
    "video": "Paid Video",
    "shopping": "Paid Shopping",
    "cross_network": "Cross-network",
    "other": "Paid Other",
}

# Every catalogue KPI that reads only GA4 traffic and ad spend (kpi_definitions/*.yaml).
BENCH_KPIS = (
    "sessions",
    "engagement_rate",
    "bounce_rate",
    "revenue",
    "number_of_sales",
    "conversion_rate",
    "average_order_value",
    "click_through_rate",
    "cost_per_click",
    "ad_cost",
    "roas",
    "cost_per_acquisition",
    "revenue_month_to_date",
    "revenue_growth_mom",
)

# GA4 (channel group, source, medium) combinations; every one appears with every device
# on every day, so no contender has gaps to zero-fill and all produce the same rows.
GA4_COMBOS = (
    ("Paid Search", "google", "cpc"),
    ("Paid Search", "bing", "cpc"),
    ("Paid Social", "facebook", "paid_social"),
    ("Paid Social", "linkedin", "paid_social"),
    ("Display", "google", "display"),
    ("Organic Search", "google", "organic"),
    ("Organic Search", "bing", "organic"),
    ("Direct", "(direct)", "(none)"),
    ("Email", "newsletter", "email"),
    ("Referral", "partner.example", "referral"),
)
DEVICES = ("desktop", "mobile", "tablet")
# Ad platforms and their own channel vocabulary (mapped to the conformed one in
# sources.yaml; `video` is unmapped and passes through).
AD_COMBOS = (
    ("google_ads", "search"),
    ("google_ads", "display"),
    ("google_ads", "video"),
    ("meta", "social"),
    ("linkedin", "social"),
)


# ---------------------------------------------------------------------------------------------
# Data generation, inside DuckDB
# ---------------------------------------------------------------------------------------------


def _sql_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _per_day(rows: int, days: int, combos: int) -> int:
    """Rows per day: at least ``rows / days``, rounded up to whole sets of combinations."""
    return max(1, math.ceil(rows / days / combos)) * combos


def _check_is_bench_db(db: Path) -> None:
    """Refuse to delete a file this script did not generate (say, the real warehouse)."""
    import duckdb

    try:
        con = duckdb.connect(str(db), read_only=True)
        try:
            con.execute(f"SELECT * FROM {RESULTS}.generated")
        finally:
            con.close()
    except duckdb.Error:
        raise SystemExit(
            f"{db} exists and was not generated by this benchmark; refusing to overwrite it"
        ) from None


def generate(db: Path, rows: int, days: int) -> dict[str, int]:
    """Create every catalogue table in ``db`` and fill GA4 traffic and ad spend with SQL."""
    import sqlalchemy as sa

    from kpi.compute.tables import KpiTables
    from kpi.language.loader import load_catalog
    from kpi.warehouse.connection import Warehouse

    if db.exists():
        _check_is_bench_db(db)
        db.unlink()
        Path(f"{db}.wal").unlink(missing_ok=True)
    wh = Warehouse(f"duckdb:///{db}")
    wh.ensure_tables(KpiTables.for_catalog(load_catalog()).all_tables())
    first = AS_OF - dt.timedelta(days=days - 1)

    ga4_width = len(GA4_COMBOS) * len(DEVICES)
    ga4_per_day = _per_day(rows, days, ga4_width)
    ad_per_day = _per_day(max(1, rows // 20), days, len(AD_COMBOS))
    channels = _sql_list(tuple(c[0] for c in GA4_COMBOS))
    sources = _sql_list(tuple(c[1] for c in GA4_COMBOS))
    mediums = _sql_list(tuple(c[2] for c in GA4_COMBOS))
    # k = position in the day; c = combination (1-based for DuckDB lists); the campaign
    # number makes the GA4 key (date, channel, source, medium, campaign, device) unique.
    ga4 = f"""
        INSERT INTO raw.ga4_traffic (
            property_id, date, session_default_channel_group, session_source,
            session_medium, session_campaign_name, device_category, sessions,
            engaged_sessions, new_users, key_events, transactions, purchase_revenue,
            is_other_row, _source_file, _source_line, _run_id, _loaded_at)
        WITH g AS (
            SELECT i,
                   DATE '{first}' + CAST(i // {ga4_per_day} AS INTEGER) AS day,
                   i % {ga4_per_day} AS k,
                   CAST((i % {ga4_per_day}) % {len(GA4_COMBOS)} AS INTEGER) + 1 AS c,
                   CAST(((i % {ga4_per_day}) // {len(GA4_COMBOS)}) % {len(DEVICES)} AS INTEGER)
                       + 1 AS d,
                   1 + CAST(hash(i, 1) % 40 AS BIGINT) AS sessions
            FROM range({ga4_per_day * days}) t(i)
        ), m AS (
            SELECT *,
                   (sessions * CAST(hash(i, 3) % 7 AS BIGINT)
                    + CAST(hash(i, 4) % 100 AS BIGINT)) // 100 AS transactions
            FROM g
        )
        SELECT '123456789', day, {channels}[c], {sources}[c], {mediums}[c],
               CASE WHEN {channels}[c] IN {PAID} THEN 'campaign_' || (k // {ga4_width})
                    ELSE '{NOT_SET}' END,
               {_sql_list(DEVICES)}[d],
               sessions,
               sessions * (40 + CAST(hash(i, 2) % 45 AS BIGINT)) // 100,
               sessions * CAST(hash(i, 5) % 60 AS BIGINT) // 100,
               transactions + CAST(hash(i, 6) % 2 AS BIGINT),
               transactions,
               CASE WHEN transactions > 0
                    THEN transactions * (20 + CAST(hash(i, 7) % 180 AS BIGINT))
                         + CAST(hash(i, 8) % 100 AS BIGINT) / 100.0
                    ELSE 0 END,
               false, 'bench', i + 2, 'bench', TIMESTAMPTZ '2026-01-01 06:00:00+00'
        FROM m
    """
    ad = f"""
        INSERT INTO raw.ad_spend (
            date, platform, channel, campaign, impressions, clicks, cost, original_cost,
            original_currency, fx_rate, _source_file, _source_line, _run_id, _loaded_at)
        WITH a AS (
            SELECT i,
                   DATE '{first}' + CAST(i // {ad_per_day} AS INTEGER) AS day,
                   i % {ad_per_day} AS k,
                   CAST((i % {ad_per_day}) % {len(AD_COMBOS)} AS INTEGER) + 1 AS c,
                   100 + CAST(hash(i, 11) % 5000 AS BIGINT) AS impressions
            FROM range({ad_per_day * days}) t(i)
        ), b AS (
            SELECT *, impressions * CAST(hash(i, 12) % 50 AS BIGINT) // 1000 AS clicks FROM a
        )
        SELECT day, {_sql_list(tuple(p for p, _ in AD_COMBOS))}[c],
               {_sql_list(tuple(ch for _, ch in AD_COMBOS))}[c],
               'campaign_' || (k // {len(AD_COMBOS)}), impressions, clicks,
               round(clicks * (0.2 + CAST(hash(i, 13) % 300 AS BIGINT) / 100.0), 2),
               round(clicks * (0.2 + CAST(hash(i, 13) % 300 AS BIGINT) / 100.0), 2),
               'EUR', 1.0, 'bench', i + 2, 'bench', TIMESTAMPTZ '2026-01-01 06:00:00+00'
        FROM b
    """
    with wh.engine.begin() as conn:
        conn.exec_driver_sql(ga4)
        conn.exec_driver_sql(ad)
        conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {RESULTS}")
        conn.exec_driver_sql(  # marks the file as ours to overwrite
            f"CREATE TABLE {RESULTS}.generated AS SELECT {rows} AS rows, {days} AS days"
        )
        counts = {
            t: conn.execute(sa.text(f"SELECT count(*) FROM raw.{t}")).scalar_one()
            for t in ("ga4_traffic", "ad_spend")
        }
    with wh.engine.connect() as conn:  # write the WAL into the file before anyone times
        conn.exec_driver_sql("CHECKPOINT")
    wh.dispose()
    return counts


# ---------------------------------------------------------------------------------------------
# Contender 1: ours
# ---------------------------------------------------------------------------------------------


def bench_tables():
    """The shipped catalogue's tables, its bench KPIs in the three grains the floor and
    pandas compute (``KpiTables``, with cubes, as the pipeline runs it)."""
    from kpi.compute.tables import KpiTables
    from kpi.language.loader import load_catalog

    catalog = load_catalog()
    missing = [k for k in BENCH_KPIS if k not in catalog.kpis]
    if missing:
        raise SystemExit(f"KPIs missing from the catalogue: {missing}")
    for kpi_id in BENCH_KPIS:
        kpi = catalog.kpis[kpi_id]
        catalog.kpis[kpi_id] = kpi.model_copy(
            update={"grains": [g for g in kpi.grains if str(g) in GRAINS]}
        )
    return KpiTables.for_catalog(catalog, use_cubes=True)


def run_ours(db: Path, phases: dict[str, float], url: str | None = None) -> int:
    """Refresh the periods and the bench KPIs with kpi.refresh; rows written.

    ``phases`` receives the seconds of each step: the definitions (parse and validate), the
    calendar (schema check and the periods tables) and the KPI SQL (refresh_kpi_values, the
    step the pipeline's kpi_values asset runs; it includes closing the database).
    """
    from kpi.refresh import refresh_calendar, refresh_kpi_values
    from kpi.warehouse.connection import Warehouse

    lap = time.perf_counter()

    def done(phase: str) -> None:
        nonlocal lap
        now = time.perf_counter()
        phases[phase] = now - lap
        lap = now

    tables = bench_tables()
    done("definitions")
    wh = Warehouse(url or f"duckdb:///{db}")
    timer = StatementTimer(wh.engine) if url else None
    made = tables.all_tables()
    if url:  # ours_pg: the generated raw tables were made without their keys (pg_contender)
        made = [t for t in made if t.fullname not in ("raw.ga4_traffic", "raw.ad_spend")]
    wh.ensure_tables(made)  # sources added to the catalogue since: empty
    refresh_calendar(wh, tables, AS_OF)
    done("calendar")
    counts = refresh_kpi_values(
        wh,
        tables,
        list(BENCH_KPIS),
        computed_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        full_refresh=True,  # the cost of computing them all, not of a run with no news
    )
    wh.dispose()
    done("KPI SQL")
    if timer is not None:  # ours_pg: which statement took longest, for --explain
        seconds, statement, parameters = timer.slowest()
        phases["slowest statement"] = seconds
        SLOWEST.write_text(
            json.dumps({"s": seconds, "sql": statement, "params": parameters}, default=str)
        )
    return sum(counts.values())


# ---------------------------------------------------------------------------------------------
# Contender 2: the floor, hand-written DuckDB SQL
# ---------------------------------------------------------------------------------------------


def floor_statements(as_of: dt.date = AS_OF) -> list[str]:
    """The hand-written SQL: daily aggregates (one scan per source), then one query per family.

    Results go to ``bench_results.floor_values`` (the key and value columns of kpi.kpi_values).
    """
    paid = "('" + "', '".join(PAID) + "')"
    ad_map = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in AD_CHANNEL_MAP.items())
    grains = ", ".join(f"('{g}')" for g in GRAINS)
    period_end = """CASE grain WHEN 'day' THEN period_start
                         WHEN 'week' THEN period_start + 6
                         ELSE CAST(period_start + INTERVAL 1 MONTH - INTERVAL 1 DAY AS DATE)
                    END"""
    out_cols = "kpi_id, grain, period_start, channel, device, value, numerator, denominator, "
    out_cols += "sample_size"
    return [
        "CREATE SCHEMA IF NOT EXISTS bench_results",
        """CREATE OR REPLACE TABLE bench_results.floor_values (
                kpi_id VARCHAR, grain VARCHAR, period_start DATE, channel VARCHAR,
                device VARCHAR, value DOUBLE, numerator DOUBLE, denominator DOUBLE,
                sample_size BIGINT)""",
        # -- one scan of each source ------------------------------------------------------
        f"""CREATE OR REPLACE TEMP TABLE ga4_daily AS
            SELECT date AS day,
                   coalesce(session_default_channel_group, '{NOT_SET}') AS channel,
                   coalesce(device_category, '{NOT_SET}') AS device,
                   sum(sessions) AS sessions, sum(engaged_sessions) AS engaged,
                   sum(transactions) AS transactions, sum(purchase_revenue) AS revenue,
                   count(*) AS n
            FROM raw.ga4_traffic WHERE date <= DATE '{as_of}'
            GROUP BY ALL""",
        f"""CREATE OR REPLACE TEMP TABLE ad_daily AS
            SELECT date AS day,
                   coalesce(CASE channel {ad_map} ELSE channel END, '{NOT_SET}') AS channel,
                   sum(clicks) AS clicks, sum(impressions) AS impressions,
                   sum(cost) AS cost, count(*) AS n
            FROM raw.ad_spend WHERE date <= DATE '{as_of}'
            GROUP BY ALL""",
        # -- per period, total and slices -------------------------------------------------
        f"""CREATE OR REPLACE TEMP TABLE ga4_agg AS
            SELECT grain, period_start,
                   CASE WHEN grouping(channel) = 0 THEN channel END AS channel,
                   CASE WHEN grouping(device) = 0 THEN device END AS device,
                   CAST(sum(sessions) AS DOUBLE) AS sessions,
                   CAST(sum(engaged) AS DOUBLE) AS engaged,
                   CAST(sum(transactions) AS DOUBLE) AS transactions,
                   sum(revenue) AS revenue, sum(n) AS n,
                   coalesce(sum(revenue) FILTER (WHERE channel IN {paid}), 0) AS paid_revenue,
                   CAST(coalesce(sum(transactions) FILTER (WHERE channel IN {paid}), 0)
                        AS DOUBLE) AS paid_transactions,
                   coalesce(sum(n) FILTER (WHERE channel IN {paid}), 0) AS paid_n
            FROM (SELECT g.grain, CAST(date_trunc(g.grain, d.day) AS DATE) AS period_start, d.*
                  FROM ga4_daily d, (VALUES {grains}) g(grain))
            GROUP BY GROUPING SETS ((grain, period_start), (grain, period_start, channel),
                                    (grain, period_start, device))""",
        f"""CREATE OR REPLACE TEMP TABLE ad_agg AS
            SELECT grain, period_start,
                   CASE WHEN grouping(channel) = 0 THEN channel END AS channel,
                   CAST(sum(clicks) AS DOUBLE) AS clicks,
                   CAST(sum(impressions) AS DOUBLE) AS impressions,
                   sum(cost) AS cost, sum(n) AS n
            FROM (SELECT g.grain, CAST(date_trunc(g.grain, d.day) AS DATE) AS period_start, d.*
                  FROM ad_daily d, (VALUES {grains}) g(grain))
            GROUP BY GROUPING SETS ((grain, period_start), (grain, period_start, channel))""",
        # -- family 1: GA4 sums and ratios, by channel and by device ----------------------
        f"""INSERT INTO bench_results.floor_values ({out_cols})
            SELECT 'sessions', grain, period_start, channel, device,
                   sessions, NULL, NULL, n FROM ga4_agg
            UNION ALL SELECT 'engagement_rate', grain, period_start, channel, device,
                   engaged / nullif(sessions, 0), engaged, sessions, n FROM ga4_agg
            UNION ALL SELECT 'bounce_rate', grain, period_start, channel, device,
                   1 - engaged / nullif(sessions, 0), NULL, NULL, n FROM ga4_agg
            UNION ALL SELECT 'revenue', grain, period_start, channel, device,
                   revenue, NULL, NULL, n FROM ga4_agg
            UNION ALL SELECT 'number_of_sales', grain, period_start, channel, device,
                   transactions, NULL, NULL, n FROM ga4_agg
            UNION ALL SELECT 'conversion_rate', grain, period_start, channel, device,
                   transactions / nullif(sessions, 0), transactions, sessions, n FROM ga4_agg
            UNION ALL SELECT 'average_order_value', grain, period_start, channel, device,
                   revenue / nullif(transactions, 0), revenue, transactions, n FROM ga4_agg""",
        # -- family 2: ad spend, by channel -----------------------------------------------
        f"""INSERT INTO bench_results.floor_values ({out_cols})
            SELECT 'click_through_rate', grain, period_start, channel, NULL,
                   clicks / nullif(impressions, 0), clicks, impressions, n FROM ad_agg
            UNION ALL SELECT 'cost_per_click', grain, period_start, channel, NULL,
                   cost / nullif(clicks, 0), cost, clicks, n FROM ad_agg
            UNION ALL SELECT 'ad_cost', grain, period_start, channel, NULL,
                   cost, NULL, NULL, n FROM ad_agg""",
        # -- family 3: GA4 over ad spend, joined by period and channel --------------------
        f"""INSERT INTO bench_results.floor_values ({out_cols})
            WITH j AS (
                SELECT coalesce(g.grain, a.grain) AS grain,
                       coalesce(g.period_start, a.period_start) AS period_start,
                       coalesce(g.channel, a.channel) AS channel,
                       coalesce(g.paid_revenue, 0) AS paid_revenue,
                       coalesce(g.paid_transactions, 0) AS paid_transactions,
                       coalesce(g.paid_n, 0) AS paid_n,
                       coalesce(a.cost, 0) AS cost, coalesce(a.n, 0) AS ad_n
                FROM (SELECT * FROM ga4_agg WHERE device IS NULL) g
                FULL OUTER JOIN ad_agg a
                  ON a.grain = g.grain AND a.period_start = g.period_start
                 AND a.channel IS NOT DISTINCT FROM g.channel)
            SELECT 'roas', grain, period_start, channel, NULL,
                   paid_revenue / nullif(cost, 0), paid_revenue, cost, ad_n FROM j
            UNION ALL SELECT 'cost_per_acquisition', grain, period_start, channel, NULL,
                   cost / nullif(paid_transactions, 0), cost, paid_transactions, paid_n
            FROM j""",
        # -- families 4 and 5: month to date, and growth against the aligned previous ----
        f"""CREATE OR REPLACE TEMP TABLE periods AS
            SELECT grain, period_start, period_end,
                   least(period_end, DATE '{as_of}') AS window_end,
                   CASE grain WHEN 'week' THEN period_start - 7
                              ELSE CAST(period_start - INTERVAL 1 MONTH AS DATE)
                   END AS prev_start
            FROM (SELECT grain, period_start, {period_end} AS period_end
                  FROM ga4_agg WHERE channel IS NULL AND device IS NULL)""",
        """CREATE OR REPLACE TEMP TABLE revenue_daily AS
           SELECT day, sum(revenue) AS revenue, sum(n) AS n FROM ga4_daily GROUP BY day""",
        f"""INSERT INTO bench_results.floor_values ({out_cols})
            SELECT 'revenue_month_to_date', p.grain, p.period_start, NULL, NULL,
                   coalesce(sum(d.revenue), 0), NULL, NULL, coalesce(sum(d.n), 0)
            FROM periods p LEFT JOIN revenue_daily d
              ON d.day BETWEEN date_trunc('month', p.window_end) AND p.window_end
            GROUP BY p.grain, p.period_start""",
        f"""INSERT INTO bench_results.floor_values ({out_cols})
            WITH w AS (
                SELECT *, CASE WHEN period_end <= DATE '{as_of}' THEN period_start - 1
                               ELSE least(period_start - 1, prev_start + CAST(
                                   datediff('day', period_start, window_end) AS INTEGER))
                          END AS prev_end
                FROM periods WHERE grain IN ('week', 'month')),
            cur AS (
                SELECT w.grain, w.period_start, coalesce(sum(d.revenue), 0) AS revenue
                FROM w LEFT JOIN revenue_daily d
                  ON d.day BETWEEN w.period_start AND w.window_end
                GROUP BY ALL),
            prev AS (
                SELECT w.grain, w.period_start, coalesce(sum(d.revenue), 0) AS revenue
                FROM w LEFT JOIN revenue_daily d ON d.day BETWEEN w.prev_start AND w.prev_end
                GROUP BY ALL)
            SELECT 'revenue_growth_mom', c.grain, c.period_start, NULL, NULL,
                   (c.revenue - p.revenue) / nullif(p.revenue, 0), c.revenue, p.revenue, NULL
            FROM cur c JOIN prev p USING (grain, period_start)""",
    ]


def run_floor(db: Path, as_of: dt.date = AS_OF) -> int:
    """Run the hand-written SQL in one DuckDB connection; rows written."""
    import duckdb

    con = duckdb.connect(str(db))
    for statement in floor_statements(as_of):
        con.execute(statement)
    rows = con.execute(f"SELECT count(*) FROM {RESULTS}.floor_values").fetchone()[0]
    con.close()
    return rows


# ---------------------------------------------------------------------------------------------
# Contender 3: pandas
# ---------------------------------------------------------------------------------------------


def _period_start(day: pd.Series, grain: str) -> pd.Series:
    """Period start of a datetime64 Series: the day, its Monday, or the 1st of its month."""
    import pandas as pd

    if grain == "day":
        return day
    if grain == "week":
        return day - pd.to_timedelta(day.dt.day_of_week, unit="D")
    return day.dt.to_period("M").dt.start_time


def _by_period(daily: pd.DataFrame, sums: list[str], dims: list[list[str]]) -> pd.DataFrame:
    """Sums of ``sums`` per grain and period, for the total and for each dimension list."""
    import pandas as pd

    parts = []
    for grain in GRAINS:
        with_period = daily.assign(grain=grain, period_start=_period_start(daily["day"], grain))
        for keys in dims:
            agg = with_period.groupby(["grain", "period_start", *keys], observed=True)[sums]
            parts.append(agg.sum().reset_index())
    return pd.concat(parts, ignore_index=True)


def compute_pandas(con: duckdb.DuckDBPyConnection, as_of: dt.date = AS_OF) -> pd.DataFrame:
    """Every bench KPI row with pandas, from the raw columns read through ``.df()``."""
    import numpy as np
    import pandas as pd

    ga4 = con.sql(
        "SELECT date AS day, session_default_channel_group AS channel, "
        "device_category AS device, sessions, engaged_sessions AS engaged, transactions, "
        "purchase_revenue AS revenue FROM raw.ga4_traffic"
    ).df()
    ads = con.sql("SELECT date AS day, channel, clicks, impressions, cost FROM raw.ad_spend").df()
    cutoff = pd.Timestamp(as_of)
    ga4 = ga4[ga4["day"] <= cutoff]
    ads = ads[ads["day"] <= cutoff]
    ga4["channel"] = ga4["channel"].fillna(NOT_SET)
    ga4["device"] = ga4["device"].fillna(NOT_SET)
    ads["channel"] = ads["channel"].replace(AD_CHANNEL_MAP).fillna(NOT_SET)
    ga4["n"] = 1
    ads["n"] = 1
    paid = ga4["channel"].isin(PAID)
    ga4["paid_revenue"] = ga4["revenue"].where(paid, 0.0)
    ga4["paid_transactions"] = ga4["transactions"].where(paid, 0)
    ga4["paid_n"] = paid.astype("int64")

    ga4_sums = ["sessions", "engaged", "transactions", "revenue", "n"]
    ga4_sums += ["paid_revenue", "paid_transactions", "paid_n"]
    ga4_daily = ga4.groupby(["day", "channel", "device"], observed=True)[ga4_sums].sum()
    ga4_daily = ga4_daily.reset_index()
    ad_sums = ["clicks", "impressions", "cost", "n"]
    ad_daily = ads.groupby(["day", "channel"], observed=True)[ad_sums].sum().reset_index()
    del ga4, ads

    g = _by_period(ga4_daily, ga4_sums, [[], ["channel"], ["device"]])
    a = _by_period(ad_daily, ad_sums, [[], ["channel"]])
    for frame in (g, a):
        for col in frame.columns:
            if col not in ("grain", "period_start", "channel", "device"):
                frame[col] = frame[col].astype("float64")

    def div(num, den):
        return num / den.where(den != 0)

    def rows(frame, kpi_id, value, numerator=None, denominator=None, n="n"):
        return pd.DataFrame(
            {
                "kpi_id": kpi_id,
                "grain": frame["grain"],
                "period_start": frame["period_start"],
                "channel": frame.get("channel"),
                "device": frame.get("device"),
                "value": value,
                "numerator": numerator if numerator is not None else np.nan,
                "denominator": denominator if denominator is not None else np.nan,
                "sample_size": frame[n],
            }
        )

    out = [
        rows(g, "sessions", g["sessions"]),
        rows(g, "engagement_rate", div(g["engaged"], g["sessions"]), g["engaged"], g["sessions"]),
        rows(g, "bounce_rate", 1 - div(g["engaged"], g["sessions"])),
        rows(g, "revenue", g["revenue"]),
        rows(g, "number_of_sales", g["transactions"]),
        rows(
            g,
            "conversion_rate",
            div(g["transactions"], g["sessions"]),
            g["transactions"],
            g["sessions"],
        ),
        rows(
            g,
            "average_order_value",
            div(g["revenue"], g["transactions"]),
            g["revenue"],
            g["transactions"],
        ),
        rows(
            a,
            "click_through_rate",
            div(a["clicks"], a["impressions"]),
            a["clicks"],
            a["impressions"],
        ),
        rows(a, "cost_per_click", div(a["cost"], a["clicks"]), a["cost"], a["clicks"]),
        rows(a, "ad_cost", a["cost"]),
    ]
    keys = ["grain", "period_start", "channel"]
    g_channel = g[g["device"].isna()].drop(columns="device")
    j = g_channel.merge(a, on=keys, how="outer", suffixes=("", "_ad")).fillna(
        {"paid_revenue": 0.0, "paid_transactions": 0.0, "paid_n": 0.0, "cost": 0.0, "n_ad": 0.0}
    )
    out.append(
        rows(j, "roas", div(j["paid_revenue"], j["cost"]), j["paid_revenue"], j["cost"], "n_ad")
    )
    out.append(
        rows(
            j,
            "cost_per_acquisition",
            div(j["cost"], j["paid_transactions"]),
            j["cost"],
            j["paid_transactions"],
            "paid_n",
        )
    )

    # Month to date and growth: sums over day windows, as differences of running sums.
    daily = ga4_daily.groupby("day")[["revenue", "n"]].sum().astype("float64")
    days = pd.date_range(daily.index.min() - pd.Timedelta(days=62), cutoff, freq="D")
    running = daily.reindex(days).fillna(0.0).cumsum()

    def window_sum(lo: pd.Series, hi: pd.Series) -> pd.DataFrame:
        """Sums of revenue and n over lo .. hi (inclusive), one row per window."""
        upper = running.reindex(hi).to_numpy()
        lower = running.reindex(lo - pd.Timedelta(days=1)).fillna(0.0).to_numpy()
        return pd.DataFrame(upper - lower, columns=running.columns, index=lo.index)

    periods = g[g["channel"].isna() & g["device"].isna()][["grain", "period_start"]].copy()
    start = periods["period_start"]
    periods["period_end"] = start.where(
        periods["grain"] == "day",
        (start + pd.Timedelta(days=6)).where(
            periods["grain"] == "week", start + pd.offsets.MonthEnd(0)
        ),
    )
    periods["window_end"] = periods["period_end"].clip(upper=cutoff)
    month_start = periods["window_end"].dt.to_period("M").dt.start_time
    mtd = periods.join(window_sum(month_start, periods["window_end"]))
    out.append(rows(mtd, "revenue_month_to_date", mtd["revenue"]))

    pop = periods[periods["grain"].isin(["week", "month"])].copy()
    pop["prev_start"] = (pop["period_start"] - pd.Timedelta(days=7)).where(
        pop["grain"] == "week", pop["period_start"] - pd.offsets.MonthBegin(1)
    )
    before = pop["period_start"] - pd.Timedelta(days=1)
    aligned = pop["prev_start"] + (pop["window_end"] - pop["period_start"])
    # A closed period is compared with the whole previous one, an open one with as many days.
    pop["prev_end"] = before.where(pop["period_end"] <= cutoff, np.minimum(before, aligned))
    cur = window_sum(pop["period_start"], pop["window_end"])["revenue"]
    prev = window_sum(pop["prev_start"], pop["prev_end"])["revenue"]
    pop["n"] = np.nan
    out.append(rows(pop, "revenue_growth_mom", div(cur - prev, prev), cur, prev))

    result = pd.concat(out, ignore_index=True)
    result["period_start"] = pd.to_datetime(result["period_start"]).dt.date
    return result


def run_pandas(db: Path) -> tuple[int, pd.DataFrame]:
    """Compute with pandas; (rows, result frame). The write-back is not timed."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    result = compute_pandas(con)
    con.close()
    return len(result), result


# ---------------------------------------------------------------------------------------------
# Workers: one fresh process per measurement
# ---------------------------------------------------------------------------------------------


def _max_rss_mb() -> float:
    """This process's peak resident set size (high-water mark), in MB.

    Linux keeps ``ru_maxrss`` across ``execve``, and subprocess starts workers with vfork:
    a fresh worker would report the parent's peak (measured: a 500 MB parent gives its
    10 MB child ru_maxrss = 511 MB). ``VmHWM`` is the peak of the worker's own address
    space, so it is used when /proc is there; ru_maxrss is the fallback elsewhere.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker(contender: str, db: Path) -> dict:
    """Import what the contender needs, then time it; RSS before (imports) and peak."""
    import duckdb

    if contender in ("ours", "pandas"):
        import pandas  # noqa: F401
    if contender == "ours":
        import duckdb_engine  # noqa: F401  (SQLAlchemy would import it on first connect)
    if contender == "ours_pg":
        import psycopg  # noqa: F401
    if contender in ("ours", "ours_pg"):
        # Imports are excluded from the timing, as the floor's duckdb is: the refresh, the
        # loader and what it reaches (the rules), and the tables.
        import kpi.compute.tables
        import kpi.language.loader
        import kpi.language.rules
        import kpi.refresh
        import kpi.warehouse.connection  # noqa: F401
    baseline = _max_rss_mb()
    start = time.perf_counter()
    frame = None
    phases: dict[str, float] = {}
    if contender == "ours":
        rows = run_ours(db, phases)
    elif contender == "ours_pg":
        rows = run_ours(db, phases, os.environ["KPI_BENCH_PG_URL"])
    elif contender == "floor":
        rows = run_floor(db)
    else:
        rows, frame = run_pandas(db)
    wall = time.perf_counter() - start
    peak = _max_rss_mb()
    if frame is not None:  # for the agreement check, after the measurement
        con = duckdb.connect(str(db))
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {RESULTS}")
        con.register("pandas_result", frame)
        con.execute(
            f"CREATE OR REPLACE TABLE {RESULTS}.pandas_values AS SELECT * FROM pandas_result"
        )
        con.close()
    return {
        "wall_s": wall,
        "baseline_mb": baseline,
        "peak_mb": peak,
        "rows": rows,
        "phases": phases,
    }


@dataclass
class Result:
    contender: str
    rows_in: int
    wall_s: float | None = None
    baseline_mb: float | None = None
    peak_mb: float | None = None
    rows_out: int | None = None
    note: str = ""


def measure(contender: str, db: Path, rows_in: int) -> Result:
    """Run one contender in a fresh Python process and collect its figures."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", contender, "--db", str(db)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        return Result(contender, rows_in, note=f"FAILED (exit {proc.returncode})")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    note = " + ".join(f"{name} {sec:.2f}" for name, sec in data.get("phases", {}).items())
    return Result(
        contender,
        rows_in,
        data["wall_s"],
        data["baseline_mb"],
        data["peak_mb"],
        data["rows"],
        note=f"s: {note}" if note else "",
    )


def measure_best(contenders: list[str], db: Path, rows_in: int, repeat: int) -> list[Result]:
    """Each contender ``repeat`` times, taking turns (so that a noisy minute on a shared
    machine hits them alike); per contender the fastest run, with the highest peak memory
    of all its runs.

    The fastest run is the one least disturbed by other work on the machine, as with
    ``timeit``. ``ours`` leaves its tables in the database, so its later runs are the
    steady state of a daily pipeline; its first run also creates them.
    """
    runs: dict[str, list[Result]] = {c: [] for c in contenders}
    for _ in range(repeat):
        for contender in contenders:
            runs[contender].append(measure(contender, db, rows_in))
    best = []
    for results in runs.values():
        done = [r for r in results if r.wall_s is not None]
        if len(done) < len(results):
            best.append(next(r for r in results if r.wall_s is None))  # the failure's note
            continue
        fastest = min(done, key=lambda r: r.wall_s)
        fastest.peak_mb = max(r.peak_mb for r in done)
        if repeat > 1:
            walls = ", ".join(f"{r.wall_s:.2f}" for r in done)
            fastest.note = f"{fastest.note}; runs {walls}".lstrip("; ")
        best.append(fastest)
    return best


# ---------------------------------------------------------------------------------------------
# Agreement
# ---------------------------------------------------------------------------------------------

_SOURCES = {
    "ours": "SELECT kpi_id, grain, period_start, channel, device, value, numerator, "
    "denominator, sample_size FROM kpi.kpi_values WHERE kpi_id IN ({ids})",
    "floor": f"SELECT * FROM {RESULTS}.floor_values",
    "pandas": f"SELECT * FROM {RESULTS}.pandas_values",
    "ours_pg": f"SELECT * FROM {RESULTS}.ours_pg_values",
}


def _close(a: str, b: str) -> str:
    return (
        f"(({a} IS NULL AND {b} IS NULL) OR "
        f"abs({a} - {b}) <= 1e-9 * greatest(abs({a}), abs({b}), 1e-6))"
    )


# Growth is (current - previous) / previous: when the two nearly cancel, summation-order
# noise in them (~1e-14) is amplified by (|current| + |previous|) / |current - previous|.
# Its value is compared at 1e-9 of (|current| + |previous|) / |previous| instead.
_GROWTH_CLOSE = (
    "(l.kpi_id = 'revenue_growth_mom' AND abs(l.value - r.value) <= "
    "1e-9 * (abs(l.numerator) + abs(l.denominator)) / abs(l.denominator))"
)


def compare(db: Path, contenders: list[str]) -> list[str]:
    """Every contender's rows against the floor's (or ours'); lines to print."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    ids = ", ".join(f"'{k}'" for k in BENCH_KPIS)
    ref = "floor" if "floor" in contenders else "ours"
    lines = []
    key = "kpi_id, grain, period_start, coalesce(channel, '') AS ch, coalesce(device, '') AS dv"
    cols = "value, numerator, denominator, sample_size"
    both = "l.kpi_id IS NOT NULL AND r.kpi_id IS NOT NULL"
    differ = f"""NOT (({_close("l.value", "r.value")} OR {_GROWTH_CLOSE})
                     AND {_close("l.numerator", "r.numerator")}
                     AND {_close("l.denominator", "r.denominator")}
                     AND l.sample_size IS NOT DISTINCT FROM CAST(r.sample_size AS BIGINT))"""
    for other in contenders:
        if other == ref:
            continue
        joined = f"""(SELECT {key}, {cols} FROM ({_SOURCES[ref].format(ids=ids)})) l
            FULL OUTER JOIN (SELECT {key}, {cols} FROM ({_SOURCES[other].format(ids=ids)})) r
            USING (kpi_id, grain, period_start, ch, dv)"""
        only_ref, only_other, different, compared = con.execute(
            f"""SELECT count(*) FILTER (WHERE r.kpi_id IS NULL),
                       count(*) FILTER (WHERE l.kpi_id IS NULL),
                       count(*) FILTER (WHERE {both} AND {differ}),
                       count(*) FILTER (WHERE {both})
                FROM {joined}"""
        ).fetchone()
        ok = only_ref == only_other == different == 0
        lines.append(
            f"{other} vs {ref}: {compared:,} rows compared, {different} different, "
            f"{only_ref} only in {ref}, {only_other} only in {other} -> "
            + ("AGREE" if ok else "DISAGREE")
        )
        if not ok:  # show a few, to tell rounding from a real difference
            examples = con.execute(
                f"""SELECT kpi_id, grain, period_start, ch, dv, l.value, r.value, l.numerator,
                           r.numerator, l.denominator, r.denominator, l.sample_size,
                           r.sample_size
                    FROM {joined}
                    WHERE l.kpi_id IS NULL OR r.kpi_id IS NULL OR {differ}
                    LIMIT 5"""
            ).fetchall()
            lines += [f"    {ref} / {other}: {row}" for row in examples]

    # A sample to read: the last three months' totals.
    sample = ("sessions", "conversion_rate", "roas")
    lines.append("")
    lines.append("sample (monthly totals):")
    header = f"  {'kpi':<16} {'month':<10} " + " ".join(f"{c:>18}" for c in contenders)
    lines.append(header)
    months = [dt.date(2025, 10, 1), dt.date(2025, 11, 1), dt.date(2025, 12, 1)]
    for kpi_id in sample:
        for month in months:
            cells = []
            for c in contenders:
                value = con.execute(
                    f"SELECT value FROM ({_SOURCES[c].format(ids=ids)}) WHERE kpi_id = ? "
                    "AND grain = 'month' AND period_start = ? AND channel IS NULL "
                    "AND device IS NULL",
                    [kpi_id, month],
                ).fetchone()
                cells.append(f"{value[0]:>18.6f}" if value and value[0] is not None else " " * 18)
            lines.append(f"  {kpi_id:<16} {month.isoformat():<10} " + " ".join(cells))
    con.close()
    return lines


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def _table(results: list[Result]) -> list[str]:
    floors = {r.rows_in: r.wall_s for r in results if r.contender == "floor" and r.wall_s}
    head = (
        f"{'contender':<10} {'raw rows':>12} {'wall s':>8} {'peak RSS MB':>12} "
        f"{'of which imports':>17} {'x floor':>8} {'rows out':>10}  note"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        floor = floors.get(r.rows_in)
        ratio = f"{r.wall_s / floor:8.2f}" if r.wall_s and floor else f"{'':>8}"
        wall = f"{r.wall_s:8.2f}" if r.wall_s is not None else f"{'-':>8}"
        peak = f"{r.peak_mb:12.0f}" if r.peak_mb is not None else f"{'-':>12}"
        base = f"{r.baseline_mb:17.0f}" if r.baseline_mb is not None else f"{'-':>17}"
        rows = f"{r.rows_out:10,}" if r.rows_out is not None else f"{'-':>10}"
        lines.append(
            f"{r.contender:<10} {r.rows_in:12,} {wall} {peak} {base} {ratio} {rows}  {r.note}"
        )
    return lines


def _prepare_pg(db: Path, admin_url: str) -> str | None:
    """Copy the raw rows into the bench's PostgreSQL database; None, or why it is skipped."""
    from kpi.compute.tables import KpiTables
    from kpi.language.loader import load_catalog

    raw = KpiTables.for_catalog(load_catalog()).raw_tables
    import psycopg

    from kpi.warehouse.connection import redact_url

    try:
        url, seconds = prepare(db, admin_url, raw)
    except psycopg.OperationalError as error:
        reason = str(error).strip().splitlines()[0]
        print(f"ours_pg skipped: PostgreSQL at {redact_url(admin_url)} unreachable ({reason})")
        return f"skipped: PostgreSQL unreachable ({reason})"
    os.environ["KPI_BENCH_PG_URL"] = url  # the workers read it
    print(f"ours_pg: raw rows copied into PostgreSQL ({DATABASE}) in {seconds:.1f} s", flush=True)
    return None


def _params(saved):
    """The slowest statement's parameters as saved (JSON: a list, a dict, or None)."""
    return tuple(saved) if isinstance(saved, list) else saved


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="kpi_bench.py",
        description="Time and peak memory of computing the GA4 + ad-spend KPIs: kpi.refresh "
        "(ours) vs hand-written DuckDB SQL (floor) vs pandas.",
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=10_000_000,
        help="GA4 rows to generate (default 10,000,000; ad spend gets 5%% as many)",
    )
    parser.add_argument(
        "--db",
        type=Path,
        metavar="PATH",
        help="DuckDB file to (re)create (only one this script made); default: a temp dir",
    )
    parser.add_argument(
        "--days",
        type=int,
        default=1096,
        help=f"days of data, ending on the as-of date {AS_OF} (default 1096)",
    )
    parser.add_argument(
        "--contenders",
        default="floor,ours,pandas,ours_pg",
        metavar="LIST",
        help="comma-separated subset of floor,ours,pandas,ours_pg (default: all; ours_pg is "
        "kpi.refresh on PostgreSQL at --pg-url, skipped with the reason when unreachable)",
    )
    parser.add_argument(
        "--pg-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server (any database on it) where the bench makes its own database",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="save EXPLAIN (ANALYZE, BUFFERS) of ours_pg's slowest statement to bench/plans/",
    )
    parser.add_argument(
        "--scaling-rows",
        default="1000000",
        metavar="LIST",
        help="also run `ours` on databases of these row counts (default 1000000; '' to skip)",
    )
    parser.add_argument(
        "--pandas-max-rows",
        type=int,
        metavar="ROWS",
        help="skip pandas above this many rows (default: never skip)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        metavar="N",
        help="runs of each contender, each in a fresh process; the fastest counts (default 3)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated database files")
    parser.add_argument(
        "--worker", choices=["ours", "floor", "pandas", "ours_pg"], help=argparse.SUPPRESS
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.db)))
        return 0

    contenders = [c for c in args.contenders.split(",") if c]
    unknown = set(contenders) - {"floor", "ours", "pandas", "ours_pg"}
    if unknown:
        raise SystemExit(f"unknown contenders: {sorted(unknown)}")
    if args.repeat < 1:
        raise SystemExit("--repeat must be at least 1")
    scaling = [int(x) for x in args.scaling_rows.split(",") if x.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="kpi_bench_"))
    db = args.db or tmp / "kpi_bench.duckdb"
    db.parent.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    try:
        start = time.perf_counter()
        # Said first: at the default 10M rows the data takes a while, and each contender
        # runs --repeat times before the table prints.
        print(
            f"kpi_bench: generating ~{args.rows:,} GA4 rows in DuckDB, then timing "
            f"{', '.join(contenders)} ({args.repeat} run(s) each); bench/README.md explains it",
            flush=True,
        )
        counts = generate(db, args.rows, args.days)
        print(
            f"generated {counts['ga4_traffic']:,} GA4 rows and {counts['ad_spend']:,} ad spend "
            f"rows over {args.days} days in {time.perf_counter() - start:.1f} s -> {db}",
            flush=True,
        )
        rows_in = counts["ga4_traffic"] + counts["ad_spend"]
        if "ours_pg" in contenders:
            pg_note = _prepare_pg(db, args.pg_url)
            if pg_note is not None:  # unreachable: said, and the others still run
                contenders.remove("ours_pg")
                results.append(Result("ours_pg", rows_in, note=pg_note))
        timed = []
        for contender in contenders:
            if contender == "pandas" and args.pandas_max_rows and args.rows > args.pandas_max_rows:
                note = f"skipped: --rows above --pandas-max-rows {args.pandas_max_rows:,}"
                results.append(Result("pandas", rows_in, note=note))
            else:
                timed.append(contender)
        if timed:
            print(f"running {', '.join(timed)}, {args.repeat} time(s) each ...", flush=True)
            results = measure_best(timed, db, rows_in, args.repeat) + results
        if "ours_pg" in timed:
            copy_back(os.environ["KPI_BENCH_PG_URL"], db, RESULTS, list(BENCH_KPIS))
            if args.explain and SLOWEST.exists():
                slow = json.loads(SLOWEST.read_text())
                path = explain_slowest(
                    os.environ["KPI_BENCH_PG_URL"], slow["sql"], _params(slow["params"]), slow["s"]
                )
                print(f"plan of ours_pg's slowest statement ({slow['s']:.2f} s): {path}")
        agreement = compare(db, [r.contender for r in results if r.wall_s is not None])

        for rows in scaling:
            if rows == args.rows:
                continue
            small = tmp / f"kpi_bench_{rows}.duckdb"
            counts = generate(small, rows, args.days)
            print(f"running ours on {rows:,} rows ...", flush=True)
            [result] = measure_best(
                ["ours"], small, counts["ga4_traffic"] + counts["ad_spend"], args.repeat
            )
            result.note = f"scaling run; {result.note}".rstrip("; ")
            results.append(result)
            if not args.keep:
                small.unlink(missing_ok=True)

        print()
        print("\n".join(_table(results)))
        print(
            "\nwall s: the computation only (imports and interpreter start excluded), the fastest"
            f" of {args.repeat} run(s); peak RSS:"
            "\nthe worker process's high-water mark (VmHWM), imports included."
        )
        print()
        print("\n".join(agreement))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
            if args.db:
                print(f"\n(kept --db {db})")
        elif not any(tmp.iterdir()):
            tmp.rmdir()
        else:
            print(f"\n(kept {tmp})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
