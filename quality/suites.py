"""Data-quality suites declared in YAML.

A suite file looks like::

    suite: ga4_traffic
    expectations:
      - {type: columns_present, columns: [date, sessions, engaged_sessions]}
      - {type: not_null, column: date}
      - {type: between, column: sessions, min: 0}
      - {type: between, column: engagement_rate, min: 0, max: 1, severity: warn}
      - {type: unique, columns: [date, channel_group, device]}
      - {type: in_set, column: device, values: [desktop, mobile, tablet]}
      - {type: column_type, column: sessions, dtype: integer}

``column_type`` takes its type in ``dtype`` because ``type`` already names the expectation
kind (a YAML mapping cannot hold ``type`` twice; duplicate keys are rejected here rather than
silently keeping the last one, as plain PyYAML does).

Every expectation also accepts ``severity: error | warn`` (default ``error``), ``row_level``
(default true for ``not_null``/``between``/``in_set``/``unique``, false otherwise) and an
optional ``name`` overriding the generated one.

Errors name the file, the expectation index, the field, the value and what was expected,
e.g. ``suites/ga4.yaml: expectations[3].type: unknown type 'notnull'; expected one of ...``.
Validation of frames lives in :mod:`quality.validate`; this module does not import GX so
parsing suites stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictStr,
    ValidationError,
    model_validator,
)

from kpi.language.yaml_source import YamlSyntaxError, load_located_yaml

__all__ = [
    "Between",
    "ColumnType",
    "ColumnsPresent",
    "DateInPartition",
    "Expectation",
    "Freshness",
    "InSet",
    "NotNull",
    "RowCount",
    "Suite",
    "SuiteError",
    "Unique",
    "Volume",
    "load_suite",
    "parse_suite",
]

Severity = Literal["error", "warn"]
LogicalType = Literal["integer", "number", "string", "date", "boolean"]


def _bound(value: Any) -> int | float | date | datetime:
    # Hand-written rather than a pydantic union: the union happily reads "5" as a Unix
    # timestamp and ``true`` as 1, and its error names only the first member's type.
    if isinstance(value, bool):
        raise ValueError("expected a number or an ISO date/datetime")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("expected a finite number")
    if isinstance(value, int | float | date):  # datetime is a date subclass
        return value
    if isinstance(value, str):
        for parse in (date.fromisoformat, datetime.fromisoformat):
            try:
                return parse(value)
            except ValueError:
                pass
    raise ValueError("expected a number or an ISO date/datetime")


def _set_value(value: Any) -> str | int | float | bool:
    if isinstance(value, str | int | float):  # bool is an int subclass
        return value
    raise ValueError("expected a string, number or boolean")


Bound = Annotated[int | float | date | datetime, PlainValidator(_bound)]
SetValue = Annotated[str | int | float | bool, PlainValidator(_set_value)]
ColumnName = Annotated[StrictStr, Field(min_length=1)]


class SuiteError(ValueError):
    """A suite declaration is invalid; ``problems`` holds one fully located line per issue."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class _Base(BaseModel):
    """Fields shared by every expectation kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Kinds whose failures are about individual rows, so failing rows are reported by default.
    ROW_LEVEL_DEFAULT: ClassVar[bool] = True

    severity: Severity = "error"
    row_level: StrictBool | None = None
    name: StrictStr | None = None

    @model_validator(mode="after")
    def _default_row_level(self) -> _Base:
        if self.row_level is None:
            # Frozen model: bypass the frozen check once, while the instance is being built.
            object.__setattr__(self, "row_level", self.ROW_LEVEL_DEFAULT)
        return self

    @property
    def columns_used(self) -> list[str]:
        """Every frame column this expectation reads."""
        raise NotImplementedError

    def default_name(self) -> str:
        """Stable, human-readable name derived from the declaration."""
        raise NotImplementedError

    @property
    def display_name(self) -> str:
        """``name`` if the YAML gave one, else the generated name."""
        return self.name or self.default_name()


class ColumnsPresent(_Base):
    """Every listed column exists in the frame (extra columns are allowed)."""

    ROW_LEVEL_DEFAULT: ClassVar[bool] = False
    type: Literal["columns_present"]
    columns: Annotated[list[ColumnName], Field(min_length=1)]

    @property
    def columns_used(self) -> list[str]:
        # Missing columns are this expectation's finding, not a precondition.
        return []

    def default_name(self) -> str:
        return f"columns_present({', '.join(self.columns)})"


class NotNull(_Base):
    """No null (None/NaN/NaT/NA) values in ``column``."""

    type: Literal["not_null"]
    column: ColumnName

    @property
    def columns_used(self) -> list[str]:
        return [self.column]

    def default_name(self) -> str:
        return f"not_null({self.column})"


class Between(_Base):
    """Non-null values of ``column`` lie in ``[min, max]``; either bound may be omitted."""

    type: Literal["between"]
    column: ColumnName
    min: Bound | None = None
    max: Bound | None = None

    @model_validator(mode="after")
    def _check_bounds(self) -> Between:
        if self.min is None and self.max is None:
            raise ValueError("needs 'min' and/or 'max'")
        if self.min is not None and self.max is not None:
            try:
                inverted = self.min > self.max  # type: ignore[operator]
            except TypeError:
                raise ValueError(
                    f"min {self.min!r} and max {self.max!r} are not comparable"
                ) from None
            if inverted:
                raise ValueError(f"min {self.min!r} is greater than max {self.max!r}")
        return self

    @property
    def columns_used(self) -> list[str]:
        return [self.column]

    def default_name(self) -> str:
        bounds = [f"{k}={v}" for k, v in (("min", self.min), ("max", self.max)) if v is not None]
        return f"between({self.column}, {', '.join(bounds)})"


class Unique(_Base):
    """The combination of ``columns`` is unique; every row of a duplicated key fails."""

    type: Literal["unique"]
    columns: Annotated[list[ColumnName], Field(min_length=1)]

    @model_validator(mode="before")
    @classmethod
    def _accept_single_column(cls, data: Any) -> Any:
        # ``column: x`` reads naturally for a one-column key; normalise it to ``columns``.
        if isinstance(data, Mapping) and "column" in data:
            if "columns" in data:
                raise ValueError("give either 'column' or 'columns', not both")
            data = {k: v for k, v in data.items() if k != "column"} | {"columns": [data["column"]]}
        return data

    @property
    def columns_used(self) -> list[str]:
        return list(self.columns)

    def default_name(self) -> str:
        return f"unique({', '.join(self.columns)})"


class InSet(_Base):
    """Non-null values of ``column`` are among ``values``."""

    type: Literal["in_set"]
    column: ColumnName
    values: Annotated[list[SetValue], Field(min_length=1)]

    @property
    def columns_used(self) -> list[str]:
        return [self.column]

    def default_name(self) -> str:
        return f"in_set({self.column})"


class ColumnType(_Base):
    """``column`` holds values of a logical type (checked on the dtype, or per value for
    object columns)."""

    ROW_LEVEL_DEFAULT: ClassVar[bool] = False
    type: Literal["column_type"]
    column: ColumnName
    dtype: LogicalType

    @property
    def columns_used(self) -> list[str]:
        return [self.column]

    def default_name(self) -> str:
        return f"column_type({self.column}: {self.dtype})"


class RowCount(_Base):
    """The frame holds at least ``min`` rows: for sources that must deliver every partition
    (a source with legitimate gaps simply does not declare it)."""

    ROW_LEVEL_DEFAULT: ClassVar[bool] = False
    type: Literal["row_count"]
    min: Annotated[int, Field(ge=0)] = 1

    @property
    def columns_used(self) -> list[str]:
        return []

    def default_name(self) -> str:
        return f"row_count(min={self.min})"


class Volume(_Base):
    """Each day's row count (or sum of ``column``) is at least ``1 - max_drop`` times the
    median of the trailing ``lookback_days`` days already in the warehouse.

    ``period_days`` > 1 compares totals of that many days ending on each day instead of
    single days: for sources whose daily counts are too small or noisy for a single day to
    mean anything (a handful of survey answers or volunteer shifts a day). ``same_weekday``
    takes the baseline from the same weekday only: for sources that legitimately have no
    rows on some weekdays (no operations output at weekends).

    It needs the warehouse history, so :func:`quality.validate.validate_frame` skips it and
    :mod:`quality.checks` evaluates it after the write. Days with too little history to
    compare with are not judged, and the outcome says so.
    """

    ROW_LEVEL_DEFAULT: ClassVar[bool] = False
    type: Literal["volume"]
    column: ColumnName | None = None
    max_drop: Annotated[float, Field(gt=0, lt=1)] = 0.5
    lookback_days: Annotated[int, Field(ge=7)] = 28
    period_days: Annotated[int, Field(ge=1, le=28)] = 1
    same_weekday: StrictBool = False

    @model_validator(mode="after")
    def _check_period(self) -> Volume:
        if self.same_weekday and self.period_days > 1:
            # A total over several days mixes weekdays: there is no "same weekday" to use.
            raise ValueError("same_weekday compares single days; it needs period_days: 1")
        return self

    @property
    def columns_used(self) -> list[str]:
        return [] if self.column is None else [self.column]

    def default_name(self) -> str:
        what = "rows" if self.column is None else f"sum({self.column})"
        extra = f", period_days={self.period_days}" if self.period_days > 1 else ""
        extra += ", same_weekday" if self.same_weekday else ""
        return (
            f"volume({what}, max_drop={self.max_drop}, lookback_days={self.lookback_days}{extra})"
        )


class DateInPartition(_Base):
    """Non-null dates of ``column`` lie inside the partition window being loaded and not
    after today. Without a window (e.g. on replay) only "not in the future" is checked.

    Timestamps are judged by their calendar day in the reporting time zone (the zone the
    partitions are days of), which the caller passes to the validation.
    """

    type: Literal["date_in_partition"]
    column: ColumnName

    @property
    def columns_used(self) -> list[str]:
        return [self.column]

    def default_name(self) -> str:
        return f"date_in_partition({self.column})"


class Freshness(_Base):
    """The latest day loaded (in the warehouse, up to the end of the partition window) is
    at most ``max_lag_days`` before the end of the window; evaluated by
    :mod:`quality.checks`, which knows the window."""

    ROW_LEVEL_DEFAULT: ClassVar[bool] = False
    type: Literal["freshness"]
    column: ColumnName
    max_lag_days: Annotated[int, Field(ge=0)] = 0

    @property
    def columns_used(self) -> list[str]:
        return [self.column]

    def default_name(self) -> str:
        return f"freshness({self.column}, max_lag_days={self.max_lag_days})"


Expectation = (
    ColumnsPresent
    | NotNull
    | Between
    | Unique
    | InSet
    | ColumnType
    | RowCount
    | Volume
    | DateInPartition
    | Freshness
)

_KINDS: dict[str, type[_Base]] = {
    "between": Between,
    "column_type": ColumnType,
    "date_in_partition": DateInPartition,
    "freshness": Freshness,
    "columns_present": ColumnsPresent,
    "in_set": InSet,
    "not_null": NotNull,
    "row_count": RowCount,
    "unique": Unique,
    "volume": Volume,
}


class Suite(BaseModel):
    """A named, ordered list of expectations, plus where it was declared."""

    model_config = ConfigDict(frozen=True)

    name: str
    expectations: list[Expectation]
    source: str = "<memory>"
    description: str | None = None

    def names(self) -> list[str]:
        """Outcome names, made unique by suffixing ``#<index>`` when two would collide."""
        raw = [e.display_name for e in self.expectations]
        return [n if raw.count(n) == 1 else f"{n}#{i}" for i, n in enumerate(raw)]


