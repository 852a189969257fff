"""Default output: `path:line:col: CODE message` per finding (1-based), the count per code, then the summary."""

from __future__ import annotations

from collections import Counter

from internvl_data.checks.findings import Report
from internvl_data.validator.report import summary_line


def render(report: Report) -> str:
    # 1-based as in ruff: a finding about a whole file or line (stored as 0) points at its first line / column
    out = [f"{f.path}:{f.line or 1}:{f.col or 1}: {f.code} {f.message}" for f in report.findings]
    if report.suppressed:
        left = ", ".join(f"{code} x{n}" for code, n in sorted(report.suppressed.items()))
        out.append(f"Not shown (--max-per-rule): {left}")
    if report.findings or report.suppressed:
        out.append("By code: " + by_code(report))
    out.append(summary_line(report))
    return "\n".join(out) + "\n"


def by_code(report: Report) -> str:
    """``IVL301 x 1,204, IVL214 x 3``: every code's findings (shown and not shown), most frequent first, so a
    million findings read as one line."""
    counts = Counter(f.code for f in report.findings)
    counts.update(report.suppressed)
    return ", ".join(f"{code} x {n:,}" for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
