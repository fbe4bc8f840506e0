"""Union sources as views: one source read by the KPIs, its rows stored by several loaders.

Ad spend comes from landing files and from each ad platform's API, each loader replacing
only its own rows (its files' days, its accounts' re-pull window). A source declaring
``union_of`` is a view over its members' tables, so every KPI reading it reads them all,
and none of the loaders can delete another's rows. A column a member does not have reads as
NULL for that member's rows (``account`` for a file row, say).

:func:`attach_union_views` records each view's SELECT in its ``sa.Table``'s ``info``;
``Warehouse.ensure_tables`` then creates it as a view after the member tables.
"""

from __future__ import annotations

import sqlalchemy as sa

from kpi.language.models import SourceSpec

VIEW_INFO = "view_select"


def union_select(spec: SourceSpec, view: sa.Table, members: list[sa.Table]) -> sa.CompoundSelect:
    """Each member's rows with ``view``'s columns, one after another (UNION ALL keeps every
    row, duplicates included: two loaders' rows are two facts)."""
    parts = []
    for member in members:
        parts.append(
            sa.select(
                *[
                    (
                        sa.cast(member.c[col.name], col.type)
                        if col.name in member.c
                        else sa.cast(sa.null(), col.type)
                    ).label(col.name)
                    for col in view.columns
                ]
            )
        )
    return sa.union_all(*parts)


def attach_union_views(sources: dict[str, SourceSpec], tables: dict[str, sa.Table]) -> None:
    """Mark the table of every union source in ``tables`` as a view over its members."""
    for name, spec in sources.items():
        if not spec.union_of or any(m not in tables for m in spec.union_of):
            continue  # an unknown member is the definition rules' error
        view = tables[name]
        view.info[VIEW_INFO] = union_select(spec, view, [tables[m] for m in spec.union_of])


def is_view(table: sa.Table) -> bool:
    return VIEW_INFO in table.info


def table_signature(table: sa.Table, dialect: sa.Dialect) -> tuple:
    """What ``Warehouse.ensure_tables`` makes sure of for ``table``: its name, comment,
    columns (type, nullability, comment), keys and, for a view, its SQL."""
    # The type as its DDL: a fifth of the time of its repr, on every step's tables.
    columns = tuple(
        (c.name, c.type.compile(dialect=dialect), c.nullable, c.comment) for c in table.columns
    )
    keys = tuple(c.name for c in table.primary_key.columns)
    unique = tuple(sorted(tuple(c.name for c in i.columns) for i in table.indexes if i.unique))
    view = table.info.get(VIEW_INFO)
    if view is not None:
        view = str(view.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    return table.fullname, table.comment, columns, keys, unique, view


def create_or_replace_view(conn: sa.Connection, table: sa.Table) -> None:
    """(Re)create the view ``table`` from its SELECT, in ``conn``'s transaction."""
    replace_view(conn, conn.dialect.identifier_preparer.format_table(table), table.info[VIEW_INFO])


def replace_view(conn: sa.Connection, name: str, query: sa.Select | sa.CompoundSelect) -> None:
    """``CREATE OR REPLACE VIEW name AS query`` in ``conn``'s transaction."""
    body = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    # DDL takes no bound parameters; the SELECT comes from our declarations, not from input.
    replace = sa.text(f"CREATE OR REPLACE VIEW {name} AS {body}")
    if conn.dialect.name != "postgresql":
        conn.execute(replace)
        return
    try:
        with conn.begin_nested():
            conn.execute(replace)
    except sa.exc.ProgrammingError:
        # PostgreSQL replaces a view only by appending columns; one of another shape (a
        # column declared in the middle) is made again.
        conn.execute(sa.text(f"DROP VIEW {name}"))
        conn.execute(sa.text(f"CREATE VIEW {name} AS {body}"))