# --------------------------------------------------------------------------------------
# Parsing


def _fmt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _pydantic_problems(
    source: str, prefix: str, exc: ValidationError, model: type[BaseModel], raw: Mapping[Any, Any]
) -> list[str]:
    """Turn pydantic's errors into ``file: expectations[i].field: what; got value`` lines."""
    allowed = ", ".join(f for f in model.model_fields if f != "type")
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        # Union members add their own names to ``loc`` ("int", "function-after[...]") — noise.
        loc = (
            tuple(p for p in loc if isinstance(p, int) or p in model.model_fields or p in raw)
            or loc[:1]
        )
        field = f"{prefix}.{_where(loc)}" if loc else prefix
        kind = err["type"]
        if kind == "extra_forbidden":
            msg = f"unknown field {loc[-1]!r}; expected only: type, {allowed}"
        elif kind == "missing":
            msg = "required field is missing"
        elif kind == "value_error" and not loc:
            msg = err["msg"].removeprefix("Value error, ")
        else:
            msg = f"{err['msg'].removeprefix('Value error, ')}; got {_fmt(err['input'])}"
        problems.append(f"{source}: {field}: {msg}")
    # A union member failing yields one line per member; keep the first of each location.
    seen: set[str] = set()
    unique = []
    for p in problems:
        key = p.split(": ", 2)[1]
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def _parse_expectation(source: str, index: int, raw: Any) -> tuple[_Base | None, list[str]]:
    prefix = f"expectations[{index}]"
    if not isinstance(raw, Mapping):
        return None, [
            f"{source}: {prefix}: expected a mapping like {{type: not_null, column: x}}; "
            f"got {_fmt(raw)}"
        ]
    kinds = ", ".join(sorted(_KINDS))
    if "type" not in raw:
        return None, [
            f"{source}: {prefix}.type: required field is missing; expected one of {kinds}"
        ]
    kind = raw["type"]
    model = _KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        return None, [
            f"{source}: {prefix}.type: unknown type {_fmt(kind)}; expected one of {kinds}"
        ]
    try:
        return model.model_validate(dict(raw)), []
    except ValidationError as exc:
        return None, _pydantic_problems(source, prefix, exc, model, raw)


