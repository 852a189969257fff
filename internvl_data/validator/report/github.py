"""`--format github`: GitHub Actions workflow commands (annotations on the pull request diff)."""

from __future__ import annotations

from internvl_data.checks.findings import Report, Severity
from internvl_data.validator.report import summary_line

_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def _data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(s: str) -> str:
    return _data(s).replace(":", "%3A").replace(",", "%2C")


def render(report: Report) -> str:
    out = []
    for f in report.findings:
        where = [f"file={_prop(f.path)}"]
        if f.line:
            where.append(f"line={f.line}")
        if f.col:
            where.append(f"col={f.col}")
        out.append(f"::{_LEVEL[f.severity]} {','.join(where)},title={f.code}::{_data(f.message)}")
    out.append(summary_line(report))
    return "\n".join(out) + "\n"
