"""`--format json`: one stable document. Field names are a public contract: changing them is a breaking change."""

from __future__ import annotations

import orjson

from internvl_data.checks.findings import Finding, Report, Severity
from internvl_data.version import __version__


def finding_dict(f: Finding, names: dict[str, str]) -> dict:
    return {
        "code": f.code,
        "name": names.get(f.code, ""),
        "severity": f.severity.value,
        "message": f.message,
        "filename": f.path,
        "location": {"row": f.line, "column": f.col},
        "json_path": f.json_path,
        "dataset": f.dataset,
        "hint": f.hint,
    }


def render(report: Report) -> str:
    from internvl_data.checks.registry import all_rules

    names = {code: r.name for code, r in all_rules().items()}
    counts = report.counts()
    doc = {
        "tool": "ivl-data",
        "version": __version__,
        "findings": [finding_dict(f, names) for f in report.findings],
        "summary": {
            "problems": sum(counts.values()),
            "errors": counts[Severity.ERROR],
            "warnings": counts[Severity.WARNING],
            "info": counts[Severity.INFO],
            "suppressed": dict(sorted(report.suppressed.items())),
            "files": report.files,
            "records": report.records,
            "datasets": report.datasets,
            "seconds": round(report.seconds, 3),
        },
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
