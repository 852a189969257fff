"""Findings are data: every check yields them, only a reporter prints them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


# Each registered rule's default severity, filled by :func:`internvl_data.checks.catalogue.rule` (kept here so that
# this module imports nothing from the catalogue, which builds Findings).
DEFAULT_SEVERITY: dict[str, Severity] = {}


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
    """The outcome of one validation run.

    ``suppressed`` counts the findings left out by --max-per-rule per code (what reporters list); ``left_out``
    counts the same findings per severity (a code can have findings of several severities). A report built by
    hand without ``left_out`` counts each code at its rule's default severity.
    """

    findings: list[Finding] = field(default_factory=list)
    suppressed: dict[str, int] = field(default_factory=dict)  # code -> findings left out by --max-per-rule
    files: int = 0
    records: int = 0
    seconds: float = 0.0
    datasets: list[str] = field(default_factory=list)
    left_out: dict[Severity, int] | None = None  # severity -> findings left out by --max-per-rule
    unreadable: bool = False  # an input could not be opened at all: nothing was checked (exit 2)

    def __post_init__(self) -> None:
        if self.left_out is None:
            self.left_out = {}
            if self.suppressed:
                for code, n in self.suppressed.items():
                    sev = DEFAULT_SEVERITY.get(code, Severity.ERROR)
                    self.left_out[sev] = self.left_out.get(sev, 0) + n

    def counts(self) -> dict[Severity, int]:
        """Findings per severity, those left out by --max-per-rule included."""
        out = {s: 0 for s in Severity}
        for f in self.findings:
            out[f.severity] += 1
        for sev, n in (self.left_out or {}).items():
            out[sev] += n
        return out

    def count(self, severity: Severity) -> int:
        return self.counts()[severity]

    @property
    def errors(self) -> int:
        return self.count(Severity.ERROR)

    @property
    def warnings(self) -> int:
        return self.count(Severity.WARNING)

    @property
    def ok(self) -> bool:
        return self.errors == 0
