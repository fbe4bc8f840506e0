"""The load of one re-pull window of an ad platform into its raw table (no Dagster here).

Platforms revise recent days: Google Ads and Meta move conversions (and sometimes cost)
for weeks as late conversions are attributed to earlier clicks. Every run therefore pulls
the whole re-pull window (:func:`repull_window`, by default 30 days for Google Ads and 28
for Meta) and replaces, in one transaction, exactly those days of exactly the accounts it
pulled: a revised day is replaced, a re-run adds nothing, and neither the files' ad spend
nor another account's rows are touched (``raw.paid_media`` is a view over all of them).

Money: the platform's cost is exact (micros or decimal strings, never a float on the way)
and in the account's currency; it is converted to the reporting currency with the day's
rate of the ``fx_rates`` source, as file rows are. A row without a rate is quarantined
with the reason, never dropped. The source's suite then validates the rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd
import sqlalchemy as sa

from ingest.files.currency import convert_currency, reject_fx
from ingest.files.dates import row_days
from ingest.files.loading import FX_RATES
from kpi.language.catalog import Catalog
from kpi.warehouse.connection import Warehouse
from kpi.warehouse.schema import source_table
from quality.quarantine import Conservation
from quality.writes import SHIPPED_SUITES, write_with_quarantine

# What each account's rows are tagged with in ``_source_file``: the platform and account.
ORIGIN = "{platform}:{account}"


class Log(Protocol):
    def info(self, msg: str) -> None: ...

    def warning(self, msg: str) -> None: ...


def repull_window(
    first: dt.date, last: dt.date, repull_days: int, history_start: dt.date
) -> tuple[dt.date, dt.date]:
    """The days a run for partitions ``first..last`` pulls: those, and the ``repull_days``
    up to ``last`` the platform may still have revised; never before the history's start."""
    if repull_days < 1:
        raise ValueError(f"a re-pull window is at least 1 day, not {repull_days}")
    start = min(first, last - dt.timedelta(days=repull_days - 1))
    return max(start, history_start), last


@dataclass(frozen=True)
class AdLoad:
    """What :func:`load_campaign_days` did."""

    source: str
    table: sa.Table
    start: dt.date
    end: dt.date
    accounts: list[str]
    conservation: Conservation
    deleted: int
    inserted: int
    # account -> its time zone, for accounts whose days are not the reporting zone's days
    other_zones: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "window": f"{self.start}..{self.end}",
            "accounts": self.accounts,
            **self.conservation.to_metadata(),
            "rows_replaced": self.deleted,
            "accounts_in_other_time_zones": [f"{a} ({z})" for a, z in self.other_zones.items()],
        }


# Written by the currency conversion (ingest.files.currency), not by the pull.
_CONVERTED = ("original_cost", "original_currency", "fx_rate")


def _frame(platform: str, pulls: dict[str, list[dict]], columns: list[str]) -> pd.DataFrame:
    """The pulled rows as one frame with the raw table's columns (money as floats only now,
    after the exact sums of the pull), each tagged with its origin."""
    pulled = [c for c in columns if c not in _CONVERTED]
    records = []
    for account, rows in pulls.items():
        for line, row in enumerate(rows, start=1):
            record = {c: row.get(c) for c in pulled}
            record["currency"] = row.get("account_currency")
            record["_source_file"] = ORIGIN.format(platform=platform, account=account)
            record["_source_line"] = line
            records.append(record)
    frame = pd.DataFrame.from_records(
        records, columns=[*pulled, "currency", "_source_file", "_source_line"]
    )
    for name in ("cost", "conversions_claimed", "conversions_value_claimed"):
        frame[name] = frame[name].map(lambda v: None if v is None else float(v))
    for name in ("clicks", "impressions"):
        frame[name] = frame[name].astype("Int64")
    return frame


