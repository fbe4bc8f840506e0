"""PostgreSQL settings for the warehouse's own transactions.

PostgreSQL's defaults suit many small queries; ours are a few statements that each scan a
source or a cube once. One default costs them most (bench/README.md, bench/plans): ``jit``.
PostgreSQL compiles a statement to machine code when its estimated cost is above
``jit_above_cost`` (100,000), and optimises and inlines it above 500,000. A statement over a
million raw rows is estimated in the millions; compiling the GA4 cube's statement (its
channel grouping is one long CASE) took 0.8 s of its 1.8 s, to run in one second.

``work_mem`` is left to the server: at 64MB instead of the default 4MB the rollups no
longer spilled, but the peer bench's month cube (month x channel x campaign, estimated at
a million groups for 33,000) turned from a hash aggregate spilling 28 MB (0.5 s) into a
sort of every row spilling 57 MB (1.3 s). A server tuned for it can set it here too.

Each setting is made with ``set_config(name, value, true)`` (``SET LOCAL``) at the start of every
transaction the warehouse opens (kpi.warehouse.locks.locked_transaction for its writes,
``Warehouse.read``/``rows``/``scalar`` for its reads): nothing outlives
the transaction, so a pooler in transaction mode (PgBouncer) hands no other client a
changed session, and the values are bound parameters, never SQL text. Other dialects
ignore them.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

DEFAULT_POSTGRES_SETTINGS: dict[str, str] = {"jit": "off"}
# A PostgreSQL configuration parameter's name. Not an extension's (auto_explain.x): the
# server takes an unknown dotted name as a placeholder, so a typo would pass unnoticed.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_settings: weakref.WeakKeyDictionary[Engine, dict[str, str]] = weakref.WeakKeyDictionary()


def configure(engine: Engine, settings: Mapping[str, str] | None) -> None:
    """The settings ``engine``'s transactions start with (None: the defaults; {}: none, the
    server's own). A name that is not a parameter name is refused here, with every such
    name; one the server does not know fails the first transaction, named by PostgreSQL."""
    chosen = dict(DEFAULT_POSTGRES_SETTINGS if settings is None else settings)
    bad = sorted(name for name in chosen if not _NAME.match(name))
    if bad:
        raise ValueError(
            f"PostgreSQL settings: {bad} are not parameter names (expected letters, digits "
            "and underscores, as in work_mem or jit; not an extension's dotted name)"
        )
    _settings[engine] = {name: str(value) for name, value in chosen.items()}


def parse_settings(text: str | None) -> dict[str, str] | None:
    """``name=value`` pairs, comma-separated (``jit=off,work_mem=64MB``), as the warehouse
    resource's ``postgres_settings`` holds them: None (unset) for the defaults, ``none``
    for no settings at all (the server's own). Every malformed pair is named."""
    if text is None or not text.strip():
        return None
    if text.strip().lower() == "none":
        return {}
    settings, bad = {}, []
    for pair in text.split(","):
        name, equals, value = pair.partition("=")
        if not equals or not name.strip() or not value.strip():
            bad.append(pair.strip())
            continue
        settings[name.strip()] = value.strip()
    if bad:
        raise ValueError(
            f"PostgreSQL settings {text!r}: {bad} are not name=value (expected comma-separated "
            "pairs such as jit=off,work_mem=64MB, or none for the server's own)"
        )
    return settings


def settings_of(engine: Engine) -> dict[str, str]:
    """The settings ``engine``'s transactions start with on PostgreSQL."""
    return dict(_settings.get(engine, DEFAULT_POSTGRES_SETTINGS))


def apply(conn: Connection) -> None:
    """Set the engine's settings for the rest of ``conn``'s transaction (PostgreSQL)."""
    if conn.dialect.name != "postgresql":
        return
    settings = _settings.get(conn.engine, DEFAULT_POSTGRES_SETTINGS)
    if settings:
        conn.execute(
            sa.select(*[sa.func.set_config(name, value, True) for name, value in settings.items()])
        )
