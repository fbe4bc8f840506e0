"""What changed since the last refresh, so a daily run recomputes only what it touches.

Two small tables in the warehouse carry what an incremental run needs to know:

- ``source_days``: per source and local day, the number of rows and a checksum of the
  columns KPIs read (kpi.compute.checksums.read_columns: lineage columns such as
  ``_loaded_at`` are not among them, so a re-pull that brings the same numbers changes
  nothing). Each refresh of the KPI values computes them
  again and compares, with one grouped scan of the source, or from its daily cube when the
  refresh rebuilds that first (with each cube row's count and checksum, so the source is
  scanned once; kpi.compute.cube_upkeep): the first day whose rows differ
  (added, removed, revised, moved to another day) is where that source changed. It moves
  back to the day after the last day with rows when rows arrive after a gap or go away
  before one: the days of the gap become known, or unknown (kpi.compute.coverage).
- ``refresh_state``: per step (``values``, ``targets``, ``comparisons``, ``anomalies``) and KPI, the
  fingerprint of the definition the step last computed the KPI with, and ``dirty_from``,
  the first day whose periods the step must recompute (NULL when it is up to date). A
  step that changes its output marks the steps that read it dirty from the same day, in
  its own transaction, so a step that fails or is skipped leaves its work pending. Other
  rows stamp what was written from what: ``calendar`` (the periods tables,
  ``CalendarStamp``), ``view`` (a readers' view, kpi.publication.views), ``slices`` (a
  dense slice's set of values, kpi.compute.slice_stamps), ``day_cube`` and ``month_cube``
  (a cube's statement, kpi.compute.cube_upkeep).

Every dependency of a KPI row points back in time: a period's value reads days up to its
window end; running, rolling, previous-period and last-year windows, seasonal targets,
goal pace and anomaly bands read earlier days. So when day D changed, exactly the periods
that end on or after D can change, and a step recomputes those (``period_end >= D``) and
keeps the rest. A KPI without a state row, or whose fingerprint changed (a new
definition, target, benchmark or threshold), is recomputed over its whole history.

The checksum needs a row hash the warehouse computes deterministically: DuckDB's
``hash()`` and PostgreSQL's ``hash_record()``. On other warehouses every refresh is a full
one (``supports_incremental``).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kpi.compute.checksums import read_columns, rows_checksum
from kpi.compute.source_sql import local_day, source_names
from kpi.language.catalog import Catalog
from kpi.warehouse.schema import WORK_SCHEMA, temporary_table

# "Everything": a day before any period, so ``period_end >= FULL`` selects every row.
FULL = dt.date(1900, 1, 1)
KERNEL_DIR = Path(__file__).resolve().parents[1]
VALUES, TARGETS, COMPARISONS, ANOMALIES = "values", "targets", "comparisons", "anomalies"
STEPS = (VALUES, TARGETS, COMPARISONS, ANOMALIES)
CALENDAR = "calendar"  # the stamp of the periods tables (CalendarStamp), not a KPI step
# Which steps read each step's output (and so must follow its changes).
READERS = {
    VALUES: (TARGETS, COMPARISONS, ANOMALIES),
    TARGETS: (COMPARISONS,),
    COMPARISONS: (),
    ANOMALIES: (),
}
INCREMENTAL_DIALECTS = ("duckdb", "postgresql")


def supports_incremental(dialect: str) -> bool:
    return dialect in INCREMENTAL_DIALECTS


def source_days_table(metadata: sa.MetaData) -> sa.Table:
    if f"{WORK_SCHEMA}.source_days" in metadata.tables:
        return metadata.tables[f"{WORK_SCHEMA}.source_days"]
    return sa.Table(
        "source_days",
        metadata,
        sa.Column("source", sa.String, nullable=False, comment="source name (sources.yaml)"),
        sa.Column("day", sa.Date, nullable=False, comment="local day in the reporting zone"),
        sa.Column("n", sa.BigInteger, nullable=False, comment="rows of that day"),
        sa.Column(
            "checksum", sa.BigInteger, comment="sum of a hash of the columns KPIs read, per row"
        ),
        schema=WORK_SCHEMA,
        comment="Rows and checksum per source and day as of the last KPI refresh; a day "
        "whose rows differ now is a day to recompute (kpi.compute.changes)",
    )


def refresh_state_table(metadata: sa.MetaData) -> sa.Table:
    if f"{WORK_SCHEMA}.refresh_state" in metadata.tables:
        return metadata.tables[f"{WORK_SCHEMA}.refresh_state"]
    return sa.Table(
        "refresh_state",
        metadata,
        sa.Column(
            "step",
            sa.String,
            nullable=False,
            comment=(
                "values, targets, comparisons, anomalies; calendar, view, slices, day_cube, "
                "month_cube: stamps"
            ),
        ),
        sa.Column("kpi_id", sa.String, nullable=False),
        sa.Column("fingerprint", sa.String, comment="definition the step last computed with"),
        sa.Column("dirty_from", sa.Date, comment="recompute periods ending on/after; NULL: none"),
        sa.Column("refreshed_at", sa.TIMESTAMP(timezone=True)),
        schema=WORK_SCHEMA,
        comment="What each KPI step must recompute on its next run (kpi.compute.changes)",
    )


# -- fingerprints ------------------------------------------------------------------------


def value_fingerprints(catalog: Catalog) -> dict[str, str]:
    """A KPI's values change with its definition version (which covers the KPIs and
    sources it reads) and with the reporting calendar."""
    calendar = _digest(catalog.reporting.model_dump(mode="json"))
    return {k: f"{v}:{calendar}" for k, v in catalog.versions.items()}


def goal_fingerprints(catalog: Catalog) -> dict[str, str]:
    """Targets and comparisons also change with a KPI's target, benchmark, thresholds and
    direction, which its definition version leaves out."""
    values = value_fingerprints(catalog)
    out = {}
    for kpi_id, kpi in catalog.kpis.items():
        goals = [
            kpi.target.model_dump(mode="json") if kpi.target else None,
            kpi.benchmark.model_dump(mode="json") if kpi.benchmark else None,
            kpi.thresholds.model_dump(mode="json"),
            str(kpi.direction),
        ]
        out[kpi_id] = f"{values[kpi_id]}:{_digest(goals)}"
    return out


def catalog_fingerprint(catalog: Catalog) -> str:
    """The whole catalog's: every KPI and source as declared, the dimensions, the reporting
    calendar and the channel taxonomy."""
    return _digest(
        [
            catalog.reporting.model_dump(mode="json"),
            catalog.dimensions,
            sorted(catalog.sparse_dimensions),
            {k: s.model_dump(mode="json") for k, s in catalog.sources.items()},
            {k: kpi.model_dump(mode="json") for k, kpi in catalog.kpis.items()},
            catalog.taxonomy.fingerprint if catalog.taxonomy is not None else None,
        ]
    )


@functools.cache
def kernel_code_digest() -> str:
    """A digest of the kernel's source (every module of ``kpi/``): compiled SQL kept
    between runs is compiled again after any change to the code that writes it. Installed
    without its sources (bytecode only), the kernel cannot tell one version from another:
    then a digest of this process alone, so that nothing compiled by another is reused."""
    sources = sorted(KERNEL_DIR.rglob("*.py"))
    if not sources:
        return uuid.uuid4().hex[:12]
    h = hashlib.sha256()
    for path in sources:
        h.update(str(path.relative_to(KERNEL_DIR)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


# At import, not at first use: a long-lived process (a code server) started before a deploy
# must not fingerprint the new files while it compiles with the code it loaded.
kernel_code_digest()


def statement_fingerprint(catalog: Catalog, layout: Mapping, dialect: str) -> str:
    """What shapes the SQL of a KPI step (kpi.warehouse.statements): the whole catalog (a
    KPI's name and area are in its rows, a slice's values come from every source it reads),
    the tables' ``layout`` (kpi.compute.tables.KpiTables.layout: cube and rollup columns
    are named by position), the kernel's code, the SQLAlchemy version and the warehouse's
    dialect and driver (``postgresql+psycopg``: drivers render parameters differently)."""
    return _digest(
        [catalog_fingerprint(catalog), layout, kernel_code_digest(), sa.__version__, dialect]
    )


def _digest(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


# -- source days -------------------------------------------------------------------------


def source_days_select(catalog: Catalog, name: str, table: sa.Table) -> sa.Select:
    """Rows and checksum per local day of one source: one grouped scan."""
    src = catalog.sources[name]
    day = local_day(src, table.c[src.time.column], catalog.reporting.time_zone)
    return sa.select(
        sa.literal(name, sa.String).label("source"),
        day.label("day"),
        sa.func.count().label("n"),
        rows_checksum(table, columns=read_columns(catalog, name)).label("checksum"),
    ).group_by(day)


def cube_days_select(name: str, cube: sa.Table) -> sa.Select:
    """``source_days_select`` read from the source's daily cube, built in the same
    transaction: the cube keeps every row of the source (it has no filter) with its count
    and checksum per cube row, so the days are the same integers without a second scan."""
    return sa.select(
        sa.literal(name, sa.String).label("source"),
        cube.c.day,
        sa.cast(sa.func.sum(cube.c.n), sa.BigInteger).label("n"),
        sa.cast(sa.func.sum(cube.c.checksum), sa.BigInteger).label("checksum"),
    ).group_by(cube.c.day)


def changed_since(
    conn: Connection,
    days: sa.Table,
    selects: Mapping[str, sa.Select],
    rescannable: Collection[str] = (),
    covered_until: Mapping[str, Callable[[dt.date], dt.date]] | None = None,
    whole: Collection[str] = (),
) -> dict[str, dt.date | None]:
    """Per source, the first local day whose rows differ from the last refresh's (None when
    nothing changed); stores the new days where they changed.

    A source in ``whole`` is not compared: its days are stored and it is reported changed
    from ``FULL``. For a full refresh of every KPI that reads it, which needs no first day.

    Inside the caller's transaction: the new days are written only if its work commits.
    The select of a source in ``rescannable`` is read twice rather than kept in a temporary
    table: it reads a cube this transaction built, a few rows a day, where the temporary
    table's four statements cost more than the second read. Only such a select may be: one
    over a table others write could change between the two reads (PostgreSQL's READ
    COMMITTED), and the change would be stored without being reported, so never recomputed.
    ``covered_until`` gives, per source, the last day a row of a given day covers (the end
    of its week or month for a source of that grain; the day itself by default).
    """
    found: dict[str, dt.date | None] = {}
    for name, select in selects.items():
        if name in whole:
            found[name] = FULL
            conn.execute(days.delete().where(days.c.source == name))
            conn.execute(days.insert().from_select(list(select.selected_columns.keys()), select))
            continue
        scratch = None if name in rescannable else _scratch(conn, f"source_days_{name}", select)
        fresh = select.subquery() if scratch is None else scratch
        first, last_before, last_after = conn.execute(_compared(days, name, fresh)).one()
        found[name] = _day(first) if first is not None else None
        # No day differs: the stored days are these (one row a day on both sides), so a run
        # with no news writes nothing here.
        if found[name] is not None:
            until = (covered_until or {}).get(name, _same_day)
            found[name] = _with_coverage_moved(found[name], last_before, last_after, until)
            conn.execute(days.delete().where(days.c.source == name))
            conn.execute(
                days.insert().from_select(list(select.selected_columns.keys()), sa.select(fresh))
            )
        if scratch is not None:
            conn.execute(sa.schema.DropTable(scratch))
    return found


def _same_day(day: dt.date) -> dt.date:
    return day


def _compared(days: sa.Table, name: str, fresh: sa.Subquery | sa.Table) -> sa.Select:
    """One row: the first day whose stored (day, n, checksum) differs from ``fresh``'s, and
    the last day of each side. Each side holds one row a day, so a full join on the day
    pairs them; a day on one side only differs (a source seen for the first time differs
    from an empty one on each of its days). One statement, where a union of two EXCEPTs
    and a second read of both sides for their last days took three reads of each."""
    old = sa.select(days.c.day, days.c.n, days.c.checksum).where(days.c.source == name).subquery()
    differs = sa.or_(
        old.c.day.is_(None),
        fresh.c.day.is_(None),
        old.c.n.is_distinct_from(fresh.c.n),
        old.c.checksum.is_distinct_from(fresh.c.checksum),
    )
    either = sa.func.coalesce(old.c.day, fresh.c.day)
    return sa.select(
        sa.func.min(sa.case((differs, either))),
        sa.func.max(old.c.day),
        sa.func.max(fresh.c.day),
    ).select_from(old.join(fresh, old.c.day == fresh.c.day, full=True))


def _with_coverage_moved(
    changed: dt.date,
    last_before: dt.date | None,
    last_after: dt.date | None,
    covered_until: Callable[[dt.date], dt.date],
) -> dt.date:
    """``changed``, or the day after the earlier of the last days the source covered
    before and after the change when that is earlier. A source covers the days up to its
    last with rows (to its period's end for a weekly or monthly source,
    kpi.compute.coverage); days after it are unknown, not 0, and the anomaly step judges
    only known days. Rows arriving two days after the last ones make the day between them
    known, with no rows of its own on either side; rows going away after a gap make the
    gap's days unknown again."""
    if last_before is None or last_after is None:
        return changed
    before, after = covered_until(_day(last_before)), covered_until(_day(last_after))
    if before == after:
        return changed
    return min(changed, min(before, after) + dt.timedelta(days=1))


