"""Safe expressions for measures, filters and derived KPIs.

Expressions are written in a small arithmetic language (``revenue - cost_of_goods``,
``csat_score >= 4``, ``channel in ('Paid Search', 'Paid Social')``). They are parsed with
Python's ``ast`` and only an allowlisted subset of nodes is accepted, then turned into
SQLAlchemy expressions. Nothing in a definition ever reaches the SQL text as a string,
so a definition cannot inject SQL.
"""

from __future__ import annotations

import ast
import difflib
import functools
import io
import tokenize
from collections.abc import Callable, Iterable

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

# name -> (min args, max args)
ALLOWED_FUNCTIONS: dict[str, tuple[int, int]] = {
    "coalesce": (1, 8),
    "abs": (1, 1),
    "greatest": (2, 8),
    "least": (2, 8),
    "nullif": (2, 2),
    "lower": (1, 1),
    "upper": (1, 1),
    "round": (1, 2),
}

_COMPARE = {
    ast.Eq: "__eq__",
    ast.NotEq: "__ne__",
    ast.Lt: "__lt__",
    ast.LtE: "__le__",
    ast.Gt: "__gt__",
    ast.GtE: "__ge__",
}


class ExpressionError(ValueError):
    """An expression that is not valid in the KPI language."""


def parse(text: str) -> ast.expr:
    """Parse ``text`` into a checked AST; raise ExpressionError on anything not allowed.

    The tree is shared between callers (read it, do not change it): a catalogue's few dozen
    expressions are parsed ~150 times as the rules, the checksums and the compiler read them.
    """
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("empty expression")
    return _parse(text)


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> ast.expr:
    try:
        tree = ast.parse(_sql_comparisons(text.strip()), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"cannot parse `{text}`: {exc.msg}") from None
    _check_nodes(tree.body, text)
    return tree.body


def _sql_comparisons(text: str) -> str:
    """Accept SQL's `=` and `<>` as `==` and `!=`, and read string literals as SQL does.

    `''` inside a literal is one quote; a backslash, or two literals in a row (which Python
    would glue together), is refused rather than read as another value than the one written.

    A `=` right after `(name` or `, name` inside a call is a keyword argument: it is kept,
    so the parser sees it and rejects it, instead of turning it into a comparison.
    """
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return text  # ast.parse reports the problem with a better message
    out: list[tuple[int, str]] = []
    depth = 0
    previous: tokenize.TokenInfo | None = None
    last_literal = ""  # the value of the string token(s) just written
    for tok in tokens:
        kind, value = tok.type, tok.string
        if kind == tokenize.STRING and value[0] not in "'\"":
            # A prefixed string (b'', f'') goes to the parser, which names what is not allowed.
            out.append((kind, value))
            previous = tok
            continue
        if kind == tokenize.STRING:
            literal = _sql_string(value, text)
            if previous is not None and previous.type == tokenize.STRING:
                if previous.end != tok.start or value[0] != previous.string[0]:
                    # Python would glue 'a' 'b' into 'ab': a silently different value.
                    raise ExpressionError(
                        f"`{text}`: two string literals in a row ({previous.string} "
                        f"{value}); write one literal, with '' for a quote inside it"
                    )
                # SQL's escape: '' inside a literal is one quote ('women''s_day').
                last_literal = last_literal + value[0] + literal
                out[-1] = (tokenize.STRING, repr(last_literal))
            else:
                last_literal = literal
                out.append((tokenize.STRING, repr(literal)))
            previous = tok
            continue
        previous = tok
        if kind == tokenize.OP and value in "([":
            depth += 1
        elif kind == tokenize.OP and value in ")]":
            depth -= 1
        if kind == tokenize.OP and value == "=":
            keyword = (
                depth > 0
                and len(out) >= 2
                and out[-1][0] == tokenize.NAME
                and out[-2][1] in ("(", ",")
            )
            out.append((tokenize.OP, "=" if keyword else "=="))
        elif kind == tokenize.OP and value == ">" and out and out[-1][1] == "<":
            out[-1] = (tokenize.OP, "!=")
        else:
            out.append((kind, value))
    return tokenize.untokenize(out)


def _sql_string(token: str, text: str) -> str:
    """The value of one quoted string token, read as SQL reads it: no backslash escapes.

    Python would turn `\\'` or `\\n` into another character than the one written; SQL keeps
    a backslash as it is. Rather than guess which was meant, such a literal is refused.
    """
    quote = token[-1]
    if token.startswith(quote * 3):
        raise ExpressionError(f"`{text}`: write string {token} with single quotes")
    body = token[1:-1]
    if "\\" in body:
        raise ExpressionError(
            f"`{text}`: string {token} holds a backslash, which SQL and Python read "
            "differently; write a quote inside a literal as ''"
        )
    return body


def referenced_names(text: str) -> list[str]:
    """The column or KPI names an expression refers to, in order of first use."""
    names: list[str] = []

    class _Names(ast.NodeVisitor):
        # NodeVisitor walks fields in source order (left before right), unlike ast.walk.
        def visit_Call(self, node: ast.Call) -> None:
            for arg in node.args:
                self.visit(arg)

        def visit_Name(self, node: ast.Name) -> None:
            if node.id not in names:
                names.append(node.id)

    _Names().visit(parse(text))
    return names


