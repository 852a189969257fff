"""Walk fixtures/invalid/<case>/: each case produces exactly its declared (code, file, line) findings and exit.

Runs ``ivl-data validate`` (internvl_data.cli.dispatch.main) on each case's meta.json.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CASES = sorted(p for p in (ROOT / "fixtures" / "invalid").iterdir() if (p / "expected.json").is_file())
OWN_FAMILIES = ("IVL0", "IVL1", "IVL2")


def run_cli(meta: Path, args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[list[dict], int]:
    from internvl_data.cli.dispatch import main

    code = main(["validate", str(meta), "--no-manifest", "--format", "json", *args])
    out = capsys.readouterr().out
    doc = json.loads(out) if out.strip() else {"findings": []}
    return doc["findings"], code


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_invalid_fixture(case: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Exactly the declared findings, each at its declared severity (the rule's default or one of its declared
    cases: see internvl_data.checks.catalogue), and the declared exit code."""
    from internvl_data.checks.registry import all_rules

    rules = all_rules()
    expected = json.loads((case / "expected.json").read_text())
    want = {(f["code"], f["file"], f["line"], f["severity"]) for f in expected["findings"]}
    assert want, "a case must declare at least one finding"
    for code, _file, _line, severity in want:
        assert severity in {s.value for s in rules[code].severities}, (code, severity)
    meta = case / "meta.json"
    findings, code = run_cli(meta, expected["args"], capsys)
    got = {(f["code"], os.path.relpath(f["filename"], case), f["location"]["row"], f["severity"]) for f in findings}
    assert got == want
    assert code == expected["exit"]


def test_every_contract_rule_has_a_case() -> None:
    from internvl_data.checks.registry import all_rules

    declared = {f["code"] for c in CASES for f in json.loads((c / "expected.json").read_text())["findings"]}
    own = {code for code in all_rules() if code.startswith(OWN_FAMILIES)}
    assert own - declared == set()
