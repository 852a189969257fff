"""Walk fixtures/invalid/<case>/: each case produces exactly its declared (code, file, line) findings and exit.

Runs ``ivl-data validate`` (internvl_data.cli.main) when the engine's command exists; otherwise a local loop
over the contract functions (meta -> lines -> records), which only covers the IVL0xx-IVL2xx cases.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from internvl_data.checks_lines import LineCtx, check_line
from internvl_data.checks_meta import check_declared_length
from internvl_data.checks_records import IdTracker, check_record
from internvl_data.findings import Finding, Severity
from internvl_data.lines import iter_lines
from internvl_data.meta import load_meta

ROOT = Path(__file__).resolve().parents[2]
CASES = sorted(p for p in (ROOT / "fixtures" / "invalid").iterdir() if (p / "expected.json").is_file())
HAS_CLI = importlib.util.find_spec("internvl_data.cli_validate") is not None
OWN_FAMILIES = ("IVL0", "IVL1", "IVL2")


def run_local(meta: Path, args: list[str]) -> tuple[list[Finding], int]:
    """What validate does with the contract functions alone (no media, no tokens)."""
    long_line = int(args[args.index("--long-line") + 1]) if "--long-line" in args else 1 << 20
    result = load_meta(str(meta))
    found = list(result.findings)
    for e in result.entries:
        if not os.path.isfile(e.annotation_path):
            continue
        ctx = LineCtx(e.annotation_path, dataset=e.name, entry=e, long_line=long_line)
        ids, count = IdTracker(), 0
        for lineno, _, raw in iter_lines(e.annotation_path):
            count, ctx.line = lineno, lineno
            obj, fs = check_line(raw, ctx)
            found += fs
            if obj is not None:
                found += check_record(obj, ctx)
                dup = ids.add(obj.get("id"), ctx)
                found += [dup] if dup else []
        found += check_declared_length(e, count)
    if any(f.code == "IVL101" for f in found):
        return found, 2
    return found, int(any(f.severity is Severity.ERROR for f in found))


def run_cli(meta: Path, args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[list[dict], int]:
    from internvl_data.cli import main

    code = main(["validate", str(meta), "--no-manifest", "--format", "json", *args])
    out = capsys.readouterr().out
    doc = json.loads(out) if out.strip() else {"findings": []}
    return doc["findings"], code


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_invalid_fixture(case: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = json.loads((case / "expected.json").read_text())
    want = {(f["code"], f["file"], f["line"]) for f in expected["findings"]}
    assert want, "a case must declare at least one finding"
    meta = case / "meta.json"
    if HAS_CLI:
        findings, code = run_cli(meta, expected["args"], capsys)
        got = {(f["code"], os.path.relpath(f["filename"], case), f["location"]["row"]) for f in findings}
    else:
        if not all(c.startswith(OWN_FAMILIES) for c, _, _ in want):
            pytest.skip("needs `ivl-data validate` (media rules)")
        local, code = run_local(meta, expected["args"])
        got = {(f.code, os.path.relpath(f.path, case), f.line) for f in local}
    assert got == want
    assert code == expected["exit"]


def test_every_contract_rule_has_a_case() -> None:
    from internvl_data.rules import all_rules

    declared = {f["code"] for c in CASES for f in json.loads((c / "expected.json").read_text())["findings"]}
    own = {code for code in all_rules() if code.startswith(OWN_FAMILIES)}
    assert own - declared == set()