def load_campaign_days(
    wh: Warehouse,
    catalog: Catalog,
    source: str,
    platform: str,
    pulls: dict[str, list[dict]],
    start: dt.date,
    end: dt.date,
    run_id: str,
    log: Log,
    suites: Path = SHIPPED_SUITES,
) -> AdLoad:
    """Replace the days ``start..end`` of every account in ``pulls`` (account -> the rows
    pulled for it, ``ingest.google_ads.pull``/``ingest.meta.pull`` shape) in source
    ``source``'s table; rows without an exchange rate or failing the suite are quarantined.

    An account pulled with no rows is replaced by nothing (its campaigns did not run). An
    account not in ``pulls`` keeps its rows: a failed pull never empties a window.
    """
    spec = catalog.sources[source]
    zone = catalog.reporting.time_zone
    table = source_table(source, spec, sa.MetaData())
    wh.ensure_tables([table])
    columns = list(spec.columns)
    frame = _frame(platform, pulls, columns)
    other_zones = {
        account: rows[0]["account_time_zone"]
        for account, rows in pulls.items()
        if rows and rows[0].get("account_time_zone") not in (None, zone)
    }
    for account, account_zone in other_zones.items():
        log.warning(
            f"{source}: account {account} reports its days in {account_zone}, not in {zone}: "
            "its days are loaded as they are (a platform's daily figures cannot be moved to "
            "another zone); set the account's time zone to the reporting zone to align them"
        )
    rejected = pd.DataFrame()
    if not frame.empty:
        rates_table = source_table(FX_RATES, catalog.sources[FX_RATES], sa.MetaData())
        wh.ensure_tables([rates_table])
        rates = wh.read(sa.select(rates_table).where(rates_table.c.date.between(start, end)))
        problems: list = []
        frame = convert_currency(
            frame, spec, rates, catalog.reporting.currency, zone, problems_out=problems
        )
        # The claimed value is money of the account too: ROAS from claimed values must not
        # set converted cost against unconverted revenue.
        frame["conversions_value_claimed"] = (
            frame["conversions_value_claimed"] * frame["fx_rate"]
        ).round(6)
        if problems:
            frame, rejected = reject_fx(frame, rejected, problems, spec, zone)
    loaded_at = dt.datetime.now(dt.UTC)
    frame = frame.assign(_run_id=run_id, _loaded_at=loaded_at)
    accounts = sorted(pulls)
    origins = [ORIGIN.format(platform=platform, account=a) for a in accounts]
    where = table.c.account.in_(accounts) & table.c.date.between(start, end)
    deleted, inserted, conservation = write_with_quarantine(
        wh,
        table,
        where,
        frame,
        source,
        run_id,
        lambda rows: row_days(rows, spec, zone),
        lambda q: q.c._partition.between(start, end) & q.c._source_file.in_(origins),
        rejected,
        (start, end),
        zone,
        suites=suites,
        key=spec.key,
    )
    conservation.require(f"{source}: accounts {', '.join(accounts)}, {start}..{end}")
    if conservation.quarantined:
        log.warning(
            f"{source}: {conservation.quarantined} row(s) quarantined in "
            f"{table.fullname}__quarantine"
        )
    log.info(f"{source}: {inserted} rows for {start}..{end} from {len(accounts)} account(s)")
    return AdLoad(source, table, start, end, accounts, conservation, deleted, inserted, other_zones)


# The file source holding ad spend exported by hand; an API platform must not be in it too.
FILE_SOURCE = "ad_spend"


def days_also_in_files(
    wh: Warehouse, catalog: Catalog, platform: str, start: dt.date, end: dt.date
) -> list[dt.date]:
    """The days of ``start..end`` on which the landing files also hold ``platform``'s spend:
    ``raw.paid_media`` would count it twice (once from the files, once from the API)."""
    if FILE_SOURCE not in catalog.sources:
        return []
    files = source_table(FILE_SOURCE, catalog.sources[FILE_SOURCE], sa.MetaData())
    wh.ensure_tables([files])
    query = (
        sa.select(files.c.date)
        .where(files.c.platform == platform, files.c.date.between(start, end))
        .distinct()
        .order_by(files.c.date)
    )
    return [row[0] for row in wh.rows(query)]
