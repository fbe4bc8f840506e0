"""The KPI language: sources, conformed dimensions and KPI definitions, as typed models.

The models only check the shape of each field. Rules that look across fields or files
(unknown columns, cycles, additivity) live in ``kpi.language.rules`` so that every problem is
collected and reported together.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from kpi.language.status import Status


class Grain(StrEnum):
    day = "day"
    week = "week"
    month = "month"
    quarter = "quarter"
    year = "year"


GRAIN_ORDER = [Grain.day, Grain.week, Grain.month, Grain.quarter, Grain.year]


class Direction(StrEnum):
    higher_is_better = "higher_is_better"
    lower_is_better = "lower_is_better"
    within_band = "within_band"


class Unit(StrEnum):
    count = "count"
    currency = "currency"
    percent = "percent"
    ratio = "ratio"
    seconds = "seconds"


class Additivity(StrEnum):
    additive = "additive"
    semi_additive = "semi_additive"  # adds across dimensions, takes the last value across time
    non_additive = "non_additive"  # distinct counts, rates: never summed


class Agg(StrEnum):
    sum = "sum"
    count = "count"
    count_distinct = "count_distinct"
    min = "min"
    max = "max"
    average = "average"
    last = "last"


class KpiType(StrEnum):
    simple = "simple"
    ratio = "ratio"
    derived = "derived"
    cumulative = "cumulative"
    period_over_period = "period_over_period"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------

ColumnType = Literal["integer", "number", "string", "date", "timestamp", "boolean"]
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class Reporting(_Strict):
    time_zone: str = "UTC"
    currency: str = "EUR"
    week_start: Literal[WEEKDAYS] = "monday"  # type: ignore[valid-type]
    fiscal_year_start_month: int = Field(1, ge=1, le=12)


class ConformedDimension(_Strict):
    description: str = ""
    # sparse: a slice by this dimension (alone or with others) has rows only for the
    # periods and values with data in the row's window, not the full spine of periods x
    # every value ever seen, zero-filled (README, "Sparse slices"). For dimensions with many
    # values (campaigns): most combinations of a period and a value have no data.
    sparse: bool = False


class ColumnSpec(_Strict):
    type: ColumnType
    description: str = ""
    additivity: Additivity | None = None  # set for measures; None for attributes
    # Checked when a file is loaded (ingest.files). ``required``: a row without a value is
    # refused; None means required for the key and time columns, optional otherwise.
    # ``allowed``: the only values a string column may hold (a vocabulary, currency codes).
    # They decide whether a file loads, never a number, so they are kept out of dumps and
    # with that out of the definition version (``_numeric_source_fields``).
    required: bool | None = Field(None, exclude=True)
    allowed: tuple[str, ...] | None = Field(None, exclude=True)
    # ``min`` / ``max``: the range a number or integer value must lie in to load (file
    # sources); unset bounds take ingest.value_rules' default of +-1e12, which stops an
    # absurd value (1e308) from making a day's sum infinite.
    min: float | None = Field(None, exclude=True)
    max: float | None = Field(None, exclude=True)
    # ``claimed_by``: the column naming who claims the value (``platform``). Ad platforms
    # each attribute conversions by their own rules and several claim the same order, so
    # such a value adds up within one platform, never across them (ClaimedConversionsRule).
    claimed_by: str | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _range_fits(self) -> ColumnSpec:
        if (self.min is not None or self.max is not None) and self.type not in (
            "integer",
            "number",
        ):
            raise ValueError(f"only a number or integer column has a range, not a {self.type}")
        for bound in (self.min, self.max):
            if bound is not None and not math.isfinite(bound):
                raise ValueError(f"a range bound must be a finite number, not {bound}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class TimeSpec(_Strict):
    column: str
    type: Literal["date", "timestamp"] = "date"
    time_zone: str = "UTC"


class ClassifyFrom(_Strict):
    """The columns holding a row's UTM source, medium and campaign."""

    source: str
    medium: str
    campaign: str | None = None


class DimensionMapping(_Strict):
    column: str
    # Maps the source's own vocabulary onto the conformed one; unmapped values pass through.
    map: dict[str, str] = Field(default_factory=dict)
    # The channel taxonomy (kpi_definitions/taxonomy/channels.yaml) classifies a row whose
    # ``column`` holds no channel (NULL or Unassigned) from these columns:
    # GA4's own group is kept where it has one, since GA4 sees more than the row (auto-tagged
    # clicks without UTM values), and its Unassigned rows are classified by our rules.
    classify: ClassifyFrom | None = None


