"""The settings of the code location, read from the environment once, in one place.

Dagster builds its definitions (partitions, schedules, jobs, resources) when the code
location loads; the values they need are read here, validated, and kept for the life of the
process, so the partitions, the schedule and the assets can never disagree on them. Nothing
under ``kpi/``, ``ingest/`` or ``quality/`` reads these variables: they get their values as
arguments.

==========================  ===================  ==============================================
variable                    default              meaning
==========================  ===================  ==============================================
``KPI_DEMO``                unset (off)          ``1``: the demo; GA4 is the local fake server
                                                 holding the demo data (``make run``,
                                                 ``make dev``). Off: production, which needs
                                                 ``GA4_PROPERTY_IDS``.
``GA4_PROPERTY_IDS``        unset                comma-separated numeric GA4 property ids
``GA4_MIN_DAILY_TOKENS``    ``10000``            quota floor of a property's pulls
``GA4_LOOKBACK_DAYS``       ``3``                days the daily schedule re-pulls
``KPI_DAILY_RUN_HOUR``      ``6``                hour of the daily run (reporting time zone)
``KPI_DEFINITIONS_DIR``     ``kpi_definitions/`` folder of the KPI definitions and suites
``KPI_HISTORY_START``       ``2024-01-01``       first day of the daily partitions
``WAREHOUSE_URL``           DuckDB in ``data/``  the warehouse (its secret part is read by the
                                                 resource with ``EnvVar``; here only to tag
                                                 DuckDB writers)
==========================  ===================  ==============================================
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from dagster import EnvVar

from kpi.language.catalog import DEFAULT_DEFINITIONS_DIR
from kpi.warehouse.connection import DEFAULT_WAREHOUSE_URL

DEMO_SWITCH = "KPI_DEMO"


class SettingsError(ValueError):
    """An environment variable holds a value the code location cannot use."""


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name}={env[name]!r}: expected 1 (on) or 0 (off)")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise SettingsError(f"{name}={raw!r}: expected a whole number from {low} to {high}")
    return value


def _date(env: Mapping[str, str], name: str, default: dt.date) -> dt.date:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected an ISO date (YYYY-MM-DD)") from None


@dataclass(frozen=True)
class Settings:
    """What the code location reads from the environment (see the module's table)."""

    demo: bool = False
    ga4_property_ids: tuple[str, ...] = ()
    ga4_min_daily_tokens: int = 10_000
    lookback_days: int = 3
    daily_run_hour: int = 6
    definitions_dir: Path = DEFAULT_DEFINITIONS_DIR
    history_start: dt.date = dt.date(2024, 1, 1)
    # May hold a password: never shown.
    warehouse_url: str = field(default=DEFAULT_WAREHOUSE_URL, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and check every setting; a bad value raises naming the variable."""
        env = os.environ if env is None else env
        ids = env.get("GA4_PROPERTY_IDS", "")
        return cls(
            demo=_flag(env, DEMO_SWITCH),
            ga4_property_ids=tuple(p.strip() for p in ids.split(",") if p.strip()),
            ga4_min_daily_tokens=_int(env, "GA4_MIN_DAILY_TOKENS", 10_000, 0, 10**9),
            lookback_days=_int(env, "GA4_LOOKBACK_DAYS", 3, 1, 366),
            daily_run_hour=_int(env, "KPI_DAILY_RUN_HOUR", 6, 0, 23),
            definitions_dir=Path(env.get("KPI_DEFINITIONS_DIR") or DEFAULT_DEFINITIONS_DIR),
            history_start=_date(env, "KPI_HISTORY_START", dt.date(2024, 1, 1)),
            warehouse_url=env.get("WAREHOUSE_URL") or DEFAULT_WAREHOUSE_URL,
        )


@cache
def settings() -> Settings:
    """The settings of this process, read from the environment on first use."""
    return Settings.from_env()


def env_var(name: str, default: str | None = None) -> EnvVar | str | None:
    """``EnvVar(name)`` when the variable is set (Dagster reads it when the resource starts,
    so the value stays out of run config and the UI); ``default`` otherwise."""
    return EnvVar(name) if os.environ.get(name) else default