def parse_suite(mapping: Any, source_name: str) -> Suite:
    """Build a :class:`Suite` from already-parsed YAML.

    ``source_name`` (usually the file path) prefixes every error. Raises :class:`SuiteError`
    listing every problem found, not just the first.
    """
    if not isinstance(mapping, Mapping):
        raise SuiteError(
            [
                f"{source_name}: expected a mapping with keys 'suite' and 'expectations'; "
                f"got {_fmt(mapping)}"
            ]
        )
    problems: list[str] = []
    extra = sorted(str(k) for k in mapping if k not in ("suite", "expectations", "description"))
    if extra:
        problems.append(
            f"{source_name}: unknown top-level field(s) {', '.join(map(repr, extra))}; "
            "expected only: suite, expectations, description"
        )
    name = mapping.get("suite")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{source_name}: suite: expected a non-empty suite name; got {_fmt(name)}")
    description = mapping.get("description")
    if description is not None and not isinstance(description, str):
        problems.append(f"{source_name}: description: expected a string; got {_fmt(description)}")
    raw_list = mapping.get("expectations")
    parsed: list[_Base] = []
    if not isinstance(raw_list, list) or not raw_list:
        problems.append(
            f"{source_name}: expectations: expected a non-empty list of expectations; "
            f"got {_fmt(raw_list)}"
        )
    else:
        for i, raw in enumerate(raw_list):
            exp, errs = _parse_expectation(source_name, i, raw)
            problems.extend(errs)
            if exp is not None:
                parsed.append(exp)
    if problems:
        raise SuiteError(problems)
    return Suite(
        name=name,
        expectations=parsed,  # type: ignore[arg-type]
        source=source_name,
        description=description,
    )


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
    return result


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,  # type: ignore[arg-type]
)


def load_suite(path: str | Path) -> Suite:
    """Read and validate the suite YAML at ``path``; errors are prefixed with ``path``."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError([f"{source}: cannot read file: {exc.strerror or exc}"]) from exc
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SuiteError([f"{source}: invalid YAML: {problem}{line}"]) from exc
    try:
        # PyYAML shares an alias's object instead of copying it, so the load above is cheap even
        # for a "billion laughs" file; validating or printing that value is not. The located
        # loader counts what aliases expand to and names the file and line past its limit.
        load_located_yaml(Path(path))
    except YamlSyntaxError as exc:
        raise SuiteError([str(exc)]) from exc
    return parse_suite(data, source)
