"""Reporters: the exact text, JSON, GitHub and SARIF shapes of one hand-built report."""

from __future__ import annotations

import json

from internvl_data.checks.findings import Finding, Report, Severity
from internvl_data.checks.registry import all_rules
from internvl_data.validator.report import render

ERR = Finding(
    "IVL001",
    Severity.ERROR,
    "data/a.jsonl",
    3,
    7,
    "invalid JSON: Expecting value at column 7",
    hint="Fix the JSON.",
    dataset="a",
)
WARN = Finding(
    "IVL214", Severity.WARNING, "data/a, b.jsonl", 9, 0, "no <image>: 50% of\nlines", "$.conversations[0]", dataset="b"
)
META = Finding("IVL113", Severity.INFO, "meta.json", 0, 0, "no 'length' (line count)")


def report() -> Report:
    return Report([ERR, WARN, META], {"IVL214": 4}, files=2, records=120, seconds=1.5, datasets=["a", "b"])


def test_text() -> None:
    assert render(report(), "text") == (
        "data/a.jsonl:3:7: IVL001 invalid JSON: Expecting value at column 7\n"
        "data/a, b.jsonl:9:1: IVL214 no <image>: 50% of\nlines\n"
        "meta.json:1:1: IVL113 no 'length' (line count)\n"
        "Not shown (--max-per-rule): IVL214 x4\n"
        "By code: IVL214 x 5, IVL001 x 1, IVL113 x 1\n"
        "Found 7 problems (1 error, 5 warnings, 1 info) in 2 files, 120 records, in 1.50s.\n"
    )


def test_text_clean_summary() -> None:
    assert render(Report(files=1, records=1, seconds=0.25), "text") == (
        "Found 0 problems (0 errors, 0 warnings, 0 info) in 1 file, 1 record, in 0.25s.\n"
    )


def test_json_is_stable() -> None:
    doc = json.loads(render(report(), "json"))
    assert list(doc) == ["tool", "version", "findings", "summary"]
    assert doc["findings"][0] == {
        "code": "IVL001",
        "name": "invalid-json",
        "severity": "error",
        "message": "invalid JSON: Expecting value at column 7",
        "filename": "data/a.jsonl",
        "location": {"row": 3, "column": 7},
        "json_path": "",
        "dataset": "a",
        "hint": "Fix the JSON.",
    }
    assert doc["findings"][1]["json_path"] == "$.conversations[0]"
    assert doc["summary"] == {
        "problems": 7,
        "errors": 1,
        "warnings": 5,
        "info": 1,
        "suppressed": {"IVL214": 4},
        "files": 2,
        "records": 120,
        "datasets": ["a", "b"],
        "seconds": 1.5,
    }


def test_github_annotations_escape_properties_and_data() -> None:
    assert render(report(), "github").splitlines() == [
        "::error file=data/a.jsonl,line=3,col=7,title=IVL001::invalid JSON: Expecting value at column 7",
        "::warning file=data/a%2C b.jsonl,line=9,title=IVL214::no <image>: 50%25 of%0Alines",
        "::notice file=meta.json,title=IVL113::no 'length' (line count)",
        "Found 7 problems (1 error, 5 warnings, 1 info) in 2 files, 120 records, in 1.50s.",
    ]


def test_sarif_2_1_0() -> None:
    doc = json.loads(render(report(), "sarif"))
    assert doc["version"] == "2.1.0" and doc["$schema"].endswith("sarif-2.1.0.json")
    (run,) = doc["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(all_rules())
    r001 = rules[run["results"][0]["ruleIndex"]]
    assert r001["id"] == "IVL001" and r001["name"] == "invalid-json"
    assert r001["defaultConfiguration"] == {"level": "error"}
    assert r001["help"]["text"].startswith("The line is not valid JSON.\nWhy: ") and "\nFix: " in r001["help"]["text"]
    assert run["results"][0] == {
        "ruleId": "IVL001",
        "level": "error",
        "message": {"text": "invalid JSON: Expecting value at column 7"},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": "data/a.jsonl"},
                    "region": {"startLine": 3, "startColumn": 7},
                }
            }
        ],
        "ruleIndex": list(all_rules()).index("IVL001"),
    }
    assert run["results"][1]["level"] == "warning" and run["results"][1]["properties"] == {
        "json_path": "$.conversations[0]"
    }
    assert run["results"][1]["locations"][0]["physicalLocation"]["region"] == {"startLine": 9}
    assert (
        run["results"][2]["level"] == "note" and "region" not in run["results"][2]["locations"][0]["physicalLocation"]
    )
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]]
    assert uris == ["data/a.jsonl", "data/a%2C%20b.jsonl", "meta.json"]


def test_sarif_uris_of_absolute_and_unusual_paths() -> None:
    found = [
        Finding("IVL001", Severity.ERROR, p, 1, 1, "x") for p in ("/data/my set/a#1.jsonl", "d/%.jsonl", "数据/a.jsonl")
    ]
    doc = json.loads(render(Report(found, files=3, records=3, seconds=0.1), "sarif"))
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in doc["runs"][0]["results"]]
    assert uris == ["file:///data/my%20set/a%231.jsonl", "d/%25.jsonl", "%E6%95%B0%E6%8D%AE/a.jsonl"]


def test_rules_and_explain(run_cli) -> None:
    code, out, _ = run_cli("rules", "--format", "json")
    rows = json.loads(out)
    assert code == 0 and [r["code"] for r in rows] == list(all_rules())
    assert set(rows[0]) == {
        "code",
        "name",
        "severity",
        "summary",
        "why",
        "example",
        "fix",
        "consequence",
        "override",
        "cases",
    }
    assert (rows[0]["consequence"], rows[0]["override"], rows[0]["cases"]) == ("crash", "", [])
    code, out, _ = run_cli("rules")
    assert out.splitlines()[0].split() == ["code", "name", "severity", "summary"]
    assert out.splitlines()[1].split()[:3] == ["IVL001", "invalid-json", "error"]
    code, out, _ = run_cli("explain", "ivl001")
    assert code == 0 and out.splitlines()[0] == "IVL001 invalid-json (error)"
    assert [ln for ln in out.splitlines() if ln and not ln.startswith(" ")][1:] == [
        "What it does",
        "Why is this bad?",
        "Severity: error by default, because the official loader or trainer raises on it: the sample is dropped and "
        "replaced by a random other one, or the run stops.",
        "Example",
        "How to fix",
    ]
    assert run_cli("explain", "invalid-json")[1] == out
    code, out, err = run_cli("explain", "IVL999")
    assert code == 2 and out == "" and "Families: IVL0xx, IVL1xx, IVL2xx, IVL3xx" in err
