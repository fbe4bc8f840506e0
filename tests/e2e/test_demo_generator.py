"""Tests for the deterministic marketing demo data generator."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from demo import generator as gen
from demo.generator import days, traffic

END = date(2025, 12, 31)
START = END - timedelta(days=429)  # 430 days, the size the pipeline demo uses
OUTAGE = gen.outage_day(END)  # 29 July 2025
OUTAGES = gen.outage_days(START, END)  # 29 January and 29 July 2025

GA4_KEYS = [
    "date",
    "sessionDefaultChannelGroup",
    "sessionSource",
    "sessionMedium",
    "sessionCampaignName",
    "deviceCategory",
]
GA4_METRICS = [
    "sessions",
    "engagedSessions",
    "newUsers",
    "keyEvents",
    "transactions",
    "purchaseRevenue",
]
SOURCES: dict[str, Callable[..., pd.DataFrame]] = {
    "ga4_traffic": gen.ga4_traffic,
    "ad_spend": gen.ad_spend,
    "orders": gen.orders,
    "survey_answers": gen.survey_answers,
}


def _clear_caches() -> None:
    # Cached per-day results would make "same output twice" trivially true.
    traffic._traffic_day.cache_clear()
    days._day_context.cache_clear()


def _local_dates(frame: pd.DataFrame) -> pd.Series:
    """Local (property time zone) day of each row, whatever the source."""
    if "date" in frame:
        return frame["date"]
    stamp = frame["ordered_at"] if "ordered_at" in frame else frame["answered_at"]
    return stamp.dt.tz_convert(gen.DEMO_TIME_ZONE).dt.date


def _daily_ga4(ga4: pd.DataFrame) -> pd.DataFrame:
    return ga4.groupby("date")[GA4_METRICS].sum()


def _is_2dp(values: pd.Series) -> bool:
    return bool(np.allclose(values, values.round(2), rtol=0, atol=1e-9))


@pytest.fixture(scope="module")
def full() -> dict[str, pd.DataFrame]:
    return {name: fn(START, END) for name, fn in SOURCES.items()}


@pytest.fixture(scope="module")
def daily(full: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return _daily_ga4(full["ga4_traffic"])


# --- determinism -----------------------------------------------------------------------------


def test_outages_are_fixed_on_the_calendar() -> None:
    assert gen.outage_day(date(2025, 3, 31)) == date(2025, 1, 29)
    assert [date(2025, 1, 29), date(2025, 7, 29)] == OUTAGES
    # Every demo window (425 days ending any day) holds at least two.
    for end in (date(2026, 1, 1) + timedelta(days=i) for i in range(0, 366, 7)):
        assert len(gen.outage_days(end - timedelta(days=424), end)) >= 2, end


@pytest.mark.parametrize("name", SOURCES)
def test_same_input_gives_identical_frames(name: str) -> None:
    first = SOURCES[name](START, START + timedelta(days=60))
    _clear_caches()
    second = SOURCES[name](START, START + timedelta(days=60))
    pd.testing.assert_frame_equal(first, second)


@pytest.mark.parametrize("name", SOURCES)
def test_sub_range_with_same_end_equals_slice(name: str, full: dict[str, pd.DataFrame]) -> None:
    sub_start = END - timedelta(days=75)
    frame = full[name]
    expected = frame[_local_dates(frame) >= sub_start].reset_index(drop=True)
    pd.testing.assert_frame_equal(SOURCES[name](sub_start, END), expected)


@pytest.mark.parametrize("name", SOURCES)
def test_sub_range_inside_full_range_equals_slice(name: str, full: dict[str, pd.DataFrame]) -> None:
    # A range ending elsewhere: the same rows, outages included (they are on the calendar).
    sub_start, sub_end = date(2025, 1, 20), date(2025, 4, 10)
    kwargs = {}
    frame = full[name]
    local = _local_dates(frame)
    expected = frame[(local >= sub_start) & (local <= sub_end)].reset_index(drop=True)
    pd.testing.assert_frame_equal(SOURCES[name](sub_start, sub_end, **kwargs), expected)


def test_single_day_request_matches_full_range(full: dict[str, pd.DataFrame]) -> None:
    day = date(2025, 6, 3)
    ga4 = full["ga4_traffic"]
    expected = ga4[ga4["date"] == day].reset_index(drop=True)
    pd.testing.assert_frame_equal(gen.ga4_traffic(day, day), expected)


def test_seed_changes_the_data() -> None:
    a = gen.ga4_traffic(START, START + timedelta(days=6), seed=7)
    b = gen.ga4_traffic(START, START + timedelta(days=6), seed=8)
    assert not a["sessions"].equals(b["sessions"])


def test_start_after_end_is_rejected() -> None:
    with pytest.raises(ValueError, match="after"):
        gen.orders(END, START)


# --- shape and keys --------------------------------------------------------------------------


def test_columns_and_types(full: dict[str, pd.DataFrame]) -> None:
    ga4, ads, orders, survey = (full[n] for n in SOURCES)
    assert list(ga4.columns) == GA4_KEYS + GA4_METRICS
    assert list(ads.columns) == [
        "date", "platform", "channel", "campaign", "impressions", "clicks", "cost", "currency",
    ]  # fmt: skip
    assert list(orders.columns) == [
        "order_id", "ordered_at", "customer_id", "channel", "revenue", "cost_of_goods",
        "currency", "is_new_customer",
    ]  # fmt: skip
    assert list(survey.columns) == [
        "answered_at", "response_id", "csat_score", "nps_score", "channel",
    ]  # fmt: skip
    assert type(ga4["date"].iloc[0]) is date and type(ads["date"].iloc[0]) is date
    for col in GA4_METRICS[:-1]:
        assert ga4[col].dtype == np.int64
    for frame, col in [(orders, "ordered_at"), (survey, "answered_at")]:
        assert str(frame[col].dt.tz) == "UTC"
    assert orders["is_new_customer"].dtype == bool
    assert set(orders["currency"]) == {gen.DEMO_CURRENCY}
    for frame, col in [(ga4, "purchaseRevenue"), (ads, "cost"), (orders, "revenue")]:
        assert _is_2dp(frame[col]), col
    assert _is_2dp(orders["cost_of_goods"])


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("ga4_traffic", GA4_KEYS),
        ("ad_spend", ["date", "platform", "campaign"]),
        ("orders", ["order_id"]),
        ("survey_answers", ["response_id"]),
    ],
)
def test_natural_keys_are_unique(name: str, keys: list[str], full: dict[str, pd.DataFrame]) -> None:
    assert not full[name].duplicated(keys).any()


def test_ga4_dimension_vocabulary(full: dict[str, pd.DataFrame]) -> None:
    ga4 = full["ga4_traffic"]
    assert set(ga4["sessionDefaultChannelGroup"]) == set(gen.CHANNELS)
    assert set(ga4["deviceCategory"]) == {"desktop", "mobile", "tablet"}
    pairs = ga4.groupby("sessionDefaultChannelGroup")[["sessionSource", "sessionMedium"]]
    pair_counts = pairs.apply(lambda f: len(f.drop_duplicates()))
    assert pair_counts.max() <= 4
    campaigns = ga4.groupby("sessionDefaultChannelGroup")["sessionCampaignName"].agg(set)
    assert campaigns["Direct"] == {"(direct)"}
    assert campaigns["Organic Search"] == {"(organic)"}
    for paid in ("Paid Search", "Paid Social", "Display"):
        assert len(campaigns[paid]) >= 3


# --- realism ---------------------------------------------------------------------------------


def test_daily_volumes_and_row_counts(full: dict[str, pd.DataFrame], daily: pd.DataFrame) -> None:
    sessions = daily["sessions"].drop(OUTAGES)
    assert sessions.between(1800, 6500).all()
    assert 2500 < sessions.median() < 4500
    assert full["ga4_traffic"].groupby("date").size().max() < 150


def test_ga4_rates_are_plausible(full: dict[str, pd.DataFrame], daily: pd.DataFrame) -> None:
    ga4 = full["ga4_traffic"]
    assert (ga4["sessions"] > 0).all()
    assert (ga4["engagedSessions"] <= ga4["sessions"]).all()
    assert (ga4["newUsers"] <= ga4["sessions"]).all()
    assert (ga4["keyEvents"] >= ga4["transactions"]).all()
    days = daily.drop(OUTAGES)
    assert (days["newUsers"] < days["sessions"]).all()
    assert (days["engagedSessions"] / days["sessions"]).between(0.55, 0.70).all()
    assert (days["transactions"] / days["sessions"]).between(0.008, 0.035).all()
    assert 0.01 <= days["transactions"].sum() / days["sessions"].sum() <= 0.03
    assert (days["purchaseRevenue"] / days["transactions"]).between(50, 100).all()
    assert 60 <= days["purchaseRevenue"].sum() / days["transactions"].sum() <= 90


def test_weekends_shift_traffic_from_desktop_to_mobile(full: dict[str, pd.DataFrame]) -> None:
    ga4 = full["ga4_traffic"]
    weekend = pd.to_datetime(ga4["date"]).dt.day_of_week >= 5
    share = ga4.groupby([weekend, "deviceCategory"])["sessions"].sum().unstack()
    share = share.div(share.sum(axis=1), axis=0)
    assert share.loc[True, "desktop"] < share.loc[False, "desktop"] - 0.05
    assert share.loc[True, "mobile"] > share.loc[False, "mobile"] + 0.05


def _december_growth(sessions: pd.Series) -> float:
    """Mean daily sessions of December 2025 over December 2024."""
    stamps = pd.to_datetime(sessions.index)
    by_month = sessions.groupby([stamps.year, stamps.month]).mean()
    return float(by_month[(2025, 12)] / by_month[(2024, 12)])


def test_yearly_seasonality_and_growth(daily: pd.DataFrame, monkeypatch) -> None:
    sessions = daily["sessions"].drop(OUTAGES)
    stamps = pd.to_datetime(sessions.index)
    by_month = sessions.groupby([stamps.year, stamps.month]).mean()
    assert by_month[(2025, 12)] > 1.2 * by_month[(2025, 7)]
    assert by_month[(2025, 11)] > 1.1 * by_month[(2025, 8)]

    # Same season a year apart follows the generator's yearly trend, through the month's
    # noise. The same two Decembers generated with the trend set to 0 (a parameter of the
    # real generator, not a mock) show what the check tells apart: growth near 1.
    growth = by_month[(2025, 12)] / by_month[(2024, 12)]
    assert abs(growth - (1 + days._YEARLY_GROWTH)) < 0.05, growth
    monkeypatch.setattr(days, "_YEARLY_GROWTH", 0.0)
    _clear_caches()
    try:
        decembers = pd.concat(
            _daily_ga4(gen.ga4_traffic(date(y, 12, 1), date(y, 12, 31))) for y in (2024, 2025)
        )
        flat = _december_growth(decembers["sessions"])
    finally:
        _clear_caches()  # later tests must not read days cached without the trend
    assert abs(flat - 1) < 0.05, flat
    assert growth - flat > 0.05


@pytest.mark.parametrize(
    ("window", "before", "campaign"),
    [
        ((date(2025, 3, 1), date(2025, 3, 21)), date(2025, 2, 1), "spring_sale_search_2025"),
        ((date(2025, 11, 24), date(2025, 12, 1)), date(2025, 11, 3), "black_friday_search_2025"),
    ],
)
def test_campaign_launch_lifts_paid_sessions_and_spend(
    window: tuple[date, date],
    before: date,
    campaign: str,
    full: dict[str, pd.DataFrame],
) -> None:
    ga4, ads = full["ga4_traffic"], full["ad_spend"]
    first, last = window
    before_end = before + (last - first)
    assert gen.black_friday(2025) == date(2025, 11, 28)

    def paid_sessions(lo: date, hi: date) -> float:
        rows = ga4[ga4["date"].between(lo, hi)]
        paid = rows["sessionDefaultChannelGroup"].isin(gen.AD_CHANNEL_TO_GA4.values())
        return float(rows.loc[paid, "sessions"].sum())

    def spend(lo: date, hi: date) -> float:
        return float(ads.loc[ads["date"].between(lo, hi), "cost"].sum())

    assert paid_sessions(first, last) > 1.2 * paid_sessions(before, before_end)
    assert spend(first, last) > 1.2 * spend(before, before_end)
    campaign_days = set(ads.loc[ads["campaign"] == campaign, "date"])
    assert campaign_days == {first + timedelta(days=i) for i in range((last - first).days + 1)}
    assert campaign in set(ga4.loc[ga4["date"] == first, "sessionCampaignName"])


def test_outage_day_drops_ga4_only(full: dict[str, pd.DataFrame], daily: pd.DataFrame) -> None:
    week_before = OUTAGE - timedelta(days=7)
    assert daily.loc[OUTAGE, "sessions"] < 0.3 * daily.loc[week_before, "sessions"]
    for metric in GA4_METRICS:
        # Small counts (transactions) are noisier, hence the looser bound.
        assert daily.loc[OUTAGE, metric] < 0.45 * daily.loc[week_before, metric], metric
    ads = full["ad_spend"].groupby("date")["clicks"].sum()
    orders = full["orders"].groupby(_local_dates(full["orders"])).size()
    assert ads[OUTAGE] > 0.7 * ads[week_before]
    assert orders[OUTAGE] > 0.6 * orders[week_before]
    assert orders[OUTAGE] > 2 * daily.loc[OUTAGE, "transactions"]


def test_a_days_data_does_not_depend_on_the_request_or_the_run_date() -> None:
    """The demo's history ends yesterday: run a day later, every day it shares with the run
    before must be the same (an outage anchored on the end of the request moved)."""
    today = gen.ga4_traffic(date(2025, 6, 1), date(2025, 8, 10))
    tomorrow = gen.ga4_traffic(date(2025, 5, 2), date(2025, 8, 30))
    overlap = tomorrow[tomorrow["date"] <= date(2025, 8, 10)]
    overlap = overlap[overlap["date"] >= date(2025, 6, 1)].reset_index(drop=True)
    pd.testing.assert_frame_equal(today, overlap)
    for name in ("ad_spend", "orders", "survey_answers"):
        a = SOURCES[name](date(2025, 7, 20), date(2025, 8, 10))
        b = SOURCES[name](date(2025, 7, 1), date(2025, 8, 30))
        local = _local_dates(b)
        b = b[(local >= date(2025, 7, 20)) & (local <= date(2025, 8, 10))]
        pd.testing.assert_frame_equal(a, b.reset_index(drop=True), obj=name)
    daily = _daily_ga4(today)
    outage = date(2025, 7, 29)
    assert daily.loc[outage, "sessions"] < 0.3 * daily.loc[outage - timedelta(days=7), "sessions"]
    assert (daily["sessions"].drop(outage) > 1500).all()


# --- cross-source consistency ----------------------------------------------------------------


def test_ad_channels_map_to_ga4_paid_channels(full: dict[str, pd.DataFrame]) -> None:
    ga4, ads = full["ga4_traffic"], full["ad_spend"]
    assert set(ads["platform"]) == {"google_ads", "meta", "linkedin"}
    assert set(ads["channel"]) == set(gen.AD_CHANNEL_TO_GA4)
    assert set(gen.AD_CHANNEL_TO_GA4.values()) <= set(ga4["sessionDefaultChannelGroup"])
    ga4_channel = ads["channel"].map(gen.AD_CHANNEL_TO_GA4)
    clicks = ads.assign(group=ga4_channel).groupby(["date", "group"])["clicks"].sum()
    paid = ga4[ga4["sessionDefaultChannelGroup"].isin(gen.AD_CHANNEL_TO_GA4.values())]
    sessions = paid.groupby(["date", "sessionDefaultChannelGroup"])["sessions"].sum()
    sessions.index.names = clicks.index.names
    ratio = (clicks / sessions).drop(OUTAGES, level="date")
    assert ratio.notna().all() and len(ratio) == 3 * (430 - len(OUTAGES))
    assert ratio.between(1.1 - 0.01, 1.4 + 0.01).all()
    # Every ad campaign is visible in GA4 under the mapped channel on the same day.
    ga4_keys = set(
        ga4[["date", "sessionDefaultChannelGroup", "sessionCampaignName"]].itertuples(False)
    )
    ad_keys = set(
        ads.assign(channel=ga4_channel)[["date", "channel", "campaign"]].itertuples(False)
    )
    assert ad_keys <= ga4_keys


def test_ad_costs_are_plausible(full: dict[str, pd.DataFrame]) -> None:
    ads = full["ad_spend"]
    assert (ads["clicks"] > 0).all()
    ctr = ads["clicks"] / ads["impressions"]
    assert ctr.between(0.01, 0.05).all()
    eur = ads[ads["currency"] == "EUR"]
    assert (eur["cost"] / eur["clicks"]).between(0.4, 1.5).all()
    usd = ads[ads["currency"] == "USD"]
    assert 0 < len(usd) < 0.2 * len(ads)
    assert set(usd["platform"]) == {"linkedin"}


def test_orders_line_up_with_ga4_transactions(
    full: dict[str, pd.DataFrame], daily: pd.DataFrame
) -> None:
    orders = full["orders"]
    per_day = orders.groupby(_local_dates(orders)).agg(
        n=("order_id", "size"), rev=("revenue", "sum")
    )
    days = daily.drop(OUTAGES)
    ratio = per_day["n"].drop(OUTAGES) / days["transactions"]
    assert ratio.between(1.0, 1.3).all()
    assert (per_day["rev"].drop(OUTAGES) >= days["purchaseRevenue"] - 0.01).all()
    assert set(orders["channel"]) <= set(gen.CHANNELS)
    assert (orders["cost_of_goods"] < orders["revenue"]).all()
    assert 60 <= orders["revenue"].mean() <= 90


def test_some_orders_fall_on_another_utc_day(full: dict[str, pd.DataFrame]) -> None:
    orders = full["orders"]
    local = orders["ordered_at"].dt.tz_convert(gen.DEMO_TIME_ZONE).dt.date
    assert (local != orders["ordered_at"].dt.date).any()
    # Also within a single week, so short demo ranges show the effect too.
    week = gen.orders(date(2025, 6, 2), date(2025, 6, 8))
    week_local = week["ordered_at"].dt.tz_convert(gen.DEMO_TIME_ZONE).dt.date
    assert (week_local != week["ordered_at"].dt.date).any()


def test_customers_repeat_and_new_flag_marks_first_order(full: dict[str, pd.DataFrame]) -> None:
    orders = full["orders"].sort_values(["ordered_at", "order_id"])
    counts = orders["customer_id"].value_counts()
    assert (counts > 1).sum() > 1000
    assert 0.4 < orders["is_new_customer"].mean() < 0.8
    new = orders[orders["is_new_customer"]]
    assert not new["customer_id"].duplicated().any()
    first_seen = orders.drop_duplicates("customer_id")
    # A new customer's flagged order is the first time the customer shows up.
    assert set(new["order_id"]) <= set(first_seen["order_id"])
    # Flags are global, not per range: a later sub-range never re-flags older customers.
    later = gen.orders(date(2025, 10, 1), END)
    merged = later.merge(full["orders"], on="order_id", suffixes=("", "_full"))
    assert len(merged) == len(later)
    assert (merged["is_new_customer"] == merged["is_new_customer_full"]).all()


def test_survey_answers_are_plausible(full: dict[str, pd.DataFrame]) -> None:
    survey = full["survey_answers"]
    per_day = survey.groupby(_local_dates(survey)).size()
    assert len(per_day) == 430 and per_day.between(5, 30).all()
    assert survey["csat_score"].between(1, 5).all()
    assert survey["nps_score"].between(0, 10).all()
    assert survey["csat_score"].isin([4, 5]).mean() > 0.7
    assert survey["nps_score"].between(7, 10).mean() > 0.7
    assert set(survey["channel"]) <= set(gen.CHANNELS)


# --- landing files and speed -----------------------------------------------------------------


def test_write_landing_files_is_byte_identical(tmp_path: Path) -> None:
    start, end = date(2025, 1, 15), date(2025, 3, 10)
    first = gen.write_landing_files(tmp_path / "a", start, end)
    _clear_caches()
    second = gen.write_landing_files(tmp_path / "b", start, end)
    assert list(first) == ["ad_spend", "orders", "survey"]
    assert [p.name for p in first["orders"]] == [
        "orders_2025-01.csv",
        "orders_2025-02.csv",
        "orders_2025-03.csv",
    ]
    for name in first:
        assert [p.parent.name for p in first[name]] == [name] * 3
        for a, b in zip(first[name], second[name], strict=True):
            assert a.read_bytes() == b.read_bytes()
    spend = pd.concat(pd.read_csv(p) for p in first["ad_spend"])
    assert len(spend) == len(gen.ad_spend(start, end))
    orders = pd.concat(pd.read_csv(p) for p in first["orders"])
    assert list(orders["order_id"]) == list(gen.orders(start, end)["order_id"])


def test_430_days_of_all_sources_is_fast() -> None:
    _clear_caches()
    began = time.perf_counter()
    for fn in SOURCES.values():
        fn(START, END)
    assert time.perf_counter() - began < 2.0
