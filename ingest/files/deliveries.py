"""All landing files of a source: identical bytes read once, one row per business key.

Files are identified by the SHA-256 of their bytes. A file with the same bytes as another one
(a re-delivery under another name) is recorded as a duplicate and not read again. Rows are
identified by the source's business key: when several files hold the same key, the row of
the latest delivery wins, so a corrected file replaces the rows it corrects; a row that is
quarantined (a parse problem, or ``row_problems`` of ``read_source``) never wins: the earlier
good row of its key stays until a valid one arrives.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ingest.files.dates import date_range
from ingest.files.declarations import empty_frame
from ingest.files.parse_cache import ParseCache
from ingest.files.parsing import ParsedFile, parse_file
from ingest.files.problems import FileFormatError
from ingest.landing import Landing, LandingFile, content_sha256
from kpi.language.models import SourceSpec


@dataclass
class FileLoad:
    """What a load did with one landing file (one row of the load registry)."""

    path: str
    sha256: str
    size: int
    status: str  # "read", "empty" (no rows) or "duplicate" (same bytes as duplicate_of)
    rows: int
    first_date: dt.date | None
    last_date: dt.date | None
    format: str
    note: str = ""
    duplicate_of: str | None = None
    rows_superseded: int = 0  # rows replaced by a later delivery of the same key


@dataclass
class SourceBatch:
    """Every landing file of a source, read, with one row per business key."""

    frame: pd.DataFrame
    files: list[FileLoad]
    # With ``strict=False``: the rows (or bare lines) that had problems, the file columns plus
    # _source_file, _source_line, _problem (why) and _file_day (the file's first date, for
    # lines whose own date could not be read). Empty otherwise.
    rejected: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def rows_superseded(self) -> int:
        return sum(f.rows_superseded for f in self.files)


def delivery_order(
    files: Sequence[tuple[LandingFile, str]],
    first_loaded: Mapping[str, dt.datetime] | None = None,
) -> list[tuple[LandingFile, str]]:
    """``(file, sha256)`` pairs, earliest delivery first.

    A delivery's time is when its content was first loaded (from the load registry), so
    copying or touching an old file does not make it newer; content never loaded comes
    last. Ties (a first load, a registry lost) fall back to the modification time, then
    to the path.
    """
    known = first_loaded or {}
    never = dt.datetime.max.replace(tzinfo=dt.UTC)

    def order(item: tuple[LandingFile, str]) -> tuple:
        file, sha = item
        return (known.get(sha, never), file.modified or 0.0, file.path)

    return sorted(files, key=order)


def read_source(
    landing: Landing,
    spec: SourceSpec,
    time_zone: str,
    first_loaded: Mapping[str, dt.datetime] | None = None,
    strict: bool = True,
    row_problems: Callable[[pd.DataFrame], pd.Series] | None = None,
    cache: ParseCache | None = None,
) -> SourceBatch:
    """Read every landing file of ``spec``: one row per business key, latest delivery wins.

    Raises FileFormatError listing every problem of every file; then nothing is loaded.
    With ``strict=False`` only unusable files raise; rows with problems are returned in
    ``SourceBatch.rejected`` (for quarantine) and the other rows load. ``row_problems``
    (with ``strict=False``) gives each row's reason to be quarantined, or None: such rows
    join ``rejected`` before keys are deduplicated, so a bad re-delivery never supersedes
    the good row of its key (the previous value stays until a valid one arrives).
    ``cache`` keeps each file's parse between runs (ingest.files.parse_cache).
    """
    listed = landing.files(spec.landing)
    # One file's bytes in memory at a time; identical bytes are parsed once.
    by_sha: dict[str, ParsedFile] = {}
    pairs = []
    for file in listed:
        data = landing.read(file)
        sha = content_sha256(data)
        pairs.append((file, sha))
        if sha not in by_sha:
            kept = cache.get(sha, file.path) if cache is not None else None
            if kept is None:
                kept = parse_file(data, file.path, spec)
                if cache is not None:
                    cache.put(kept)
            by_sha[sha] = kept
    if cache is not None:
        cache.prune()
    ordered = delivery_order(pairs, first_loaded)

    canonical: dict[str, str] = {}  # sha -> path of the first delivery with these bytes
    parsed: list[ParsedFile] = []
    loads: dict[str, FileLoad] = {}
    for file, sha in ordered:
        if sha in canonical:
            continue
        canonical[sha] = file.path
        p = by_sha[sha]
        if p.path != file.path:  # parsed under the name of a later copy
            p.frame["_source_file"] = file.path
            p.problems = [replace(problem, file=file.path) for problem in p.problems]
            p.path = file.path
        parsed.append(p)
        first, last = date_range(p.frame, spec, time_zone)
        status = "read" if p.rows else "empty"
        loads[file.path] = FileLoad(
            file.path, sha, p.size, status, p.rows, first, last, p.format, p.note
        )
    for file, sha in ordered:
        if file.path not in loads:
            original = loads[canonical[sha]]
            loads[file.path] = FileLoad(
                file.path,
                sha,
                file.size,
                "duplicate",
                original.rows,
                original.first_date,
                original.last_date,
                original.format,
                note=f"same bytes as {original.path}; not read again",
                duplicate_of=original.path,
            )

    problems = [problem for p in parsed for problem in p.problems]
    rejected = pd.DataFrame()
    if problems and strict:
        raise FileFormatError(problems)
    if problems:
        # Every problem of an unusable file, and any problem not tied to a line (each once).
        structural = [pr for p in parsed for pr in p.problems if not p.usable or pr.line is None]
        if structural:
            raise FileFormatError(structural)
        rejected = _reject_problem_rows(parsed, loads)

    frames = [p.frame for p in parsed if not p.frame.empty]
    if not frames:
        return SourceBatch(empty_frame(spec), [loads[f.path] for f in listed], rejected)
    combined = pd.concat(frames, ignore_index=True)  # earliest delivery first
    key = [k for k in spec.key if k in combined.columns]
    if key and row_problems is not None and not strict:
        combined, rejected = _reject_invalid_rows(combined, key, row_problems, rejected, loads)
    if key:
        superseded = combined.duplicated(subset=key, keep="last")
        for path, count in combined.loc[superseded, "_source_file"].value_counts().items():
            loads[str(path)].rows_superseded += int(count)
        combined = combined[~superseded].reset_index(drop=True)
    return SourceBatch(combined, [loads[f.path] for f in listed], rejected)


def _reject_invalid_rows(
    combined: pd.DataFrame,
    key: list[str],
    row_problems: Callable[[pd.DataFrame], pd.Series],
    rejected: pd.DataFrame,
    loads: dict[str, FileLoad],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Take the bad deliveries that would displace a key's last good row out of ``combined``.

    Only rows whose key is in several deliveries are judged here (a row alone with its key
    supersedes nothing and is judged, like every row, when it is written): validating
    every row of every file on each run would cost seconds on a long history.

    Of the bad rows delivered after a key's last good row, the latest is quarantined (it is
    what the sender means now) and the earlier ones are superseded by it; a bad row older
    than the good row is superseded by it, as any older delivery is. So a key never has more
    than one quarantined row here, and a later replay of it cannot load two.
    """
    contested = combined.duplicated(subset=key, keep=False).to_numpy(dtype=bool)
    if not contested.any():
        return combined, rejected
    reasons = pd.Series(None, index=combined.index, dtype=object)
    reasons[contested] = row_problems(combined[contested].reset_index(drop=True)).to_numpy()
    bad_mask = reasons.notna().to_numpy(dtype=bool)
    if not bad_mask.any():
        return combined, rejected
    group = combined.groupby(key, sort=False, dropna=False).ngroup().to_numpy()
    order = np.arange(len(combined))  # earliest delivery first
    last_good = pd.Series(np.where(bad_mask, -1, order)).groupby(group).transform("max")
    last_row = pd.Series(order).groupby(group).transform("max")
    trailing = bad_mask & (order > last_good.to_numpy())  # bad, after the last good row
    bad_mask = trailing & (order == last_row.to_numpy())  # the latest of those: quarantined
    dropped = combined.loc[trailing & ~bad_mask, "_source_file"]
    for path, count in dropped.value_counts().items():  # superseded by the quarantined row
        loads[str(path)].rows_superseded += int(count)
    keep = ~trailing
    if not bad_mask.any():
        return combined[keep].reset_index(drop=True), rejected
    bad = combined[bad_mask].copy()
    bad["_problem"] = list(reasons[bad_mask])
    bad["_file_day"] = [loads[str(f)].first_date for f in bad["_source_file"]]
    moved = pd.concat([rejected, bad], ignore_index=True) if not rejected.empty else bad
    return combined[keep].reset_index(drop=True), moved.reset_index(drop=True)


