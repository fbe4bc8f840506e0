"""GA4 report filters: a small, hashable model of ``FilterExpression`` and its YAML form.

Reports declared in ``kpi_definitions/ga4/reports.yaml`` may narrow what they pull with a
``dimension_filter`` (string match, in-list or empty on a dimension) and a ``metric_filter``
(numeric comparison or between on a metric, applied by GA4 after aggregation, like SQL
``HAVING``). The API allows more (numeric filters on dimensions, pivots); what is not
modelled here is rejected when the YAML is loaded instead of being sent and half-applied.

YAML form (exactly one operator per leaf; groups nest)::

    dimension_filter:
      and:
        - {field: sessionMedium, in_list: [cpc, ppc]}
        - not: {field: sessionCampaignName, contains: test}
    metric_filter: {field: sessions, greater_than: 0}

String operators: ``equals``, ``begins_with``, ``ends_with``, ``contains``, ``full_regexp``,
``partial_regexp``, ``in_list`` (a list) and ``empty: true`` (matches ``""`` and
``(not set)``); ``case_sensitive: true`` is optional (GA4 compares case-insensitively by
default). Numeric operators: ``equal``, ``less_than``, ``less_than_or_equal``,
``greater_than``, ``greater_than_or_equal`` and ``between: [low, high]`` (inclusive).

No Dagster here: the filters are plain data used by :mod:`ingest.ga4.spec` and its YAML loader
(:mod:`ingest.ga4.reports`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from google.analytics.data_v1beta.types import (
    Filter,
    FilterExpression,
    FilterExpressionList,
    NumericValue,
)

_MATCH = Filter.StringFilter.MatchType
STRING_OPERATORS: dict[str, Any] = {
    "equals": _MATCH.EXACT,
    "begins_with": _MATCH.BEGINS_WITH,
    "ends_with": _MATCH.ENDS_WITH,
    "contains": _MATCH.CONTAINS,
    "full_regexp": _MATCH.FULL_REGEXP,
    "partial_regexp": _MATCH.PARTIAL_REGEXP,
}
_NUMERIC = Filter.NumericFilter.Operation
NUMERIC_OPERATORS: dict[str, Any] = {
    "equal": _NUMERIC.EQUAL,
    "less_than": _NUMERIC.LESS_THAN,
    "less_than_or_equal": _NUMERIC.LESS_THAN_OR_EQUAL,
    "greater_than": _NUMERIC.GREATER_THAN,
    "greater_than_or_equal": _NUMERIC.GREATER_THAN_OR_EQUAL,
}
DIMENSION_OPERATORS = frozenset({*STRING_OPERATORS, "in_list", "empty"})
METRIC_OPERATORS = frozenset({*NUMERIC_OPERATORS, "between"})
GROUP_KEYS = ("and", "or", "not")
FilterKind = Literal["dimension", "metric"]
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(:[A-Za-z0-9_]+)?$")


@dataclass(frozen=True)
class FieldFilter:
    """One primitive filter on one dimension or metric.

    ``values`` holds the operand(s): one string for a string operator, the list for
    ``in_list``, nothing for ``empty``, one number for a comparison, two for ``between``.
    """

    field: str
    op: str
    values: tuple[str | float, ...] = ()
    case_sensitive: bool = False


@dataclass(frozen=True)
class FilterGroup:
    """``and``/``or`` over ``items``, or ``not`` of its single item."""

    kind: Literal["and", "or", "not"]
    items: tuple[FieldFilter | FilterGroup, ...]


ReportFilter = FieldFilter | FilterGroup


class FilterSyntaxError(ValueError):
    """A filter in YAML is malformed; ``path`` says where inside the filter."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def leaves(expr: ReportFilter) -> Iterator[FieldFilter]:
    """Every primitive filter of ``expr``, depth first."""
    if isinstance(expr, FieldFilter):
        yield expr
        return
    for item in expr.items:
        yield from leaves(item)


def field_names(expr: ReportFilter | None) -> list[str]:
    """The dimension or metric names ``expr`` reads, in order of appearance, once each."""
    if expr is None:
        return []
    return list(dict.fromkeys(leaf.field for leaf in leaves(expr)))


def to_proto(expr: ReportFilter) -> FilterExpression:
    """The ``FilterExpression`` the Data API expects for ``expr``."""
    if isinstance(expr, FilterGroup):
        if expr.kind == "not":
            return FilterExpression(not_expression=to_proto(expr.items[0]))
        group = FilterExpressionList(expressions=[to_proto(i) for i in expr.items])
        if expr.kind == "and":
            return FilterExpression(and_group=group)
        return FilterExpression(or_group=group)
    return FilterExpression(filter=_leaf_proto(expr))


def _leaf_proto(leaf: FieldFilter) -> Filter:
    if leaf.op in STRING_OPERATORS:
        return Filter(
            field_name=leaf.field,
            string_filter=Filter.StringFilter(
                match_type=STRING_OPERATORS[leaf.op],
                value=str(leaf.values[0]),
                case_sensitive=leaf.case_sensitive,
            ),
        )
    if leaf.op == "in_list":
        return Filter(
            field_name=leaf.field,
            in_list_filter=Filter.InListFilter(
                values=[str(v) for v in leaf.values], case_sensitive=leaf.case_sensitive
            ),
        )
    if leaf.op == "empty":
        return Filter(field_name=leaf.field, empty_filter=Filter.EmptyFilter())
    if leaf.op in NUMERIC_OPERATORS:
        return Filter(
            field_name=leaf.field,
            numeric_filter=Filter.NumericFilter(
                operation=NUMERIC_OPERATORS[leaf.op], value=_number(leaf.values[0])
            ),
        )
    if leaf.op == "between":
        return Filter(
            field_name=leaf.field,
            between_filter=Filter.BetweenFilter(
                from_value=_number(leaf.values[0]), to_value=_number(leaf.values[1])
            ),
        )
    raise ValueError(f"unknown filter operator {leaf.op!r}")


