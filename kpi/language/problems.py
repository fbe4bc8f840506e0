"""The one located-problem type of the definitions, and the error that lists them all."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the definitions, with where it is."""

    file: str
    line: int | None
    message: str
    kpi_id: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        who = f" [{self.kpi_id}]" if self.kpi_id else ""
        return f"{where}{who}: {self.message}"


class DefinitionError(ValueError):
    """The definitions have problems; ``problems`` lists every one of them."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the KPI definitions:\n{lines}")
