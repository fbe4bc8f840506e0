"""Noticing new and changed landing files, for the landing sensor (no Dagster here).

The state kept between scans (the sensor cursor, JSON) remembers, per source and path, the
size, modification time, content hash and dates of every file seen. A scan lists the
folders and reads only files whose size or modification time changed (or every file, when
the filesystem reports no modification time). A file counts as a change when its bytes are
new for the source: a touched file with the same bytes, or a copy of a file already seen
under another name, is recorded and triggers nothing.

A changed file covers its new dates and the dates its previous version covered, so a
corrected re-delivery under the same name reloads every day the old version touched.
Changes are merged into contiguous date ranges, each with a run key derived from the hashes
of its files: the same files never produce a second run key.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ingest.files.dates import date_range
from ingest.files.parsing import parse_file
from ingest.landing import Landing, LandingUnavailable, content_sha256
from kpi.language.models import SourceSpec

STATE_VERSION = 1


@dataclass(frozen=True)
class SeenFile:
    """What a scan remembers of one file."""

    size: int
    modified: float | None
    sha256: str
    first: dt.date | None
    last: dt.date | None

    def to_json(self) -> list:
        return [self.size, self.modified, self.sha256, _iso(self.first), _iso(self.last)]

    @classmethod
    def from_json(cls, data: list) -> SeenFile:
        size, modified, sha, first, last = data
        return cls(int(size), modified, str(sha), _date(first), _date(last))


@dataclass
class LandingState:
    """Every file seen, by source and path; serialised as the sensor cursor."""

    files: dict[str, dict[str, SeenFile]] = field(default_factory=dict)

    def to_json(self) -> str:
        data = {
            "v": STATE_VERSION,
            "sources": {
                source: {path: seen.to_json() for path, seen in sorted(paths.items())}
                for source, paths in sorted(self.files.items())
            },
        }
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> LandingState:
        """The state in ``text``; an empty state for None or a cursor of another version."""
        if not text:
            return cls()
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("v") != STATE_VERSION:
            return cls()
        return cls(
            {
                source: {path: SeenFile.from_json(v) for path, v in paths.items()}
                for source, paths in data.get("sources", {}).items()
            }
        )

    def hashes(self, source: str) -> set[str]:
        return {seen.sha256 for seen in self.files.get(source, {}).values()}


@dataclass(frozen=True)
class Change:
    """A file whose bytes are new for its source, and the days to reload for it."""

    source: str
    path: str
    sha256: str
    first: dt.date
    last: dt.date
    reason: str  # "new" or "changed"
    problems: int = 0  # the run will fail and list them; the sensor does not hold it back


@dataclass
class Scan:
    changes: list[Change]
    state: LandingState
    messages: list[str]  # for the sensor log: duplicates, files without dates, read errors
    # For the sensor log at WARN: missing source folders, folders no source declares.
    warnings: list[str] = field(default_factory=list)


def scan_landing(
    landing: Landing,
    sources: Mapping[str, SourceSpec],
    state: LandingState,
    time_zone: str,
) -> Scan:
    """Compare the landing folders with ``state``; return the changes and the new state.

    Raises :class:`LandingUnavailable` when the landing root is missing or unreadable: the
    sensor's tick then fails naming it, and the state is kept.
    """
    landing.require()
    changes: list[Change] = []
    messages: list[str] = []
    warnings = undeclared_folders(landing, sources)
    new_state = LandingState()
    for source, spec in sources.items():
        before = state.files.get(source, {})
        try:
            landing.require(spec.landing)
        except LandingUnavailable as exc:
            warnings.append(f"{source}: {exc}; its runs will fail until it exists")
            new_state.files[source] = dict(before)
            continue
        listed = landing.files(spec.landing)
        if not listed and before:
            # An empty listing of a folder that had files is more likely an unmounted or
            # unreachable folder than a clear-out: forgetting would reload everything later.
            messages.append(f"{source}: no files listed in `{spec.landing}/`; keeping the state")
            new_state.files[source] = dict(before)
            continue
        now: dict[str, SeenFile] = {}
        known = {seen.sha256: seen for seen in before.values()}
        for file in listed:
            old = before.get(file.path)
            if (
                old is not None
                and file.modified is not None
                and (old.size, old.modified) == (file.size, file.modified)
            ):
                now[file.path] = old
                continue
            try:
                data = landing.read(file)
            except OSError as exc:
                messages.append(f"{source}: cannot read {file.path} ({exc}); will retry")
                if old is not None:
                    now[file.path] = old
                continue
            sha = content_sha256(data)
            if sha in known:
                same = known[sha]
                now[file.path] = SeenFile(file.size, file.modified, sha, same.first, same.last)
                if old is None or old.sha256 != sha:
                    messages.append(f"{source}: {file.path} has the bytes of a file seen before")
                continue
            parsed = parse_file(data, file.path, spec)
            first, last = date_range(parsed.frame, spec, time_zone)
            seen = SeenFile(file.size, file.modified, sha, first, last)
            now[file.path] = seen
            known[sha] = seen
            days = [d for d in (first, last) if d is not None]
            if old is not None:
                days += [d for d in (old.first, old.last) if d is not None]
            if not days:
                messages.append(
                    f"{source}: {file.path} has no row with a valid date "
                    f"({parsed.note or f'{len(parsed.problems)} problem(s)'}); nothing to load"
                )
                continue
            changes.append(
                Change(
                    source,
                    file.path,
                    sha,
                    min(days),
                    max(days),
                    "new" if old is None else "changed",
                    len(parsed.problems),
                )
            )
        new_state.files[source] = now
    return Scan(changes, new_state, messages, warnings)


def undeclared_folders(landing: Landing, sources: Mapping[str, SourceSpec]) -> list[str]:
    """A warning per folder under the root that no source declares (a typo such as
    ``adspend/``): its files would otherwise be ignored without a word."""
    declared = {spec.landing: name for name, spec in sources.items() if spec.landing}
    out = []
    for folder in landing.folders():
        if folder in declared or folder.startswith((".", "_")):
            continue
        near = difflib.get_close_matches(folder, list(declared), n=1, cutoff=0.6)
        hint = f"; did you mean `{near[0]}/` (source {declared[near[0]]})?" if near else ""
        shown = ", ".join(f"`{f}/`" for f in sorted(declared))
        out.append(
            f"landing folder `{folder}/` is declared by no source, so its files are not "
            f"loaded{hint} Declared folders: {shown}"
        )
    return out


@dataclass(frozen=True)
class DateRange:
    """Contiguous days to reload, and the files that asked for them."""

    first: dt.date
    last: dt.date
    sha256s: tuple[str, ...]
    paths: tuple[str, ...]

    @property
    def run_key(self) -> str:
        digest = hashlib.sha256("\n".join(sorted(self.sha256s)).encode()).hexdigest()[:16]
        return f"landing-{self.first}-{self.last}-{digest}"


def contiguous_ranges(
    changes: Iterable[Change], lowest: dt.date, highest: dt.date
) -> list[DateRange]:
    """Merge the changes' days (clipped to ``lowest..highest``) into contiguous ranges."""
    spans = sorted(
        (
            (max(c.first, lowest), min(c.last, highest), c)
            for c in changes
            if c.last >= lowest and c.first <= highest
        ),
        key=lambda span: (span[0], span[1], span[2].path),
    )
    out: list[DateRange] = []
    for first, last, change in spans:
        if out and first <= out[-1].last + dt.timedelta(days=1):
            prev = out[-1]
            out[-1] = DateRange(
                prev.first,
                max(prev.last, last),
                (*prev.sha256s, change.sha256),
                (*prev.paths, change.path),
            )
        else:
            out.append(DateRange(first, last, (change.sha256,), (change.path,)))
    return out


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day is not None else None


def _date(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None
