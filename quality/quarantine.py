"""Quarantine: rows that fail a row-level expectation are set aside with the reason.

For a raw source, :func:`split_rows` validates the frame about to be written and separates
the rows failing a row-level expectation of severity ``error`` (not_null, between, in_set,
unique, ...) from the good ones. The bad rows go to ``raw.<source>__quarantine``
(:func:`quarantine_table`) with the expectations they failed, the run id and the time,
replaced per partition window exactly like the raw rows, and in the same transaction as
them (``quality.writes.write_with_quarantine``), so a re-run never duplicates them and a
failed write never leaves raw rows without their quarantine, or the reverse.

Row conservation: every received row is either loaded or quarantined; :class:`Conservation`
records the three counts. No Dagster here: the assets and ``python -m quality.replay`` share
this module.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from quality.suites import DateInPartition, Suite, Unique
from quality.validate import ValidationReport, validate_frame

__all__ = [
    "META_COLUMNS",
    "PARSE_PREFIX",
    "Conservation",
    "ConservationError",
    "no_partition_reason",
    "outside_window_reason",
    "placed_by_a_run",
    "quarantine_frame",
    "quarantine_table",
    "require_conserved",
    "row_value_problems",
    "split_rows",
]

# Reasons of rows that could not even be parsed start with this; replay skips them because
# their bad value was never stored (only a corrected file can bring them back).
PARSE_PREFIX = "parse: "
# Reasons of rows no partition of the run holds. They start with the name of the
# date_in_partition expectation (as the suite names it) or say which window read them.
_NO_PARTITION = "date_in_partition("
_OUTSIDE_WINDOW = "outside the partition window"


def no_partition_reason(column: str, detail: str) -> str:
    """Why a row is in no partition (in the future, before the first one, without a date)."""
    return f"{_NO_PARTITION}{column}): {detail}"


def outside_window_reason(first: object, last: object) -> str:
    """Why a row read for the partitions ``first..last`` is in none of them."""
    return f"{_OUTSIDE_WINDOW} {first}..{last}"


def placed_by_a_run(reasons: pd.Series) -> pd.Series:
    """Rows quarantined for where their day falls, not for a value: the run of their day
    takes them over, so a suite change (a replay) must leave them."""
    return reasons.str.contains(_NO_PARTITION, regex=False) | reasons.str.contains(
        _OUTSIDE_WINDOW, regex=False
    )


META_COLUMNS = (
    "_quarantine_id",
    "_failed_expectations",
    "_partition",
    "_run_id",
    "_quarantined_at",
    "_source_file",
    "_source_line",
)


def quarantine_table(raw: sa.Table, metadata: sa.MetaData) -> sa.Table:
    """``<schema>.<table>__quarantine``: the raw table's columns, all nullable, plus why."""
    name = f"{raw.name}__quarantine"
    key = f"{raw.schema}.{name}" if raw.schema else name
    if key in metadata.tables:
        return metadata.tables[key]
    data = [
        sa.Column(c.name, c.type, nullable=True) for c in raw.columns if not c.name.startswith("_")
    ]
    return sa.Table(
        name,
        metadata,
        sa.Column("_quarantine_id", sa.String, nullable=False, comment="unique id of the row"),
        *data,
        sa.Column("_failed_expectations", sa.Text, comment="expectations or parse problems"),
        sa.Column("_partition", sa.Date, comment="day of the row (or of its file)"),
        sa.Column("_run_id", sa.String, comment="Dagster run that quarantined the row"),
        sa.Column("_quarantined_at", sa.DateTime(timezone=True)),
        sa.Column("_source_file", sa.String, comment="file or API report the row came from"),
        sa.Column("_source_line", sa.BigInteger, comment="line in that file (1 = header)"),
        schema=raw.schema,
        comment=f"rows of {raw.fullname} that failed validation, with the reason",
    )


class ConservationError(RuntimeError):
    """A load lost or doubled rows: received != loaded + quarantined."""