def unknown_name_problems(text: str, known: Iterable[str], what: str) -> list[str]:
    """Problems for names in ``text`` that are not in ``known``, with a did-you-mean."""
    known = list(known)
    problems = []
    for name in referenced_names(text):
        if name not in known:
            problems.append(f"unknown {what} `{name}`{did_you_mean(name, known)}")
    return problems


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f": did you mean `{close[0]}`?" if close else ""


def to_sql(text: str, resolve: Callable[[str], ColumnElement]) -> ColumnElement:
    """Build the SQLAlchemy expression for ``text``; ``resolve`` maps names to columns."""
    return _build(parse(text), resolve)


def safe_divide(numerator: ColumnElement, denominator: ColumnElement) -> ColumnElement:
    """Float division that yields NULL, not an error or infinity, on a zero denominator."""
    den = sa.func.nullif(sa.cast(denominator, sa.Double()), 0.0, type_=sa.Double())
    return sa.cast(numerator, sa.Double()) / den


def _check_nodes(node: ast.AST, text: str) -> None:
    allowed = (
        ast.BinOp,
        ast.UnaryOp,
        ast.BoolOp,
        ast.Compare,
        ast.Name,
        ast.Constant,
        ast.Call,
        ast.Tuple,
        ast.List,
        ast.Load,
        ast.Add,
        ast.Sub,
        ast.Mult,
        ast.Div,
        ast.USub,
        ast.UAdd,
        ast.Not,
        ast.And,
        ast.Or,
        ast.In,
        ast.NotIn,
        *_COMPARE,
    )
    # A list of constants is only meaningful on the right of `in`.
    in_lists = {
        id(comp)
        for child in ast.walk(node)
        if isinstance(child, ast.Compare)
        for op, comp in zip(child.ops, child.comparators, strict=True)
        if isinstance(op, ast.In | ast.NotIn)
    }
    for child in ast.walk(node):
        if isinstance(child, ast.Tuple | ast.List) and id(child) not in in_lists:
            raise ExpressionError(f"`{text}`: a list is only allowed after `in`")
        if not isinstance(child, allowed):
            raise ExpressionError(f"`{text}`: {type(child).__name__} is not allowed here")
        if isinstance(child, ast.Constant) and not isinstance(
            child.value, int | float | str | bool
        ):
            raise ExpressionError(f"`{text}`: constant {child.value!r} is not allowed")
        if isinstance(child, ast.Call):
            if not isinstance(child.func, ast.Name) or child.func.id not in ALLOWED_FUNCTIONS:
                fname = getattr(child.func, "id", "?")
                hint = did_you_mean(fname, ALLOWED_FUNCTIONS)
                raise ExpressionError(
                    f"`{text}`: function `{fname}` is not allowed{hint}; "
                    f"allowed: {', '.join(sorted(ALLOWED_FUNCTIONS))}"
                )
            lo, hi = ALLOWED_FUNCTIONS[child.func.id]
            if child.keywords or not lo <= len(child.args) <= hi:
                raise ExpressionError(
                    f"`{text}`: {child.func.id}() takes {lo}..{hi} positional arguments"
                )
        if isinstance(child, ast.Compare) and any(
            isinstance(op, ast.In | ast.NotIn) for op in child.ops
        ):
            for comp in child.comparators:
                # `x in ('a')` is how SQL writes a one-item list; Python sees a plain string.
                if isinstance(comp, ast.Constant) and isinstance(comp.value, str):
                    continue
                if not isinstance(comp, ast.Tuple | ast.List) or not all(
                    isinstance(e, ast.Constant) for e in comp.elts
                ):
                    raise ExpressionError(f"`{text}`: `in` takes a list of constants")
    return None


def _build(node: ast.expr, resolve: Callable[[str], ColumnElement]) -> ColumnElement:
    if isinstance(node, ast.Constant):
        return sa.literal(node.value)
    if isinstance(node, ast.Name):
        return resolve(node.id)
    if isinstance(node, ast.UnaryOp):
        operand = _build(node.operand, resolve)
        if isinstance(node.op, ast.Not):
            return sa.not_(operand)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        left, right = _build(node.left, resolve), _build(node.right, resolve)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        return safe_divide(left, right)
    if isinstance(node, ast.BoolOp):
        parts = [_build(v, resolve) for v in node.values]
        return sa.and_(*parts) if isinstance(node.op, ast.And) else sa.or_(*parts)
    if isinstance(node, ast.Compare):
        clauses = []
        left = _build(node.left, resolve)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                elts = [comp] if isinstance(comp, ast.Constant) else comp.elts  # type: ignore[attr-defined]
                values = [e.value for e in elts]
                clause = left.in_(values) if isinstance(op, ast.In) else left.not_in(values)
                clauses.append(clause)
                continue
            right = _build(comp, resolve)
            clauses.append(getattr(left, _COMPARE[type(op)])(right))
            left = right
        return sa.and_(*clauses) if len(clauses) > 1 else clauses[0]
    if isinstance(node, ast.Call):
        name = node.func.id  # type: ignore[attr-defined]
        args = [_build(a, resolve) for a in node.args]
        return getattr(sa.func, name)(*args)
    raise ExpressionError(f"unsupported expression node {type(node).__name__}")
