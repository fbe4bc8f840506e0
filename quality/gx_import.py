"""Importing Great Expectations without the warehouse clients it never gets here.

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
"""

from __future__ import annotations

import importlib.abc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Top-level names; their submodules are hidden too.
NOT_FOR_GX = ("sqlalchemy_bigquery", "snowflake", "google.cloud")


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
    finder = _Hidden(names, threading.get_ident())
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
