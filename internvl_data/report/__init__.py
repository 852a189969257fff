"""Reporters: a :class:`~internvl_data.findings.Report` in, one string out. Only reporters format output."""

from __future__ import annotations

from typing import Callable

from ..findings import Report, Severity


def _load(name: str) -> Callable[[Report], str]:
    from importlib import import_module

    return import_module(f"{__name__}.{name}").render


REPORTERS = ("text", "json", "github", "sarif")


def render(report: Report, fmt: str = "text") -> str:
    """The whole output of one run in format ``fmt`` (one of :data:`REPORTERS`)."""
    if fmt not in REPORTERS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(REPORTERS)}")
    return _load(fmt)(report)


def severity_counts(report: Report) -> dict[Severity, int]:
    """Findings per severity, including those left out by --max-per-rule (counted at their code's severity)."""
    counts = {s: 0 for s in Severity}
    first: dict[str, Severity] = {}
    for f in report.findings:
        counts[f.severity] += 1
        first.setdefault(f.code, f.severity)
    for code, n in report.suppressed.items():
        counts[first.get(code) or _default_severity(code)] += n
    return counts


def _default_severity(code: str) -> Severity:
    from .. import rules

    r = rules.all_rules().get(code)
    return r.severity if r else Severity.ERROR


def summary_line(report: Report) -> str:
    """`Found N problems (E errors, W warnings, I info) in F files, R records, in S s.`"""
    c = severity_counts(report)
    total = sum(c.values())
    files = f"{report.files} file" + ("" if report.files == 1 else "s")
    return (
        f"Found {total} problem{'' if total == 1 else 's'} ({c[Severity.ERROR]} errors, "
        f"{c[Severity.WARNING]} warnings, {c[Severity.INFO]} info) in {files}, "
        f"{report.records} records, in {report.seconds:.2f}s."
    )
