"""The landing folder: a local path or any fsspec URL (``memory://``, ``file://``, ``s3://``).

Only listing and reading bytes happen here; what the bytes mean is ``ingest.files``. Each
declared file source has its own sub-folder. Files directly in it with a supported suffix
are the source's files; hidden files (``.name``), Office lock files (``~$name``) and other
suffixes (partial uploads such as ``.tmp``) are ignored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import posixpath
from dataclasses import dataclass
from typing import Any

import fsspec

from kpi.warehouse.dsn import location_secrets, redact_location, scrub_exception, scrub_location

SUPPORTED_SUFFIXES = (".csv", ".parquet")


class LandingUnavailable(OSError):
    """The landing root, or a declared source's folder under it, is missing or unreadable.

    Raised before anything is read or written: an unmounted share or a mistyped
    ``LANDING_ROOT`` lists no files, and loading "no files" would replace the loaded days
    with nothing.
    """


@dataclass(frozen=True)
class LandingFile:
    """One file in a source's landing folder, as listed (the bytes are not read yet)."""

    path: str  # as shown in errors and kept in ``_source_file``: the root as configured + name
    fs_path: str  # the path inside the filesystem
    size: int
    modified: float | None  # seconds since the epoch, when the filesystem tells

    @property
    def name(self) -> str:
        return posixpath.basename(self.fs_path)

    @property
    def suffix(self) -> str:
        return posixpath.splitext(self.name)[1].lower()


class Landing:
    """Listing and reading the landing folder ``root`` (a path or an fsspec URL)."""

    def __init__(self, root: str | os.PathLike[str], **storage_options: Any):
        self.root = os.fspath(root)
        # The root as shown (errors, messages, the file paths kept as lineage): an
        # object-store URL can carry credentials (``s3://key:secret@bucket``, ``?token=``).
        self.shown_root = redact_location(self.root)
        self.fs, self._base = fsspec.core.url_to_fs(self.root, **storage_options)
        self._is_url = "://" in self.root

    def require(self, folder: str | None = None) -> None:
        """Raise :class:`LandingUnavailable` unless the root (and ``folder`` under it) is a
        folder that can be listed. A source without files has an empty folder (on an object
        store, a folder holding only a hidden ``.keep`` object)."""
        self._listable(self._base, f"the landing root {self.shown_root!r} (LANDING_ROOT)")
        if folder:
            shown = self._shown(folder, "").rstrip("/\\")
            self._listable(
                self._folder(folder),
                f"the folder {shown!r} of a declared source (under the landing root "
                f"{self.shown_root!r}; create it empty when the source has no files yet)",
            )

    def _listable(self, fs_path: str, what: str) -> None:
        try:
            if not self.fs.isdir(fs_path):
                raise LandingUnavailable(f"{what} does not exist or is not a folder")
            self.fs.ls(fs_path, detail=False)
        except LandingUnavailable:
            raise
        except OSError as exc:
            self._scrub(exc)
            message = scrub_location(f"{what} cannot be listed: {exc}", self.root)
            raise LandingUnavailable(message) from exc

    def _scrub(self, error: BaseException) -> None:
        """Hide the root's credentials in ``error`` (a filesystem error may quote the URL)."""
        scrub_exception(error, location_secrets(self.root))

    def folders(self) -> list[str]:
        """The names of the sub-folders directly under the root (none when it is missing)."""
        try:
            listed = self.fs.ls(self._base, detail=True)
        except OSError:
            return []
        return sorted(
            posixpath.basename(info["name"].rstrip("/"))
            for info in listed
            if info.get("type") == "directory"
        )

    def _folder(self, folder: str) -> str:
        return posixpath.join(self._base.rstrip("/") or "/", folder)

    def files(self, folder: str | None) -> list[LandingFile]:
        """The supported files directly in ``folder`` (under the root), sorted by name."""
        if not folder:
            return []
        fs_folder = self._folder(folder)
        try:
            if not self.fs.isdir(fs_folder):
                return []
            listed = self.fs.ls(fs_folder, detail=True)
        except OSError as exc:
            self._scrub(exc)
            raise
        out = []
        for info in listed:
            if info.get("type") != "file":
                continue
            name = posixpath.basename(info["name"].rstrip("/"))
            if name.startswith((".", "~$")) or not name.lower().endswith(SUPPORTED_SUFFIXES):
                continue
            out.append(
                LandingFile(
                    path=self._shown(folder, name),
                    fs_path=info["name"],
                    size=int(info.get("size") or 0),
                    modified=_modified(info),
                )
            )
        return sorted(out, key=lambda f: f.name)

    def read(self, file: LandingFile) -> bytes:
        """The bytes of ``file``."""
        try:
            return self.fs.cat_file(file.fs_path)
        except OSError as exc:
            self._scrub(exc)
            raise

    def _shown(self, folder: str, name: str) -> str:
        # Keep the root as the user configured it (relative paths stay relative), so the
        # lineage column reads like the settings and stays the same from run to run.
        if self._is_url:
            return f"{self.shown_root.rstrip('/')}/{folder}/{name}"
        return os.path.join(self.root, folder, name)


def content_sha256(data: bytes) -> str:
    """The hex SHA-256 of a file's bytes: its identity, whatever its name."""
    return hashlib.sha256(data).hexdigest()


def _modified(info: dict[str, Any]) -> float | None:
    """The modification time in an fsspec ``info`` dict; each filesystem names it its own way."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, dt.datetime):
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
        try:
            return dt.datetime.fromisoformat(str(value)).timestamp()
        except ValueError:
            continue
    return None
