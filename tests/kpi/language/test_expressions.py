"""``kpi.language.expressions``: the allowlisted expression language and the SQL it compiles to."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from kpi.language.expressions import (
    ExpressionError,
    parse,
    referenced_names,
    safe_divide,
    to_sql,
    unknown_name_problems,
)

COLUMNS = ["a", "b", "x", "y", "sessions", "revenue", "cost", "channel", "campaign", "drop"]
T = sa.table("t", *[sa.column(c) for c in COLUMNS])


def resolve(name):
    return T.c[name]


def sql_of(text):
    """(SQL text, bound parameters) on PostgreSQL, with literal_binds off."""
    compiled = to_sql(text, resolve).compile(dialect=postgresql.dialect())
    return str(compiled), compiled.params


def evaluate(text, **values):
    """Evaluate ``text`` in an in-memory DuckDB, with names bound to typed literals."""

    def bind(name):
        v = values[name]
        return sa.literal(v, sa.Double if isinstance(v, float) else None)

    engine = sa.create_engine("duckdb:///:memory:")
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(to_sql(text, bind))).scalar()
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------
# Accepted expressions
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("a + b * 2", {"a": 1, "b": 3}, 7),  # 1 + 3 * 2
        ("a - b", {"a": 10, "b": 4}, 6),
        ("-a + b", {"a": 10, "b": 4}, -6),
        ("a / b", {"a": 1, "b": 4}, 0.25),  # true division even on integers
        ("a >= 4", {"a": 4}, True),
        ("a < 4", {"a": 4}, False),
        ("1 < a < 5", {"a": 5}, False),  # chained: 1 < 5 and 5 < 5
        ("1 < a <= 5", {"a": 5}, True),
        ("a == 1 or b == 1", {"a": 0, "b": 1}, True),
        ("a == 1 and b == 1", {"a": 0, "b": 1}, False),
        ("not a == 1", {"a": 1}, False),
        ("a in (1, 2, 3)", {"a": 2}, True),
        ("a not in [1, 2, 3]", {"a": 2}, False),
        ("coalesce(a, 0) + 1", {"a": None}, 1),
        ("abs(a)", {"a": -3}, 3),
        ("greatest(a, b, 7)", {"a": 1, "b": 9}, 9),
        ("least(a, b)", {"a": 1, "b": 9}, 1),
        ("nullif(a, 0)", {"a": 0}, None),
        ("round(a, 2)", {"a": 1.23456}, 1.23),
        ("lower(a) == 'paid'", {"a": "PAID"}, True),
        ("upper(a)", {"a": "x"}, "X"),
        ("a = 1", {"a": 1}, True),  # SQL-style equality
        ("a <> 1", {"a": 1}, False),  # SQL-style inequality
        ("a != 1", {"a": 2}, True),
        ("a <= 1", {"a": 1}, True),
        ("a >= 2", {"a": 1}, False),
    ],
)
def test_allowed_expressions_evaluate(text, values, expected):
    result = evaluate(text, **values)
    if isinstance(expected, float):
        assert result == pytest.approx(expected)
    else:
        assert result == expected


@pytest.mark.parametrize(
    ("text", "normalized_sql"),
    [
        # `=` and `<>` become == and != ...
        ("x = 1", "t.x = %(param_1)s::INTEGER"),
        ("x <> 1", "t.x != %(param_1)s::INTEGER"),
        # ...without touching the two-character operators.
        ("x == 1", "t.x = %(param_1)s::INTEGER"),
        ("x <= 1", "t.x <= %(param_1)s::INTEGER"),
        ("x >= 1", "t.x >= %(param_1)s::INTEGER"),
        ("x != 1", "t.x != %(param_1)s::INTEGER"),
        ("x=-1", "t.x = -%(param_1)s::INTEGER"),
    ],
)
def test_sql_style_comparisons(text, normalized_sql):
    sql, params = sql_of(text)
    assert sql == normalized_sql
    assert params == {"param_1": 1}


def test_in_list_is_one_bound_list():
    sql, params = sql_of("channel in ('Paid Search', 'Paid Social')")
    assert "Paid" not in sql
    assert list(params.values()) == [["Paid Search", "Paid Social"]]


# ---------------------------------------------------------------------------------------------
# Rejected expressions
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a.b", "Attribute is not allowed"),
        ("sessions.__class__", "Attribute is not allowed"),
        ("a[0]", "Subscript is not allowed"),
        ("(lambda: 1)()", "not allowed"),
        ("lambda: 1", "Lambda is not allowed"),
        ("exec('x')", "function `exec` is not allowed"),
        ("eval('1')", "function `eval` is not allowed"),
        ("__import__('os')", "function `__import__` is not allowed"),
        ("__import__('os').system('ls')", "not allowed"),
        ("open('/etc/passwd')", "function `open` is not allowed"),
        ("sum(a)", "function `sum` is not allowed"),
        ("round(a, ndigits==2, 1)", "round() takes 1..2 positional arguments"),
        ("coalesce()", "coalesce() takes 1..8 positional arguments"),
        ("abs(a, b)", "abs() takes 1..1 positional arguments"),
        ("nullif(a)", "nullif() takes 2..2 positional arguments"),
        ("channel in (a, b)", "`in` takes a list of constants"),
        ("channel in other", "`in` takes a list of constants"),
        ("channel in ('x', lower(y))", "`in` takes a list of constants"),
        ("a ** 2", "Pow is not allowed"),
        ("a % 2", "Mod is not allowed"),
        ("a // 2", "FloorDiv is not allowed"),
        ("a if b else x", "IfExp is not allowed"),
        ("a is None", "Is is not allowed"),
        ("a == None", "constant None is not allowed"),
        ("f'{a}'", "JoinedStr is not allowed"),
        ("[x for x in a]", "ListComp is not allowed"),
        ("{'k': a}", "Dict is not allowed"),
        ("(a := 1)", "NamedExpr is not allowed"),
        ("a & b", "BitAnd is not allowed"),
        ("b'x'", "constant b'x' is not allowed"),
        ("", "empty expression"),
        ("   ", "empty expression"),
        ("a +", "cannot parse"),
    ],
)
def test_rejected(text, message):
    with pytest.raises(ExpressionError) as info:
        parse(text)
    assert message in str(info.value)


@pytest.mark.parametrize("text", ["round(a, ndigits=2)", "coalesce(a, default=0)"])
def test_keyword_arguments_are_rejected(text):
    with pytest.raises(ExpressionError, match="positional arguments"):
        parse(text)


def test_unknown_function_suggests_the_close_one():
    with pytest.raises(ExpressionError, match="did you mean `coalesce`"):
        parse("coalese(a, 0)")


def test_expression_error_is_a_value_error():
    # Callers (Kpi.referenced_kpis) catch ValueError.
    assert issubclass(ExpressionError, ValueError)


@pytest.mark.parametrize("text", ["(a, b)", "[a, 1]", "a + (1, 2)"])
def test_tuple_outside_in_is_rejected_at_parse_time(text):
    with pytest.raises(ExpressionError):
        parse(text)


# ---------------------------------------------------------------------------------------------
# SQL injection: nothing from a definition reaches the SQL text except checked identifiers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "sessions; drop table x",
        "sessions; DROP TABLE raw.orders",
        "sessions --",
        "x' or 1=1",
        "x' or '1'='1",
        "sessions /* comment */",
        "`sessions`",
        '"sessions"; select 1',
        "sessions\ndrop table x",
        "a) or (1 = 1",
    ],
)
def test_injection_attempts_are_parse_errors(text):
    with pytest.raises(ExpressionError):
        parse(text)


@pytest.mark.parametrize(
    "payload",
    [
        "x' or 1 > 0 --",
        "'; drop table raw.orders; --",
        'Paid"; select 1 --',
        "Robert'); DROP TABLE students;--",
    ],
)
def test_string_constants_become_bound_parameters(payload):
    text = f"channel == {payload!r}"
    sql, params = sql_of(text)
    assert sql == "t.channel = %(param_1)s::VARCHAR"
    assert list(params.values()) == [payload]
    assert "drop" not in sql.lower() and "--" not in sql


def test_names_are_identifiers_resolved_by_the_caller():
    # `drop` is a legal name: it reaches SQL only as a column object SQLAlchemy renders.
    sql, params = sql_of("drop + sessions")
    assert sql == "t.drop + t.sessions"
    assert params == {}
    # A reserved word as a column is quoted by SQLAlchemy, never spliced as raw text.
    table = sa.table("t", sa.column("user"), sa.column("order"))
    compiled = to_sql("user + order", lambda n: table.c[n]).compile(dialect=postgresql.dialect())
    assert str(compiled) == 't."user" + t."order"'


def test_sql_comment_marker_is_double_negation_not_a_comment():
    # Python reads `sessions -- x` as sessions - (-x); the SQL keeps the operators apart.
    assert referenced_names("sessions -- revenue") == ["sessions", "revenue"]
    sql, _ = sql_of("sessions -- revenue")
    assert sql == "t.sessions - -t.revenue"
    sql, _ = sql_of("- -sessions")
    assert "--" not in sql
    # 5 - (-1) = 6, computed by the database.
    assert evaluate("a--1", a=5) == 6


def test_resolver_sees_only_names_not_text():
    seen = []

    def spy(name):
        seen.append(name)
        return sa.literal(1)

    to_sql("coalesce(revenue, 0) - cost * abs(x)", spy)
    assert sorted(seen) == ["cost", "revenue", "x"]  # function names are not resolved


@pytest.mark.parametrize(
    ("text", "constant"),
    [
        ("campaign == 'utm=spring'", "utm=spring"),
        ("campaign = 'a=b'", "a=b"),
        ("campaign != 'x<>y'", "x<>y"),
    ],
)
def test_equals_rewrite_leaves_string_constants_alone(text, constant):
    _, params = sql_of(text)
    assert list(params.values()) == [constant]


# ---------------------------------------------------------------------------------------------
# Division
# ---------------------------------------------------------------------------------------------


def test_division_compiles_to_nullif():
    sql, params = sql_of("revenue / cost")
    assert sql.startswith("CAST(t.revenue AS DOUBLE PRECISION) / ")
    assert "nullif(CAST(t.cost AS DOUBLE PRECISION), %(nullif_1)s)" in sql
    assert params == {"nullif_1": 0.0}


def test_division_by_zero_is_null_in_duckdb():
    assert evaluate("a / b", a=5, b=0) is None  # not an error, not inf
    assert evaluate("a / b", a=5.0, b=0.0) is None
    assert evaluate("a / b", a=0, b=0) is None  # not NaN
    assert evaluate("a / b", a=1, b=3) == pytest.approx(1 / 3)  # not integer division (0)


def test_safe_divide_in_the_warehouse(warehouse_url):
    from kpi.warehouse.connection import make_engine

    cases = [
        (sa.literal(5.0, sa.Double), sa.literal(0.0, sa.Double), None),
        (sa.literal(0.0, sa.Double), sa.literal(0.0, sa.Double), None),  # not NaN
        (sa.literal(1.0, sa.Double), sa.literal(3.0, sa.Double), 1 / 3),
        # A small or fractional denominator keeps its precision (no rounding to decimals).
        (sa.literal(1.0, sa.Double), sa.literal(0.0004, sa.Double), 2500.0),
        (sa.literal(2.0, sa.Double), sa.literal(1.2345, sa.Double), 2 / 1.2345),
        (sa.literal(7, sa.Integer), sa.literal(2, sa.Integer), 3.5),  # not integer division
        (sa.literal(7, sa.Integer), sa.literal(0, sa.Integer), None),
    ]
    engine = make_engine(warehouse_url)
    try:
        with engine.connect() as conn:
            got = [conn.execute(sa.select(safe_divide(n, d))).scalar() for n, d, _ in cases]
    finally:
        engine.dispose()
    expected = [e for _, _, e in cases]
    assert [None if g is None else float(g) for g in got] == [
        None if e is None else pytest.approx(e, rel=1e-12) for e in expected
    ]


# ---------------------------------------------------------------------------------------------
# referenced_names / unknown_name_problems
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("revenue - cost_of_goods", ["revenue", "cost_of_goods"]),
        ("coalesce(a, b) + round(c, 2)", ["a", "b", "c"]),
        ("lower(channel) in ('x', 'y')", ["channel"]),
        ("a + a * a", ["a"]),  # once each
        ("1 - engagement_rate", ["engagement_rate"]),
        ("100 * (promoter_share - detractor_share)", ["promoter_share", "detractor_share"]),
        ("abs(abs(x))", ["x"]),
        # A function name used as a plain name (not called) is a reference.
        ("coalesce + 1", ["coalesce"]),
    ],
)
def test_referenced_names_exclude_function_names(text, names):
    assert referenced_names(text) == names


def test_referenced_names_in_order_of_first_use():
    assert referenced_names("x + coalesce(a, b) * y") == ["x", "a", "b", "y"]


def test_unknown_name_problems_with_suggestion():
    problems = unknown_name_problems("sesions + revenue - nope", ["sessions", "revenue"], "column")
    assert sorted(problems) == [
        "unknown column `nope`",
        "unknown column `sesions`: did you mean `sessions`?",
    ]
    assert unknown_name_problems("coalesce(revenue, 0)", ["revenue"], "column") == []