@dataclass(frozen=True)
class Conservation:
    """received = loaded + quarantined, for one load."""

    received: int
    loaded: int
    quarantined: int

    @property
    def holds(self) -> bool:
        return self.received == self.loaded + self.quarantined

    def require(self, where: str) -> None:
        """Raise :class:`ConservationError` naming ``where`` (source, file) and the three
        counts unless every received row was loaded or quarantined."""
        if not self.holds:
            gap = self.received - self.loaded - self.quarantined
            raise ConservationError(
                f"{where}: rows not conserved: received {self.received} != loaded "
                f"{self.loaded} + quarantined {self.quarantined} ({abs(gap)} row(s) "
                f"{'unaccounted for' if gap > 0 else 'too many'})"
            )

    def to_metadata(self) -> dict[str, int | bool]:
        return {
            "rows_received": self.received,
            "rows_loaded": self.loaded,
            "rows_quarantined": self.quarantined,
            "rows_conserved": self.holds,
        }


def split_rows(
    frame: pd.DataFrame,
    suite: Suite,
    partition: tuple[dt.date, dt.date] | None = None,
    time_zone: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, ValidationReport]:
    """(good rows, bad rows with ``_failed_expectations``, the validation report).

    Only row-level expectations of severity ``error`` quarantine a row; warnings flag but
    keep it, and table-level failures (a missing column) are left to the blocking check.
    ``partition`` and ``time_zone`` are those of :func:`quality.validate.validate_frame`.
    """
    report = validate_frame(frame.reset_index(drop=True), suite, partition, time_zone)
    quarantining = {
        o.name for o in report.outcomes if o.row_level and o.severity == "error" and not o.success
    }
    reasons = {
        row: [n for n in names if n in quarantining] for row, names in report.failing_rows().items()
    }
    reasons = {row: names for row, names in reasons.items() if names}
    frame = frame.reset_index(drop=True)
    bad_mask = frame.index.isin(list(reasons))
    bad = frame[bad_mask].copy()
    bad["_failed_expectations"] = ["; ".join(reasons[i]) for i in bad.index]
    return frame[~bad_mask].reset_index(drop=True), bad.reset_index(drop=True), report


def quarantine_frame(
    bad: pd.DataFrame,
    table: sa.Table,
    run_id: str,
    days: pd.Series | None,
    at: dt.datetime | None = None,
) -> pd.DataFrame:
    """``bad`` shaped for ``table``: only its columns, plus ids, partition day and run."""
    out = bad[[c for c in bad.columns if c in table.c]].copy()
    out["_quarantine_id"] = [uuid.uuid4().hex for _ in range(len(out))]
    out["_partition"] = list(days) if days is not None else None
    out["_run_id"] = run_id
    out["_quarantined_at"] = at or dt.datetime.now(dt.UTC)
    return out.reset_index(drop=True)


def row_value_problems(frame: pd.DataFrame, suite: Suite) -> pd.Series:
    """Per row of ``frame`` (all deliveries of a source, before later ones supersede earlier
    ones by key): the row-level ``error`` expectations it fails, joined by "; ", else None.

    A row failing one is quarantined and must not displace the row of the same key it would
    have superseded: the previous value stays until a valid one arrives. Only expectations
    judging a row on its own values count here (``unique`` compares deliveries with each
    other, ``date_in_partition`` depends on the run's window) and only those whose columns
    the rows already have (an amount converted to the reporting currency is judged after
    conversion, as before).
    """
    present = set(frame.columns)
    own = [
        e
        for e in suite.expectations
        if e.row_level
        and e.severity == "error"
        and not isinstance(e, Unique | DateInPartition)
        and set(e.columns_used) <= present
    ]
    out = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    if not own or frame.empty:
        return out
    report = validate_frame(
        frame.reset_index(drop=True), suite.model_copy(update={"expectations": own})
    )
    for position, names in report.failing_rows().items():
        out.iloc[position] = "; ".join(names)
    return out


def require_conserved(
    source: str,
    total: Conservation,
    received: Mapping[str, int],
    loaded: Mapping[str, int],
    quarantined: Mapping[str, int],
) -> dict[str, Conservation]:
    """Each file's conservation (by path); raises :class:`ConservationError` naming every
    file (and the source's total) whose received rows are not loaded + quarantined."""
    files = sorted(set(received) | set(loaded) | set(quarantined))
    per_file = {
        f: Conservation(received.get(f, 0), loaded.get(f, 0), quarantined.get(f, 0)) for f in files
    }
    problems = []
    for where, counts in [(source, total), *((f"{source}: {f}", c) for f, c in per_file.items())]:
        try:
            counts.require(where)
        except ConservationError as exc:
            problems.append(str(exc))
    if problems:
        raise ConservationError("\n".join(problems))
    return per_file