def _scratch(conn: Connection, name: str, select: sa.Select) -> sa.Table:
    """``select`` materialized once in a temporary table of this connection."""
    table = temporary_table(f"tmp_{name}", [(c.key, c.type) for c in select.selected_columns])
    conn.execute(sa.schema.DropTable(table, if_exists=True))
    conn.execute(sa.schema.CreateTable(table))
    conn.execute(table.insert().from_select(list(select.selected_columns.keys()), select))
    return table


# -- refresh state -----------------------------------------------------------------------


def pending(
    conn: Connection, state: sa.Table, step: str, fingerprints: Mapping[str, str]
) -> dict[str, dt.date]:
    """KPI -> first day to recompute, for every KPI of ``fingerprints`` the step must
    (re)compute: ``FULL`` without a state row or with another fingerprint."""
    rows = conn.execute(
        sa.select(state.c.kpi_id, state.c.fingerprint, state.c.dirty_from).where(
            state.c.step == step
        )
    ).all()
    known = {kpi_id: (fp, since) for kpi_id, fp, since in rows}
    out: dict[str, dt.date] = {}
    for kpi_id, fingerprint in fingerprints.items():
        fp, since = known.get(kpi_id, (None, FULL))
        if fp != fingerprint:
            out[kpi_id] = FULL
        elif since is not None:
            out[kpi_id] = since
    return out


