"""Problems found while importing files: each names the file, line and column and says why.

A bad row or file is reported and skipped, and the import goes on; in strict mode the first problem stops it.

>>> report = ProblemReport()
>>> report.add("logs.csv", 7, 3, "column 'Date': not a date: 'yesterday'")
>>> print(report.problems[0])
logs.csv:7:3: column 'Date': not a date: 'yesterday'
>>> ProblemReport(strict=True).add("a.wav", None, None, "not a WAV file")
Traceback (most recent call last):
...
fusewatch.core.errors.ImportProblemError: a.wav: not a WAV file (--strict: the import stops at the first...
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from connectors.ingest.files.timing import NameMatch, NamePattern
from fusewatch.core.errors import ImportProblemError

__all__ = ["ImportProblemError", "Problem", "ProblemReport", "match_name"]


@dataclass(frozen=True)
class Problem:
    """One problem: ``file:line:column: reason`` (line and column 1-based; ``None`` where they do not apply)."""

    file: str
    line: int | None
    column: int | None
    reason: str

    def __str__(self) -> str:
        where = self.file + "".join(f":{number}" for number in (self.line, self.column) if number is not None)
        return f"{where}: {self.reason}"


@dataclass
class ProblemReport:
    """The problems of one import; ``strict`` raises :class:`ImportProblemError` at the first one.

    Only the first ``keep`` problems are held in memory (a file of a million bad rows stays bounded); ``count``
    counts them all.
    """

    strict: bool = False
    keep: int = 10_000
    problems: list[Problem] = field(default_factory=list)
    count: int = 0

    def add(self, file: str | Path, line: int | None, column: int | None, reason: str) -> None:
        problem = Problem(str(file), line, column, reason)
        if self.strict:
            raise ImportProblemError(f"{problem} (--strict: the import stops at the first problem)")
        self.count += 1
        if len(self.problems) < self.keep:
            self.problems.append(problem)

    def __iter__(self) -> Iterator[Problem]:
        return iter(self.problems)

    def lines(self) -> list[str]:
        """Every kept problem as a line, and how many more were not kept."""
        lines = [str(problem) for problem in self.problems]
        if self.count > len(self.problems):
            lines.append(f"... and {self.count - len(self.problems)} more")
        return lines


def match_name(pattern: NamePattern | None, path: Path, report: ProblemReport) -> NameMatch | Literal[False] | None:
    """The fields and time ``pattern`` reads from ``path``'s name; ``None`` without a pattern; ``False`` (reported)
    when the name does not match or names an impossible date."""
    if pattern is None:
        return None
    try:
        found = pattern.match(path.name)
    except ValueError as exc:
        report.add(path, None, None, f"file name: impossible date ({exc})")
        return False
    if found is None:
        report.add(path, None, None, f"file name does not match --time-pattern {pattern.pattern!r}")
        return False
    return found
