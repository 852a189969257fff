"""Default output: `path:line:col: CODE message` per finding, then the summary."""

from __future__ import annotations

from internvl_data.checks.findings import Report
from internvl_data.validator.report import summary_line


def render(report: Report) -> str:
    out = [f"{f.path}:{f.line}:{f.col}: {f.code} {f.message}" for f in report.findings]
    if report.suppressed:
        left = ", ".join(f"{code} x{n}" for code, n in sorted(report.suppressed.items()))
        out.append(f"Not shown (--max-per-rule): {left}")
    out.append(summary_line(report))
    return "\n".join(out) + "\n"
