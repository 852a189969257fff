"""Findings are data: every check yields them, only a reporter prints them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem at one place.

    ``path`` is the file the problem is in (meta file, annotation JSONL or media file as the user wrote it
    resolved against the meta file's folder); ``line`` and ``col`` are 1-based (0 when the problem concerns
    the whole file); ``json_path`` locates the value inside the record (``$.conversations[2].from``).
    """

    code: str
    severity: Severity
    path: str
    line: int
    col: int
    message: str
    json_path: str = ""
    hint: str = ""
    dataset: str = ""

    def sort_key(self) -> tuple:
        return (self.path, self.line, self.col, self.code)


@dataclass(slots=True)
class Report:
    """The outcome of one validation run."""

    findings: list[Finding] = field(default_factory=list)
    suppressed: dict[str, int] = field(default_factory=dict)  # code -> findings left out by --max-per-rule
    files: int = 0
    records: int = 0
    seconds: float = 0.0
    datasets: list[str] = field(default_factory=list)

    def count(self, severity: Severity) -> int:
        n = sum(1 for f in self.findings if f.severity is severity)
        return n

    @property
    def errors(self) -> int:
        return self.count(Severity.ERROR)

    @property
    def warnings(self) -> int:
        return self.count(Severity.WARNING)

    @property
    def ok(self) -> bool:
        return self.errors == 0