def mark_dirty(
    conn: Connection, state: sa.Table, steps: Iterable[str], since: Mapping[str, dt.date]
) -> None:
    """Make ``steps`` recompute each KPI of ``since`` from that day on (an earlier day
    already pending wins). KPIs without a state row are recomputed whole anyway."""
    by_day: dict[dt.date, list[str]] = {}
    for kpi_id, day in since.items():
        by_day.setdefault(day, []).append(kpi_id)
    for day, kpi_ids in sorted(by_day.items()):
        earlier = sa.and_(state.c.dirty_from.is_not(None), state.c.dirty_from <= day)
        conn.execute(
            state.update()
            .where(state.c.step.in_(list(steps)), state.c.kpi_id.in_(kpi_ids), sa.not_(earlier))
            .values(dirty_from=day)
        )


def mark_clean(
    conn: Connection,
    state: sa.Table,
    step: str,
    fingerprints: Mapping[str, str],
    at: dt.datetime,
    replacing: bool = True,
) -> None:
    """Record that ``step`` is up to date for each KPI of ``fingerprints``
    (``replacing=False``: the caller deleted their rows in this transaction)."""
    if not fingerprints:
        return
    if replacing:
        conn.execute(
            state.delete().where(state.c.step == step, state.c.kpi_id.in_(list(fingerprints)))
        )
    conn.execute(
        state.insert(),
        [
            {"step": step, "kpi_id": k, "fingerprint": fp, "dirty_from": None, "refreshed_at": at}
            for k, fp in fingerprints.items()
        ],
    )


