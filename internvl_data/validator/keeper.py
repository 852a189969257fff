"""--select/--ignore and --max-per-rule over findings (used per block by the worker and per run by the driver)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from internvl_data.checks.catalogue import selected
from internvl_data.checks.findings import Finding, Report, Severity
from internvl_data.validator.options import ValidateOptions


class Keeper:
    """--select/--ignore and --max-per-rule: keeps the first N findings of each code, counts the rest."""

    def __init__(self, opts: ValidateOptions) -> None:
        self.select, self.ignore, self.cap = opts.select, opts.ignore, opts.max_per_rule
        self.kept: list[Finding] = []
        self.seen: dict[str, int] = {}
        self.suppressed: dict[tuple[str, str], int] = {}  # (code, severity value) -> findings left out
        self._ok: dict[str, bool] = {}

    def wants(self, code: str) -> bool:
        ok = self._ok.get(code)
        if ok is None:
            ok = self._ok[code] = selected(code, self.select, self.ignore)
        return ok

    def add(self, findings: Iterable[Finding]) -> None:
        for f in findings:
            if not self.wants(f.code):
                continue
            n = self.seen[f.code] = self.seen.get(f.code, 0) + 1
            if self.cap is None or n <= self.cap:
                self.kept.append(f)
            else:
                key = (f.code, f.severity.value)
                self.suppressed[key] = self.suppressed.get(key, 0) + 1

    def count(self, suppressed: dict[tuple[str, str], int]) -> None:
        for key, n in suppressed.items():
            code = key[0]
            if self.wants(code):
                self.seen[code] = self.seen.get(code, 0) + n
                self.suppressed[key] = self.suppressed.get(key, 0) + n

    def report(self, findings: list[Finding], strict: bool = False, **fields: Any) -> Report:
        """A :class:`Report` of ``findings`` with what was left out, per code and per severity (``strict``:
        warnings count as errors)."""
        by_code: dict[str, int] = {}
        by_severity: dict[Severity, int] = {}
        for (code, sev), n in self.suppressed.items():
            by_code[code] = by_code.get(code, 0) + n
            level = Severity.ERROR if strict and sev == Severity.WARNING.value else Severity(sev)
            by_severity[level] = by_severity.get(level, 0) + n
        return Report(findings, by_code, left_out=by_severity, **fields)
