"""Importing Great Expectations without the warehouse clients it never gets here, and
without running the statistics and charting libraries it imports for what we never use.

GX imports, when it is imported, the SQLAlchemy dialect and client library of every SQL
warehouse it can validate in, wherever they are installed (``great_expectations.
compatibility``: BigQuery's, Snowflake's, Google Cloud's). We hand it pandas frames only,
and this project installs those libraries for its own warehouse connections, so GX paid
~0.2 s of each daily run importing them for nothing. While GX is imported they read as not
installed, which GX handles as for any optional dependency; a library some module already
imported stays as it is, the hiding applies to the importing thread only, and afterwards
they import as usual (a failed import leaves nothing in ``sys.modules``).

What GX then does not do: register its own rendering of ``Double`` for BigQuery (its
``compatibility.bigquery`` does when ``sqlalchemy_bigquery`` imports). The warehouse code
does not rely on it: sqlalchemy-bigquery renders ``Double`` as ``FLOAT64`` itself.

GX's core expectations module imports every core expectation, and the KL divergence one
imports ``scipy.stats`` and ``altair`` at its top: ~0.5 s of the ~1.5 s import on the
benchmark machine (0.75 s of 2.0 s on a slower hour), for an expectation no suite of ours
can declare. While GX is imported, those two are made as lazy modules
(``importlib.util.LazyLoader``): each runs its code when one of its attributes is first
read, by GX or anyone else, so nothing changes but when the cost is paid. Validating
reads neither: the quality tests, every expectation type we declare, ran in one process
without loading them (tests/quality/test_gx_import.py checks six types in a fresh one).
On Python 3.11 the first read of a lazy module is not safe from two threads at once; the
pipeline reads neither, and Dagster runs a step's code in one thread.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Top-level names; their submodules are hidden too.
NOT_FOR_GX = ("sqlalchemy_bigquery", "snowflake", "google.cloud")
# Modules GX imports for expectations and renderers this project never uses (the KL
# divergence expectation imports both at the top of its module): loaded on first use.
DEFERRED_FOR_GX = ("scipy.stats", "altair")


class _Hidden(importlib.abc.MetaPathFinder):
    def __init__(self, names: tuple[str, ...], thread: int) -> None:
        self.names, self.thread = names, thread

    def find_spec(self, fullname, path, target=None):
        if threading.get_ident() != self.thread:
            return None
        if any(fullname == n or fullname.startswith(n + ".") for n in self.names):
            raise ModuleNotFoundError(f"{fullname} is not imported for Great Expectations")
        return None


@contextmanager
def hidden(names: tuple[str, ...] = NOT_FOR_GX) -> Iterator[None]:
    """Within the block, importing ``names`` (not already imported) fails in this thread."""
    with _first_finder(_Hidden(names, threading.get_ident())):
        yield


class _Deferred(importlib.abc.MetaPathFinder):
    """Finds ``names`` with the finders after it, and has their loader run on first use."""

    def __init__(self, names: tuple[str, ...], thread: int) -> None:
        self.names, self.thread, self.finding = names, thread, False

    def find_spec(self, fullname, path, target=None):
        if fullname not in self.names or self.finding or threading.get_ident() != self.thread:
            return None
        self.finding = True  # the finders below may look for it again: not through here
        try:
            spec = next(
                (
                    found
                    for finder in sys.meta_path
                    if finder is not self and hasattr(finder, "find_spec")
                    if (found := finder.find_spec(fullname, path, target)) is not None
                ),
                None,
            )
        finally:
            self.finding = False
        if spec is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


@contextmanager
def deferred(names: tuple[str, ...] = DEFERRED_FOR_GX) -> Iterator[None]:
    """Within the block, importing ``names`` (exact module names, not yet imported) in this
    thread makes a module that runs its code when an attribute of it is first read
    (``importlib.util.LazyLoader``): an import that is never used costs nothing."""
    with _first_finder(_Deferred(names, threading.get_ident())):
        yield


@contextmanager
def _first_finder(finder: importlib.abc.MetaPathFinder) -> Iterator[None]:
    """``finder`` asked before every other for the duration of the block."""
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