def forget(conn: Connection, state: sa.Table, days: sa.Table) -> None:
    """Forget every step's state and every source's days: the next run is a full one."""
    conn.execute(state.delete())
    conn.execute(days.delete())


# -- the calendar -------------------------------------------------------------------------


@dataclass(frozen=True)
class CalendarStamp:
    """What the periods tables were last written from: the calendar's rules (the reporting
    settings and the kernel's code), the first day, the as-of date, and how many rows each
    table got (a table edited since, its count changed, is rewritten whole).

    Kept as a ``refresh_state`` row (step ``calendar``) in the transaction that writes the
    periods, so the next refresh knows which stored periods are still right without reading
    them all: with the same rules and first day, every period ending before the earlier of
    the two as-of dates is the same row (it was complete in both), so a new day rewrites the
    few open periods and not the whole history.
    """

    rules: str
    first: dt.date
    as_of: dt.date
    rows: tuple[int, int]  # rows of the periods table, of the day map

    @classmethod
    def of(
        cls, reporting: Mapping, first: dt.date, as_of: dt.date, rows: tuple[int, int]
    ) -> CalendarStamp:
        return cls(_digest([reporting, kernel_code_digest()]), first, as_of, rows)

    def encode(self) -> str:
        return f"{self.rules}|{self.first}|{self.as_of}|{self.rows[0]}|{self.rows[1]}"

    @classmethod
    def decode(cls, text: str | None) -> CalendarStamp | None:
        try:
            rules, first, as_of, periods, days = (text or "").split("|")
            first_day, as_of_day = dt.date.fromisoformat(first), dt.date.fromisoformat(as_of)
            return cls(rules, first_day, as_of_day, (int(periods), int(days)))
        except ValueError:  # none yet, or written by another version: rewrite everything
            return None

    def kept_before(self, new: CalendarStamp) -> dt.date | None:
        """The day before which the periods stamped ``self`` are those of ``new`` (None:
        rewrite them all)."""
        if (self.rules, self.first) != (new.rules, new.first):
            return None
        return min(self.as_of, new.as_of)