class CurrencyConversion(_Strict):
    """Money billed in other currencies, converted on load with the ``fx_rates`` source.

    The file's ``amount`` is kept as ``original_<amount>`` beside ``original_currency`` and
    ``fx_rate``; ``amount`` itself holds the value in the reporting currency.
    """

    amount: str
    currency_column: str = "currency"


# Source column names starting so are the engine's: a daily cube computes each row's day and
# dimension values beside the source's columns under such names (kpi.compute.cubes).
RESERVED_COLUMN_PREFIX = "_cube_"


class SourceSpec(_Strict):
    table: str
    description: str = ""
    time: TimeSpec
    columns: dict[str, ColumnSpec]
    dimensions: dict[str, DimensionMapping] = Field(default_factory=dict)
    key: list[str] = Field(default_factory=list)  # the business key, unique per row
    landing: str | None = None  # folder under the landing root; None for API sources
    currency_conversion: CurrencyConversion | None = None
    # Pre-aggregated sources (GA4 users by month) can only be read at their own grain.
    grain: Grain = Grain.day
    # A view over these sources' tables, their rows one after another (kpi.warehouse.views):
    # ad spend from files and from each ad platform's API, read by the KPIs as one source.
    # A column a member lacks reads as NULL there.
    union_of: list[str] = Field(default_factory=list)

    @property
    def schema_name(self) -> str | None:
        return self.table.split(".", 1)[0] if "." in self.table else None

    @property
    def table_name(self) -> str:
        return self.table.split(".", 1)[-1]


class SourcesFile(_Strict):
    reporting: Reporting = Reporting()
    dimensions: dict[str, ConformedDimension]
    sources: dict[str, SourceSpec]


# ---------------------------------------------------------------------------------------------
# KPIs
# ---------------------------------------------------------------------------------------------


class Measure(_Strict):
    source: str
    agg: Agg
    expr: str | None = None  # None only for count
    filter: str | None = None


class Band(_Strict):
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> Band:
        if self.min > self.max:
            raise ValueError(f"band min {self.min} is above its max {self.max}")
        return self


class Target(_Strict):
    value: float | None = None
    band: Band | None = None
    grain: Grain = Grain.month
    unit: Unit | None = None
    currency: str | None = None
    # linear: spread evenly by day; per_period: given explicitly; seasonal: by last year's
    # daily values of the KPI 52 weeks (364 days) earlier, so weekdays line up (additive KPIs
    # reported by day only; a target period last year does not cover is spread linearly,
    # and its rows say so).
    phasing: Literal["linear", "per_period", "seasonal"] = "linear"
    per_period: dict[dt.date, float] = Field(default_factory=dict)
    # The goal's deadline: the goal runs from the start of the (fiscal) year holding it, and
    # kpi_comparisons projects the KPI to it (kpi.status.comparisons).
    deadline: dt.date | None = None
    example: bool = False


class Benchmark(_Strict):
    value: float | None = None
    band: Band | None = None
    grain: Grain = Grain.month  # the period the value is for (spread by day when additive)
    source: str
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None
    example: bool = False


class Thresholds(_Strict):
    """Status by attainment (actual vs target, direction-aware, 1.0 = on target)."""

    # Attainment is never negative: a negative threshold could never be crossed.
    at_risk_below: float = Field(1.0, ge=0, allow_inf_nan=False)
    off_track_below: float = Field(0.9, ge=0, allow_inf_nan=False)


class Cumulative(_Strict):
    of: str  # another KPI id
    to_date: Literal["month", "quarter", "year"] | None = None
    window_days: Literal[7, 28, 90] | None = None
    # all_time: from the first day of data through the row's last day (a running total).
    window: Literal["all_time"] | None = None

    @property
    def running_kind(self) -> str:
        """The running window of the periods table it reads: ``month_to_date``,
        ``rolling_28``, ``all_time``..."""
        if self.to_date:
            return f"{self.to_date}_to_date"
        if self.window:
            return self.window
        return f"rolling_{self.window_days}"

    @property
    def label(self) -> str:
        """How people say it: "month-to-date", "last 28 days", "all time"."""
        if self.to_date:
            return f"{self.to_date}-to-date"
        if self.window:
            return "all time"
        return f"last {self.window_days} days"


_OFFSET = re.compile(r"(\d+)\s*(day|week|month)s?")
NAMED_OFFSETS = ("previous_period", "same_period_last_year")


