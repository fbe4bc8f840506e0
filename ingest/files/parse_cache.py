"""Parsed landing files kept between runs, by content.

Why: a run reads every landing file of a source again, whatever its window (a later
delivery of a key supersedes an earlier one, strays and arrival days need every file), and
parsing them was what grew with history: on the 425-day demo, 0.86 s of a daily run went to
parsing the files of 8 sources, nearly all of them the same bytes as the run before. A
file's parse depends on its bytes, its format (``.parquet`` or text), the source's
declaration and the parser's code only, so it is kept under a digest of the four: a
changed file, a changed declaration or an upgraded parser parse again. What a run does with
the parsed rows (supersession, value rules, the window) is not kept.

The folder holds pickles, which Python runs as it loads them: it must be writable by the
pipeline alone, as its code is (Python treats its own ``__pycache__`` the same way). The
cache is an optimisation: an entry that cannot be read is parsed again, and a folder that
cannot be written leaves every file parsed as before.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import tempfile
import time
import uuid
from enum import Enum
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from ingest.files.parsing import ParsedFile
from kpi.language.models import SourceSpec

PARSER_DIR = Path(__file__).resolve().parents[1]  # ingest/: the parser and its helpers
SUFFIX = ".parsed.pickle"
ABANDONED_AFTER_S = 3600


@functools.cache
def parser_digest() -> str:
    """A digest of the ingest code and pandas' version: a new parser parses again. Without
    its sources (a bytecode-only install) a digest of this process alone."""
    sources = sorted(PARSER_DIR.rglob("*.py"))
    if not sources:
        return uuid.uuid4().hex
    h = hashlib.sha256(pd.__version__.encode())
    for path in sources:
        h.update(str(path.relative_to(PARSER_DIR)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _every_field(value: Any) -> Any:
    """``value`` as plain data with every field of every model in it, including those kept
    out of dumps (``Field(exclude=True)``): a column's ``allowed`` values and ``min`` and
    ``max`` decide which of a file's values parse, so a changed rule must parse again."""
    if isinstance(value, BaseModel):
        return {name: _every_field(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, dict):
        return {str(k): _every_field(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_every_field(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(str(v) for v in value)
    if isinstance(value, Enum):
        return value.value
    return value


class ParseCache:
    """The parsed files of one source, under ``folder/<source>/``."""

    def __init__(self, folder: str | os.PathLike[str], source: str, spec: SourceSpec):
        self.folder = Path(folder) / source
        declared = json.dumps(_every_field(spec), sort_keys=True, default=str)
        self._context = f"{parser_digest()}:{hashlib.sha256(declared.encode()).hexdigest()}"
        self._used: set[Path] = set()
        self.hits = 0

    def _entry(self, sha256: str, path: str) -> Path:
        kind = "parquet" if path.lower().endswith(".parquet") else "text"
        key = hashlib.sha256(f"{self._context}:{kind}:{sha256}".encode()).hexdigest()
        return self.folder / f"{key}{SUFFIX}"

    def get(self, sha256: str, path: str) -> ParsedFile | None:
        """The parse of the file with these bytes, if kept; None otherwise."""
        entry = self._entry(sha256, path)
        self._used.add(entry)
        try:
            with entry.open("rb") as f:
                parsed = pickle.load(f)
        # Missing, or unreadable (truncated, from another Python): parsed again, rewritten.
        except Exception:
            return None
        if not isinstance(parsed, ParsedFile) or parsed.sha256 != sha256:
            return None
        self.hits += 1
        return parsed

    def put(self, parsed: ParsedFile) -> None:
        """Keep ``parsed`` (before the caller changes it). A folder that cannot be written
        keeps nothing: the run goes on, parsing as before."""
        entry = self._entry(parsed.sha256, parsed.path)
        self._used.add(entry)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            # Written whole, then renamed: a reader never sees half an entry.
            with tempfile.NamedTemporaryFile(dir=self.folder, delete=False) as f:
                try:
                    pickle.dump(parsed, f, protocol=pickle.HIGHEST_PROTOCOL)
                except Exception:
                    f.close()
                    os.unlink(f.name)
                    raise
            os.replace(f.name, entry)
        except Exception:  # unwritable folder, unpicklable value: the run goes on without it
            return

    def prune(self) -> None:
        """Drop the entries of files this read did not see (changed or gone): the folder
        holds the current files' parses only."""
        try:
            stale = [p for p in self.folder.glob(f"*{SUFFIX}") if p not in self._used]
            # The temporary file of a writer killed before its rename; an hour old, so that
            # a concurrent writer's file is left alone.
            stale += [
                p
                for p in self.folder.glob("tmp*")
                if time.time() - p.stat().st_mtime > ABANDONED_AFTER_S
            ]
            for path in stale:
                path.unlink(missing_ok=True)
        except OSError:
            return
