"""A landing file's problems: one value, line or file that does not match its declaration."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_ERRORS_SHOWN = 20
_MAX_VALUE_SHOWN = 200


@dataclass(frozen=True)
class RowProblem:
    """One value, line or file that does not match the source's declaration.

    ``line`` is the physical line of a CSV file (1 = the header) or the 1-based row of a
    Parquet file; None when the problem is the whole file. ``field`` is None when the
    problem is the whole line (a wrong number of fields). A later quarantine can route the
    rows named here instead of failing the load.
    """

    file: str
    line: int | None
    field: str | None
    value: str | None
    expected: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        what = []
        if self.field is not None:
            what.append(f"field `{self.field}`")
        if self.value is not None:
            shown = self.value
            if len(shown) > _MAX_VALUE_SHOWN:
                shown = shown[:_MAX_VALUE_SHOWN] + "..."
            what.append(f"value {shown!r}")
        detail = f" {' '.join(what)}:" if what else ""
        return f"{where}:{detail} expected {self.expected}"


class FileFormatError(ValueError):
    """Files that do not match their declared schema; ``problems`` lists every one."""

    def __init__(self, problems: Sequence[RowProblem]):
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:MAX_ERRORS_SHOWN])
        more = len(self.problems) - MAX_ERRORS_SHOWN
        tail = f"\n  ... and {more} more" if more > 0 else ""
        files = sorted({p.file for p in self.problems})
        super().__init__(
            f"{len(self.problems)} problem(s) in {len(files)} landing file(s); the load "
            f"stopped and wrote nothing:\n{shown}{tail}"
        )