def read_calendar_stamp(
    conn: Connection, state: sa.Table, counted: Sequence[sa.Table] = ()
) -> tuple[CalendarStamp | None, tuple[int, ...]]:
    """The stamp of the periods tables, and the rows each table of ``counted`` holds now:
    one statement, run on every refresh (the stamp's row counts are checked against them)."""
    stamp = (
        sa.select(state.c.fingerprint)
        .where(state.c.step == CALENDAR, state.c.kpi_id == "")
        .limit(1)  # a row more (edited by hand) is not an error: the next write replaces both
        .scalar_subquery()
    )
    counts = [sa.select(sa.func.count()).select_from(t).scalar_subquery() for t in counted]
    found, *rows = conn.execute(sa.select(stamp, *counts)).one()
    return CalendarStamp.decode(found), tuple(int(n) for n in rows)


def write_calendar_stamp(
    conn: Connection, state: sa.Table, stamp: CalendarStamp, at: dt.datetime
) -> None:
    conn.execute(state.delete().where(state.c.step == CALENDAR))
    row = {"step": CALENDAR, "kpi_id": "", "fingerprint": stamp.encode(), "refreshed_at": at}
    conn.execute(state.insert().values(**row))


def periods_changed_from(old: Iterable[Mapping], new: Iterable[Mapping]) -> dt.date | None:
    """The earliest ``period_end`` of a period added, removed or changed between two
    versions of the periods table (None: the same). Periods ending earlier are the same
    rows, so nothing computed over them changes. Rows compare on the new rows' columns."""
    new = list(new)
    if not new:
        return min((r["period_end"] for r in old), default=None)
    columns = list(new[0].keys())

    def keyed(rows: Iterable[Mapping]) -> dict[tuple, tuple]:
        # A driver may return a DATE as a midnight datetime: compared as the date.
        return {
            (r["grain"], _day(r["period_start"])): tuple(_day(r[c]) for c in columns) for r in rows
        }

    before, after = keyed(old), keyed(new)
    end = columns.index("period_end")
    ends = [
        (after.get(key) or before[key])[end]
        for key in before.keys() | after.keys()
        if before.get(key) != after.get(key)
    ]
    return min(ends) if ends else None


def _day(value):
    return value.date() if isinstance(value, dt.datetime) else value


def whole_history_as_full(
    conn: Connection,
    periods: sa.Table,
    days: sa.Table,
    catalog: Catalog,
    todo: dict[str, dt.date],
) -> dict[str, dt.date]:
    """``todo`` (per KPI, its first changed day) with every day on or before the first day
    of the KPI's data as ``FULL`` (the first day of the earliest of its sources in
    ``days``, or the end of the first of ``periods`` if that is later): the periods before
    it hold no data of the KPI, so a full recompute gives the same rows, with the
    statements of a full recompute. A change on every day of a source (a re-delivered
    history, a catalogue that hashes another column) would otherwise run the incremental
    statements over all of it, which PostgreSQL plans with nested loops (the 425-day demo's
    comparisons: 268 s against 29 s)."""
    if not todo or all(since == FULL for since in todo.values()):
        return todo
    first_end = conn.execute(sa.select(sa.func.min(periods.c.period_end))).scalar()
    if first_end is None:
        return todo
    starts = dict(
        conn.execute(
            sa.select(days.c.source, sa.func.min(days.c.day)).group_by(days.c.source)
        ).all()
    )

    def threshold(kpi_id: str) -> dt.date:
        sources = source_names(catalog, catalog.kpis[kpi_id])
        firsts = [starts[s] for s in sources if starts.get(s) is not None]
        return max(first_end, min(firsts)) if firsts else first_end

    return {k: FULL if since <= threshold(k) else since for k, since in todo.items()}
