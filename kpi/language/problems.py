"""The one located-problem type (definitions, quality suites, GA4 reports files), and the
error that lists every problem of the definitions at once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a YAML file we read, with where it is: ``subject`` is what the
    problem is about (a KPI id, a GA4 report's name), shown in brackets."""

    file: str
    line: int | None
    message: str
    subject: str | None = None

    @property
    def kpi_id(self) -> str | None:
        """The KPI a definition problem is about (``subject`` by its name in the rules)."""
        return self.subject

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        who = f" [{self.subject}]" if self.subject else ""
        return f"{where}{who}: {self.message}"


class DefinitionError(ValueError):
    """The definitions have problems; ``problems`` lists every one of them."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the KPI definitions:\n{lines}")
