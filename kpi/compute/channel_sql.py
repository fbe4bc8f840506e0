"""The channel taxonomy compiled to SQL: one CASE over a row's source, medium and campaign,
run in the warehouse (kpi.language.channels holds the rules and their Python reference).

A regex condition is a *search* on every dialect, as in Python's ``re.search``: PostgreSQL
``~``, DuckDB ``regexp_matches`` (DuckDB's ``~`` is a full match), BigQuery
``REGEXP_CONTAINS``, Snowflake ``REGEXP_INSTR(...) > 0``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from kpi.language.channels import Condition, Conditions, Taxonomy, normalise


class regex_search(FunctionElement):
    """True when the pattern matches somewhere in the value."""

    type = sa.Boolean()
    inherit_cache = True
    name = "regex_search"


@compiles(regex_search)
def _search_default(element, compiler, **kw):  # PostgreSQL
    value, pattern = list(element.clauses)
    return f"({compiler.process(value, **kw)} ~ {compiler.process(pattern, **kw)})"


@compiles(regex_search, "duckdb")
def _search_duckdb(element, compiler, **kw):
    value, pattern = list(element.clauses)
    return f"regexp_matches({compiler.process(value, **kw)}, {compiler.process(pattern, **kw)})"


@compiles(regex_search, "bigquery")
def _search_bigquery(element, compiler, **kw):
    value, pattern = list(element.clauses)
    return f"REGEXP_CONTAINS({compiler.process(value, **kw)}, {compiler.process(pattern, **kw)})"


@compiles(regex_search, "snowflake")
def _search_snowflake(element, compiler, **kw):
    value, pattern = list(element.clauses)
    return f"(REGEXP_INSTR({compiler.process(value, **kw)}, {compiler.process(pattern, **kw)}) > 0)"


def normalised(value: ColumnElement) -> ColumnElement:
    """:func:`kpi.language.channels.normalise` in SQL (NULL reads as '')."""
    text = sa.func.coalesce(sa.cast(value, sa.String), "")
    text = sa.func.replace(sa.func.replace(text, "+", " "), "%20", " ")
    return sa.func.lower(sa.func.trim(text))


def normalised_source(taxonomy: Taxonomy, value: ColumnElement) -> ColumnElement:
    """A source normalised, then its alias (fb -> facebook)."""
    text = normalised(value)
    aliases = {normalise(k): normalise(v) for k, v in taxonomy.normalise.source_aliases.items()}
    if not aliases:
        return text
    return sa.case(aliases, value=text, else_=text)


def _condition(taxonomy: Taxonomy, condition: Condition, value: ColumnElement) -> ColumnElement:
    exact = taxonomy.values_of(condition)
    if exact is not None:
        return value.in_(exact)
    return regex_search(value, sa.literal(condition.regex, sa.String))


def _all(taxonomy: Taxonomy, conditions: Conditions, row: dict[str, ColumnElement]):
    parts = [_condition(taxonomy, c, row[f]) for f, c in conditions.fields().items()]
    return sa.and_(*parts) if parts else sa.true()


def normalised_inputs(
    taxonomy: Taxonomy,
    source: ColumnElement,
    medium: ColumnElement,
    campaign: ColumnElement,
) -> dict[str, ColumnElement]:
    """The rules' inputs of a row, normalised as the rules compare them (the source aliased)."""
    return {
        "source": normalised_source(taxonomy, source),
        "medium": normalised(medium),
        "campaign": normalised(campaign),
    }


def channel_of(taxonomy: Taxonomy, row: dict[str, ColumnElement]) -> ColumnElement:
    """The channel of each row from its normalised inputs (:func:`normalised_inputs`): the
    first rule that holds, else the fallback."""
    whens = []
    for rule in taxonomy.rules:
        test = _all(taxonomy, rule.when, row)
        if rule.when.any:
            test = sa.and_(test, sa.or_(*[_all(taxonomy, alt, row) for alt in rule.when.any]))
        whens.append((test, sa.literal(rule.channel, sa.String)))
    return sa.case(*whens, else_=sa.literal(taxonomy.fallback, sa.String))


def channel_expression(
    taxonomy: Taxonomy,
    source: ColumnElement,
    medium: ColumnElement,
    campaign: ColumnElement,
) -> ColumnElement:
    """The channel of each row: the first rule that holds, else the fallback. Each input's
    normalisation is written out wherever a rule reads it; a query over many rows reads
    them computed once instead (kpi.compute.source_sql.classifiable)."""
    return channel_of(taxonomy, normalised_inputs(taxonomy, source, medium, campaign))
