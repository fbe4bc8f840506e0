"""The demo shop's fixed catalogue: channels, ad campaigns, GA4 segments and the rates
and profiles every generated day is drawn from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

DEMO_PROPERTY_ID = "412345678"
DEMO_TIME_ZONE = "Europe/Copenhagen"  # GA4 property time zone = reporting time zone
DEMO_CURRENCY = "EUR"

# The simulated GA4 tracking outages: every year on these calendar days (month, day). Fixed
# on the calendar, not on the request, so a day's data never depends on when the demo runs;
# six months apart, so every demo window (14 months) holds at least two.
OUTAGE_DATES: tuple[tuple[int, int], ...] = ((1, 29), (7, 29))
# Share of GA4 hits that still arrive on the outage day (a broken tag fires on a few pages only).
OUTAGE_RETENTION = 0.2

CHANNELS: tuple[str, ...] = (
    "Organic Search",
    "Paid Search",
    "Paid Social",
    "Organic Social",
    "Direct",
    "Email",
    "Referral",
    "Display",
)
DEVICES: tuple[str, ...] = ("desktop", "mobile", "tablet")
PLATFORMS: tuple[str, ...] = ("google_ads", "meta", "linkedin")
# Ad platforms describe campaigns in their own vocabulary; this is the bridge to GA4.
AD_CHANNEL_TO_GA4: dict[str, str] = {
    "search": "Paid Search",
    "social": "Paid Social",
    "display": "Display",
}

# Separate RNG streams per source: extra draws in one source never shift another source's numbers.
_STREAM_TRAFFIC = 1
_STREAM_OUTAGE = 2
_STREAM_ADS = 3
_STREAM_ORDERS = 4
_STREAM_SURVEY = 5

_BASE_SESSIONS = 3000.0  # all-channel sessions on an average day at _TREND_ANCHOR
_TREND_ANCHOR = date(2025, 1, 1).toordinal()
_YEARLY_GROWTH = 0.10
_UNTRACKED_ORDER_RATE = 0.08  # orders GA4 never sees (consent declined, ad blockers)
# Repeat orders point at one of the first _REPEAT_POOL new customers of an earlier day, so a
# customer's identity can be derived from one day alone and never depends on the range.
_REPEAT_POOL = 15
_REPEAT_MEAN_GAP_DAYS = 45
_REPEAT_MAX_GAP_DAYS = 720
_EUR_USD = 1.08

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_NS_PER_DAY = 86_400 * 1_000_000_000


@dataclass(frozen=True)
class _ChannelProfile:
    engagement: float  # engagedSessions / sessions
    new_users: float  # newUsers / sessions
    conversion: float  # transactions / sessions
    key_events: float  # non-purchase key events (sign-ups, leads) per session
    devices: tuple[float, float, float]  # desktop, mobile, tablet share
    new_customer: float  # share of this channel's orders placed by first-time customers


_PROFILES: dict[str, _ChannelProfile] = {
    "Organic Search": _ChannelProfile(0.66, 0.55, 0.018, 0.040, (0.48, 0.47, 0.05), 0.70),
    "Paid Search": _ChannelProfile(0.62, 0.58, 0.024, 0.045, (0.45, 0.50, 0.05), 0.72),
    "Paid Social": _ChannelProfile(0.56, 0.70, 0.009, 0.030, (0.20, 0.76, 0.04), 0.80),
    "Organic Social": _ChannelProfile(0.57, 0.60, 0.008, 0.030, (0.20, 0.76, 0.04), 0.75),
    "Direct": _ChannelProfile(0.64, 0.30, 0.025, 0.045, (0.50, 0.45, 0.05), 0.45),
    "Email": _ChannelProfile(0.70, 0.08, 0.032, 0.060, (0.40, 0.55, 0.05), 0.15),
    "Referral": _ChannelProfile(0.68, 0.55, 0.020, 0.040, (0.50, 0.45, 0.05), 0.70),
    "Display": _ChannelProfile(0.56, 0.72, 0.006, 0.020, (0.35, 0.60, 0.05), 0.75),
}


@dataclass(frozen=True)
class _AdCampaign:
    platform: str
    name: str  # may contain "{year}"
    channel: str  # platform vocabulary: search | social | display
    cpc: float  # typical cost per click in EUR
    ctr: float  # typical click-through rate
    currency: str = DEMO_CURRENCY


@dataclass(frozen=True)
class _Segment:
    """One GA4 source / medium / campaign combination (crossed with the three devices)."""

    channel: str
    source: str
    medium: str
    campaign: str  # may contain "{year}" for campaigns that come back every year
    share: float  # sessions as a share of the day's baseline volume
    window: str | None = None  # None: always on; else a key of _WINDOW_CHECKS
    ad: tuple[str, str] | None = None  # (platform, campaign) in _AD_CAMPAIGNS when paid
    conversion: float | None = None  # overrides the channel conversion rate


_AD_CAMPAIGNS: tuple[_AdCampaign, ...] = (
    _AdCampaign("google_ads", "brand_search", "search", 0.45, 0.045),
    _AdCampaign("google_ads", "generic_search", "search", 1.25, 0.028),
    _AdCampaign("google_ads", "spring_sale_search_{year}", "search", 0.95, 0.035),
    _AdCampaign("google_ads", "black_friday_search_{year}", "search", 1.35, 0.040),
    _AdCampaign("google_ads", "remarketing_display", "display", 0.55, 0.012),
    _AdCampaign("google_ads", "prospecting_display", "display", 0.45, 0.011),
    _AdCampaign("google_ads", "black_friday_display_{year}", "display", 0.60, 0.014),
    _AdCampaign("meta", "prospecting_social", "social", 0.75, 0.012),
    _AdCampaign("meta", "retargeting_social", "social", 0.60, 0.018),
    _AdCampaign("meta", "audience_network_display", "display", 0.48, 0.011),
    _AdCampaign("meta", "spring_sale_social_{year}", "social", 0.70, 0.015),
    _AdCampaign("meta", "black_friday_social_{year}", "social", 0.95, 0.020),
    _AdCampaign("linkedin", "corporate_gifting", "social", 1.40, 0.012),
    # Billed from a US ad account, so the pipeline has to convert currencies.
    _AdCampaign("linkedin", "corporate_gifting_us", "social", 1.30, 0.012, "USD"),
)


def _paid(
    channel: str,
    source: str,
    medium: str,
    platform: str,
    campaign: str,
    share: float,
    window: str | None = None,
    conversion: float | None = None,
) -> _Segment:
    # Paid traffic is tagged with the ad platform's campaign name, so both sides join on it.
    return _Segment(
        channel, source, medium, campaign, share, window, (platform, campaign), conversion
    )


_ORG, _REF = "(organic)", "(referral)"
_PSE, _PSO, _DIS = "Paid Search", "Paid Social", "Display"
_GADS, _BF = "google_ads", "black_friday"
_SEGMENTS: tuple[_Segment, ...] = (
    _Segment("Organic Search", "google", "organic", _ORG, 0.280),
    _Segment("Organic Search", "bing", "organic", _ORG, 0.035),
    _Segment("Organic Search", "duckduckgo", "organic", _ORG, 0.015),
    _Segment("Direct", "(direct)", "(none)", "(direct)", 0.180),
    _Segment("Organic Social", "facebook.com", "referral", _REF, 0.025),
    _Segment("Organic Social", "instagram.com", "referral", _REF, 0.015),
    _Segment("Organic Social", "linkedin.com", "referral", _REF, 0.010),
    _Segment("Referral", "trustpilot.com", "referral", _REF, 0.020),
    _Segment("Referral", "pricerunner.dk", "referral", _REF, 0.020),
    _Segment("Referral", "bolius.dk", "referral", _REF, 0.010),
    _Segment("Email", "newsletter", "email", "weekly_newsletter", 0.045),
    _Segment("Email", "crm", "email", "winback_flow", 0.015),
    _Segment("Email", "newsletter", "email", "spring_sale_{year}", 0.020, "spring"),
    _Segment("Email", "newsletter", "email", "black_friday_{year}", 0.040, _BF),
    _paid(_PSE, "google", "cpc", _GADS, "brand_search", 0.080, conversion=0.032),
    _paid(_PSE, "google", "cpc", _GADS, "generic_search", 0.090, conversion=0.017),
    _paid(_PSE, "google", "cpc", _GADS, "spring_sale_search_{year}", 0.060, "spring"),
    _paid(_PSE, "google", "cpc", _GADS, "black_friday_search_{year}", 0.100, _BF),
    _paid(_PSO, "facebook", "paid_social", "meta", "prospecting_social", 0.040),
    _paid(_PSO, "instagram", "paid_social", "meta", "prospecting_social", 0.030),
    _paid(_PSO, "facebook", "paid_social", "meta", "retargeting_social", 0.012, None, 0.016),
    _paid(_PSO, "instagram", "paid_social", "meta", "retargeting_social", 0.008, None, 0.016),
    _paid(_PSO, "facebook", "paid_social", "meta", "spring_sale_social_{year}", 0.040, "spring"),
    _paid(_PSO, "instagram", "paid_social", "meta", "spring_sale_social_{year}", 0.030, "spring"),
    _paid(_PSO, "facebook", "paid_social", "meta", "black_friday_social_{year}", 0.060, _BF),
    _paid(_PSO, "instagram", "paid_social", "meta", "black_friday_social_{year}", 0.040, _BF),
    _paid(_PSO, "linkedin", "paid_social", "linkedin", "corporate_gifting", 0.006),
    _paid(_PSO, "linkedin", "paid_social", "linkedin", "corporate_gifting_us", 0.004),
    _paid(_DIS, "google", "display", _GADS, "remarketing_display", 0.025, conversion=0.010),
    _paid(_DIS, "google", "display", _GADS, "prospecting_display", 0.015),
    _paid(_DIS, "google", "display", _GADS, "black_friday_display_{year}", 0.040, _BF),
    # Meta Audience Network traffic lands in GA4's Display group (medium "display"), although
    # the ad platform is a social one: a classic mapping trap.
    _paid(_DIS, "facebook", "display", "meta", "audience_network_display", 0.020),
)

_CHANNEL_INDEX = {name: i for i, name in enumerate(CHANNELS)}
_AD_INDEX = {(c.platform, c.name): i for i, c in enumerate(_AD_CAMPAIGNS)}

_SEG_CHANNEL = np.array([_CHANNEL_INDEX[s.channel] for s in _SEGMENTS])
_SEG_SHARE = np.array([s.share for s in _SEGMENTS])
_SEG_CONVERSION = np.array(
    [s.conversion or _PROFILES[s.channel].conversion for s in _SEGMENTS], dtype=float
)
_SEG_AD = np.array([_AD_INDEX[s.ad] if s.ad else -1 for s in _SEGMENTS])
_SEG_WINDOW = [s.window for s in _SEGMENTS]

_CH_ENGAGEMENT = np.array([_PROFILES[c].engagement for c in CHANNELS])
_CH_NEW_USERS = np.array([_PROFILES[c].new_users for c in CHANNELS])
_CH_KEY_EVENTS = np.array([_PROFILES[c].key_events for c in CHANNELS])
_CH_DEVICES = np.array([_PROFILES[c].devices for c in CHANNELS])
_CH_NEW_CUSTOMER = np.array([_PROFILES[c].new_customer for c in CHANNELS])
# Orders GA4 misses come mostly from people who declined tracking, whatever brought them.
_CH_UNTRACKED = np.array([0.30, 0.15, 0.08, 0.03, 0.30, 0.06, 0.05, 0.03])

_AD_CHANNEL = np.array([c.channel for c in _AD_CAMPAIGNS], dtype=object)
_AD_PLATFORM = np.array([c.platform for c in _AD_CAMPAIGNS], dtype=object)
_AD_CPC = np.array([c.cpc for c in _AD_CAMPAIGNS])
_AD_CTR = np.array([c.ctr for c in _AD_CAMPAIGNS])
_AD_USD = np.array([c.currency == "USD" for c in _AD_CAMPAIGNS])

_DEVICE_ENGAGEMENT = np.array([0.03, -0.03, 0.0])
_DEVICE_CONVERSION = np.array([1.25, 0.80, 1.00])
# Rows: Monday..Sunday, columns: desktop, mobile, tablet. People browse on phones at weekends.
_WEEKDAY_DEVICE = np.array(
    [
        [1.08, 0.95, 0.95],
        [1.10, 0.95, 0.95],
        [1.08, 0.95, 0.95],
        [1.06, 0.96, 0.96],
        [0.98, 1.00, 1.00],
        [0.72, 1.12, 1.15],
        [0.75, 1.18, 1.20],
    ]
)
# Local-time hour profile of purchases; the small night weights put some orders right after
# midnight, where the UTC day is still the previous one.
_HOUR_WEIGHTS = np.array(
    [
        [1.2, 0.6, 0.3, 0.2, 0.2, 0.4, 1.0, 2.0, 3.0, 3.8, 4.2, 4.5],  # 00-11h
        [4.8, 4.6, 4.4, 4.3, 4.4, 4.8, 5.2, 6.0, 6.6, 6.4, 5.0, 2.8],  # 12-23h
    ]
).ravel()
_HOUR_P = _HOUR_WEIGHTS / _HOUR_WEIGHTS.sum()
_CSAT_P = np.array([0.02, 0.04, 0.10, 0.34, 0.50])
