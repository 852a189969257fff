"""`--format sarif`: SARIF 2.1.0 (code scanning), with every rule and its help text."""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import quote

import orjson

from internvl_data.checks.findings import Finding, Report, Severity
from internvl_data.version import __version__

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def _uri(path: str) -> str:
    """A URI reference for a finding's path: relative paths stay relative (code scanning resolves them against
    the checkout), absolute ones become ``file://`` URIs; spaces and other reserved characters are escaped."""
    if PurePosixPath(path).is_absolute():
        return "file://" + quote(path)
    return quote(path)


def _result(f: Finding, index: dict[str, int]) -> dict:
    loc: dict = {"artifactLocation": {"uri": _uri(f.path)}}
    if f.line:
        loc["region"] = {"startLine": f.line, **({"startColumn": f.col} if f.col else {})}
    res: dict = {
        "ruleId": f.code,
        "level": _LEVEL[f.severity],
        "message": {"text": f.message},
        "locations": [{"physicalLocation": loc}],
    }
    if f.code in index:
        res["ruleIndex"] = index[f.code]
    if f.json_path:
        res["properties"] = {"json_path": f.json_path}
    return res


def render(report: Report) -> str:
    from internvl_data.checks.registry import all_rules

    rules = list(all_rules().values())
    index = {r.code: i for i, r in enumerate(rules)}
    driver = {
        "name": "ivl-data",
        "version": __version__,
        "rules": [
            {
                "id": r.code,
                "name": r.name,
                "shortDescription": {"text": r.summary},
                "fullDescription": {"text": r.why},
                "help": {"text": f"{r.summary}\nWhy: {r.why}\nExample: {r.example}\nFix: {r.fix}"},
                "defaultConfiguration": {"level": _LEVEL[r.severity]},
            }
            for r in rules
        ],
    }
    doc = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{"tool": {"driver": driver}, "results": [_result(f, index) for f in report.findings]}],
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