class PeriodOverPeriod(_Strict):
    of: str
    # previous_period, same_period_last_year, or a fixed shift at any grain: "7 days",
    # "4 weeks", "1 month" (a month back from 31 March is 28 or 29 February).
    offset: str = "previous_period"

    @field_validator("offset")
    @classmethod
    def _known_offset(cls, value: str) -> str:
        value = value.strip()
        if value in NAMED_OFFSETS or _OFFSET.fullmatch(value):
            if value not in NAMED_OFFSETS and int(_OFFSET.fullmatch(value)[1]) == 0:
                raise ValueError("an offset of 0 compares a period with itself")
            return value
        raise ValueError(
            "expected previous_period, same_period_last_year or a shift such as "
            "'7 days', '4 weeks' or '1 month'"
        )

    @property
    def shift(self) -> tuple[int, int] | None:
        """(days, months) back for a fixed shift; None for a named offset."""
        match = _OFFSET.fullmatch(self.offset)
        if match is None:
            return None
        n, unit = int(match[1]), match[2]
        return {"day": (n, 0), "week": (7 * n, 0), "month": (0, n)}[unit]

    @property
    def label(self) -> str:
        if self.shift is None:
            return f"the {self.offset.replace('_', ' ')}"
        return f"{self.offset} earlier"


class ChangelogEntry(_Strict):
    version: str
    date: dt.date | None = None
    note: str


_DURATION = re.compile(r"(\d+)\s*([mhd])")
_DURATION_UNITS = {"m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> dt.timedelta:
    """A duration written as a whole number and a unit: ``30m``, ``12h`` or ``7d``."""
    if isinstance(value, dt.timedelta):
        return value
    match = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        # ValueError: pydantic reports it at the field, with file and line, like any other.
        raise ValueError("expected a duration such as 30m, 12h or 7d (minutes, hours, days)")
    return dt.timedelta(seconds=int(match[1]) * _DURATION_UNITS[match[2]])


def format_duration(value: dt.timedelta) -> str:
    """The inverse of ``parse_duration``, so dumped definitions read as they were written."""
    seconds = int(value.total_seconds())
    for suffix in ("d", "h"):
        if seconds and seconds % _DURATION_UNITS[suffix] == 0:
            return f"{seconds // _DURATION_UNITS[suffix]}{suffix}"
    return f"{seconds // 60}m"


Duration = Annotated[
    dt.timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
AlertChannel = Literal["slack", "email"]

# The statuses a status_change rule can wait for (a KPI never changes *to* having no target).
ALERT_STATUSES: tuple[Status, ...] = (Status.on_track, Status.at_risk, Status.off_track)


def parse_alert_status(value: object) -> Status:
    """One of ``ALERT_STATUSES``, written as its value (``off_track``)."""
    if isinstance(value, str) and value in ALERT_STATUSES:
        return Status(value)
    # The same error type and message as a Literal of the three values.
    names = [f"'{s}'" for s in ALERT_STATUSES]
    expected = f"{', '.join(names[:-1])} or {names[-1]}"
    raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})


AlertStatus = Annotated[Status, BeforeValidator(parse_alert_status)]


class AlertRule(_Strict):
    """When a KPI notifies people; evaluated by ``kpi.monitoring.alerts`` after each refresh.

    ``status_change``: the latest complete period at ``grain`` has status ``to`` and the one
    before it did not. ``anomaly``: a day flagged in ``kpi_anomalies`` in the last few days.
    ``consecutive_breaches``: the last ``count`` complete periods at ``grain`` are all
    off_track. ``cooldown``: no second alert of the same rule for the KPI within this time
    of the last one sent.
    """

    rule: Literal["status_change", "anomaly", "consecutive_breaches"]
    to: AlertStatus | None = None  # status_change only
    grain: Grain | None = None  # default month; anomalies are always daily
    count: int | None = Field(None, ge=2, le=366)  # consecutive_breaches only
    cooldown: Duration = dt.timedelta(days=1)
    channels: tuple[AlertChannel, ...] = ("slack", "email")

    @model_validator(mode="after")
    def _fields_fit_the_rule(self) -> AlertRule:
        if self.to is not None and self.rule != "status_change":
            raise ValueError("`to` only applies to status_change rules")
        if self.rule == "anomaly" and self.grain not in (None, Grain.day):
            raise ValueError("anomaly rules read daily anomalies; leave out `grain`")
        if self.rule == "consecutive_breaches" and self.count is None:
            raise ValueError("consecutive_breaches needs `count` (periods in a row, 2 or more)")
        if self.count is not None and self.rule != "consecutive_breaches":
            raise ValueError("`count` only applies to consecutive_breaches rules")
        if not self.channels:
            raise ValueError("channels: name at least one of slack, email")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("channels: each channel may be named once")
        return self

    @property
    def period_grain(self) -> Grain:
        """The grain of the periods the rule looks at."""
        return Grain.day if self.rule == "anomaly" else (self.grain or Grain.month)

    @property
    def to_status(self) -> Status:
        return self.to or Status.off_track

    @property
    def label(self) -> str:
        """Names the rule within its KPI: the cooldown and event keys are per label."""
        if self.rule == "status_change":
            return f"status_change:{self.period_grain}:{self.to_status}"
        if self.rule == "consecutive_breaches":
            return f"consecutive_breaches:{self.period_grain}:{self.count}"
        return "anomaly"