def _reject_problem_rows(parsed: list[ParsedFile], loads: dict[str, FileLoad]) -> pd.DataFrame:
    """Take the rows named by problems out of each file's frame (in place) and return them.

    They are removed before keys are deduplicated so that a row with an unreadable key can
    never supersede, or be superseded by, another row. Lines that never became a row (a
    wrong number of fields) are returned with only their file and line.
    """
    out = []
    for p in parsed:
        reasons: dict[int, list[str]] = {}
        for problem in p.problems:
            reasons.setdefault(int(problem.line), []).append(f"parse: {problem}")
        if not reasons:
            continue
        in_frame = p.frame["_source_line"].isin(list(reasons)) if not p.frame.empty else None
        bad = p.frame[in_frame] if in_frame is not None else p.frame.iloc[0:0]
        if in_frame is not None:
            p.frame = p.frame[~in_frame].reset_index(drop=True)
        missing = sorted(set(reasons) - set(bad["_source_line"].astype(int)))
        bare = pd.DataFrame({"_source_file": p.path, "_source_line": missing})
        rows = pd.concat([bad, bare], ignore_index=True) if missing else bad.copy()
        rows["_problem"] = [" | ".join(reasons[int(n)]) for n in rows["_source_line"]]
        rows["_file_day"] = loads[p.path].first_date
        out.append(rows)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()