def _number(value: str | float) -> NumericValue:
    # Integers travel as int64 so GA4 compares integer metrics exactly.
    number = float(value)
    if number.is_integer() and not isinstance(value, float):
        return NumericValue(int64_value=int(number))
    return NumericValue(double_value=number)


def parse_filter(data: Any, kind: FilterKind, path: tuple[str | int, ...] = ()) -> ReportFilter:
    """Read a filter from its YAML form; raise :class:`FilterSyntaxError` with its path."""
    if not isinstance(data, dict):
        raise FilterSyntaxError(path, "a filter must be a mapping")
    groups = [k for k in GROUP_KEYS if k in data]
    if groups:
        if len(data) != 1:
            extra = sorted(str(k) for k in data if k != groups[0])
            raise FilterSyntaxError(
                path, f"`{groups[0]}` must stand alone in its mapping; also found {extra}"
            )
        key = groups[0]
        value = data[key]
        if key == "not":
            return FilterGroup("not", (parse_filter(value, kind, (*path, key)),))
        if not isinstance(value, list) or len(value) < 2:
            raise FilterSyntaxError((*path, key), f"`{key}` takes a list of at least 2 filters")
        items = tuple(parse_filter(v, kind, (*path, key, i)) for i, v in enumerate(value))
        return FilterGroup(key, items)  # type: ignore[arg-type]
    return _parse_leaf(data, kind, path)


def _parse_leaf(data: dict[str, Any], kind: FilterKind, path: tuple[str | int, ...]) -> FieldFilter:
    allowed = DIMENSION_OPERATORS if kind == "dimension" else METRIC_OPERATORS
    other = METRIC_OPERATORS if kind == "dimension" else DIMENSION_OPERATORS
    field = data.get("field")
    if not isinstance(field, str) or not field:
        raise FilterSyntaxError(path, "a filter needs `field`: the GA4 API name it tests")
    if not _NAME_RE.match(field):
        raise FilterSyntaxError((*path, "field"), f"`{field}` is not a GA4 API name")
    ops = [k for k in data if k in allowed]
    misplaced = [k for k in data if k in other]
    unknown = [k for k in data if k not in {*allowed, *other, "field", "case_sensitive"}]
    if misplaced:
        where = "metric_filter" if kind == "dimension" else "dimension_filter"
        raise FilterSyntaxError(
            (*path, misplaced[0]),
            f"`{misplaced[0]}` belongs in a {where}: a {kind}_filter allows "
            f"{', '.join(sorted(allowed))}",
        )
    if unknown:
        raise FilterSyntaxError(
            (*path, unknown[0]),
            f"unknown filter key `{unknown[0]}`; a {kind} filter takes `field`, one of "
            f"{', '.join(sorted(allowed))}"
            + (" and optionally `case_sensitive`" if kind == "dimension" else ""),
        )
    if len(ops) != 1:
        found = ", ".join(ops) if ops else "none"
        raise FilterSyntaxError(path, f"a filter takes exactly one operator (found {found})")
    op = ops[0]
    operand = data[op]
    case_sensitive = data.get("case_sensitive", False)
    if kind == "metric" and "case_sensitive" in data:
        raise FilterSyntaxError((*path, "case_sensitive"), "case_sensitive is for string filters")
    if not isinstance(case_sensitive, bool):
        raise FilterSyntaxError((*path, "case_sensitive"), "case_sensitive must be true or false")
    where = (*path, op)
    if op in STRING_OPERATORS:
        if not isinstance(operand, str | int | float) or isinstance(operand, bool):
            raise FilterSyntaxError(where, f"`{op}` takes one string")
        if op.endswith("regexp"):
            try:
                re.compile(str(operand))
            except re.error as error:
                raise FilterSyntaxError(where, f"invalid regular expression: {error}") from None
        return FieldFilter(field, op, (str(operand),), case_sensitive)
    if op == "in_list":
        if not isinstance(operand, list) or not operand:
            raise FilterSyntaxError(where, "`in_list` takes a non-empty list of strings")
        return FieldFilter(field, op, tuple(str(v) for v in operand), case_sensitive)
    if op == "empty":
        if operand is not True:
            raise FilterSyntaxError(where, "write `empty: true` (use `not` to exclude empties)")
        return FieldFilter(field, op, (), case_sensitive)
    if op == "between":
        if not (isinstance(operand, list) and len(operand) == 2 and all(map(_is_number, operand))):
            raise FilterSyntaxError(where, "`between` takes [low, high], two numbers")
        if operand[0] > operand[1]:
            raise FilterSyntaxError(where, f"`between` low {operand[0]} is above high {operand[1]}")
        return FieldFilter(field, op, (operand[0], operand[1]))
    if not _is_number(operand):
        raise FilterSyntaxError(where, f"`{op}` takes one number")
    return FieldFilter(field, op, (operand,))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