class Kpi(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    description: str
    area: str = ""  # filled from the file when omitted
    owner: str
    unit: Unit
    currency: str | None = None
    direction: Direction
    format: str = ""
    type: KpiType
    measure: Measure | None = None
    numerator: Measure | None = None
    denominator: Measure | None = None
    expr: str | None = None
    cumulative: Cumulative | None = None
    period_over_period: PeriodOverPeriod | None = None
    # Each entry is one slice: a dimension (`channel`) or a list of dimensions sliced
    # together (`[channel, campaign]`: one row per period and value combination).
    dimensions: list[str | list[str]] = Field(default_factory=list)
    grains: list[Grain] = Field(default_factory=lambda: [Grain.day, Grain.week, Grain.month])
    goal: str = ""
    target: Target | None = None
    benchmark: Benchmark | None = None
    thresholds: Thresholds = Thresholds()
    min_sample_size: int | None = Field(None, ge=1)
    tags: list[str] = Field(default_factory=list)
    version: str = "1"
    changelog: list[ChangelogEntry] = Field(default_factory=list)
    alerts: list[AlertRule] = Field(default_factory=list)
    # True for a KPI that sets every platform's claims (``claimed_by`` columns) against
    # observed conversions on purpose: summing the claims across platforms is its point.
    reconciles_claims: bool = False

    @property
    def slice_dimensions(self) -> list[tuple[str, ...]]:
        """The slices of ``dimensions``, each as the tuple of its dimensions."""
        return [(d,) if isinstance(d, str) else tuple(d) for d in self.dimensions]

    @property
    def dimension_names(self) -> list[str]:
        """Every dimension some slice of the KPI uses, once each, in declared order."""
        return list(dict.fromkeys(d for dims in self.slice_dimensions for d in dims))

    @property
    def measures(self) -> list[tuple[str, Measure]]:
        """The measures this KPI reads directly, by role."""
        out = []
        for role in ("measure", "numerator", "denominator"):
            m = getattr(self, role)
            if m is not None:
                out.append((role, m))
        return out

    def referenced_kpis(self) -> list[str]:
        """Other KPIs this one is computed from (derived, cumulative, period over period)."""
        from kpi.language.expressions import referenced_names

        if self.type == KpiType.derived and self.expr:
            try:
                return referenced_names(self.expr)
            except ValueError:
                return []
        if self.type == KpiType.cumulative and self.cumulative:
            return [self.cumulative.of]
        if self.type == KpiType.period_over_period and self.period_over_period:
            return [self.period_over_period.of]
        return []


class KpiFile(_Strict):
    area: str
    description: str = ""
    kpis: list[Kpi]


def definition_version(
    kpi: Kpi,
    dependencies: list[Kpi],
    sources: list[SourceSpec],
    sparse: list[str] | None = None,
    taxonomy: str | None = None,
) -> str:
    """A short hash of everything that changes the numbers of ``kpi``.

    Management fields (target, owner, description) are left out on purpose: changing a
    target must not mark the history as computed by another definition. ``sparse``: the
    dimensions of the KPI's slices declared sparse (which rows exist); hashed only when
    there are some, so a KPI without sparse slices keeps the version it had.
    """
    numeric_fields = {"type", "measure", "numerator", "denominator", "expr", "cumulative"}
    numeric_fields |= {"period_over_period", "dimensions"}
    payload = {
        "kpi": kpi.model_dump(mode="json", include=numeric_fields),
        "deps": sorted(
            (d.id, d.model_dump(mode="json", include=numeric_fields)) for d in dependencies
        ),
        "sources": sorted(
            json.dumps(_numeric_source_fields(s), sort_keys=True, default=str) for s in sources
        ),
    }
    if sparse:
        payload["sparse"] = sorted(sparse)
    if taxonomy:  # the channel rules that decide its slices (kpi.language.channels)
        payload["taxonomy"] = taxonomy
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def _numeric_source_fields(source: SourceSpec) -> dict:
    """What of a source changes numbers: not descriptions, keys or landing folders."""
    data = source.model_dump(mode="json", exclude={"description", "key", "landing"})
    for column in data["columns"].values():
        column.pop("description", None)
    if not data["union_of"]:  # a plain source keeps the version it had before unions
        data.pop("union_of")
    for mapping in data["dimensions"].values():
        if mapping.get("classify") is None:  # likewise a dimension without a taxonomy
            mapping.pop("classify", None)
    return data
