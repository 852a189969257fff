"""Reporters: a :class:`~internvl_data.checks.findings.Report` in, one string out. Only reporters format output."""

from __future__ import annotations

from collections.abc import Callable

from internvl_data.checks.findings import Report, Severity
from internvl_data.validator.options import FORMATS


def _load(name: str) -> Callable[[Report], str]:
    from importlib import import_module

    return import_module(f"{__name__}.{name}").render


def render(report: Report, fmt: str = "text") -> str:
    """The whole output of one run in format ``fmt`` (one of :data:`..options.FORMATS`, a module each)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return _load(fmt)(report)


def _n(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 or word == "info" else "s")


def summary_line(report: Report) -> str:
    """`Found N problems (E errors, W warnings, I info) in F files, R records, in S s.`"""
    c = report.counts()
    return (
        f"Found {_n(sum(c.values()), 'problem')} ({_n(c[Severity.ERROR], 'error')}, "
        f"{_n(c[Severity.WARNING], 'warning')}, {_n(c[Severity.INFO], 'info')}) in {_n(report.files, 'file')}, "
        f"{_n(report.records, 'record')}, in {report.seconds:.2f}s."
    )
