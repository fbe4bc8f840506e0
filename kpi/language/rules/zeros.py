"""Denominators that are always zero: a ratio (or a derived division) whose divisor is a
constant zero is NULL for every period, silently. ``ZeroDenominatorRule`` reports them.

Only what is certain is flagged: an expression without columns that evaluates to 0
(``0``, ``1 - 1``), a product with such a factor (``visits * 0``), and a count whose
filter is constant false (``1 = 2``).
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable

from kpi.language.catalog import Catalog
from kpi.language.expressions import ExpressionError, parse
from kpi.language.models import Agg, KpiType
from kpi.language.problems import Problem
from kpi.language.rules.base import Rule, problem_at

_BINARY: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
}
_COMPARE: dict[type, Callable[[object, object], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_UNKNOWN = object()


def constant_value(node: ast.expr) -> object:
    """The value of ``node`` when it holds no column, else ``_UNKNOWN``."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = constant_value(node.operand)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = constant_value(node.left), constant_value(node.right)
        if isinstance(node.op, ast.Mult) and (_is_zero(left) or _is_zero(right)):
            return 0  # x * 0 is 0 for every non-NULL x
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right)):
            return _BINARY[type(node.op)](left, right)  # type: ignore[arg-type]
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        left, right = constant_value(node.left), constant_value(node.comparators[0])
        if _UNKNOWN not in (left, right):
            try:
                return _COMPARE[type(node.ops[0])](left, right)
            except TypeError:
                return _UNKNOWN
    return _UNKNOWN


def _is_zero(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == 0


def always_zero(text: str | None) -> bool:
    """``text`` is an expression that is 0 on every row."""
    if text is None:
        return False
    try:
        return _is_zero(constant_value(parse(text)))
    except ExpressionError:
        return False  # reported by the expression checks


def never_true(text: str | None) -> bool:
    """``text`` is a filter that keeps no row."""
    if text is None:
        return False
    try:
        return constant_value(parse(text)) is False
    except ExpressionError:
        return False


def zero_divisors(text: str) -> list[str]:
    """The divisors of ``text`` (a derived KPI's expression) that are a constant zero."""
    try:
        tree = parse(text)
    except ExpressionError:
        return []
    return [
        ast.unparse(node.right)
        for node in ast.walk(tree)
        if isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Div)
        and _is_zero(constant_value(node.right))
    ]


class ZeroDenominatorRule(Rule):
    """A divisor that is a constant zero makes every value NULL, silently."""

    name = "zero_denominator"

    def check(self, catalog: Catalog) -> list[Problem]:
        problems = []
        expected = "expected an expression of the source's columns that can be non-zero"
        for kpi in catalog.kpis.values():
            m = kpi.denominator
            if kpi.type == KpiType.ratio and m is not None:
                if m.agg != Agg.count and always_zero(m.expr):
                    problems.append(
                        problem_at(
                            catalog,
                            kpi,
                            "denominator",
                            "expr",
                            message=f"denominator.expr: `{m.expr}` is always zero, so every value "
                            f"of the ratio would be NULL; {expected}",
                        )
                    )
                if never_true(m.filter):
                    problems.append(
                        problem_at(
                            catalog,
                            kpi,
                            "denominator",
                            "filter",
                            message=f"denominator.filter: `{m.filter}` keeps no row, so the "
                            "denominator is always zero and every value NULL; expected a filter "
                            "on the source's columns",
                        )
                    )
            if kpi.type == KpiType.derived and kpi.expr:
                for divisor in zero_divisors(kpi.expr):
                    problems.append(
                        problem_at(
                            catalog,
                            kpi,
                            "expr",
                            message=f"expr: `{kpi.expr}` divides by `{divisor}`, which is always "
                            "zero, so every value would be NULL; expected a divisor that can be "
                            "non-zero",
                        )
                    )
        return problems
