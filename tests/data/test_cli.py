"""`ivl-data validate`: exit codes, select/ignore, max-per-rule, strict, --jsonl, --output, parallel blocks."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from internvl_data.validator import cache, manifest
from tests.helpers.records import clean, turn, write_jsonl

engine = importlib.import_module("internvl_data.validator.driver")
scan = importlib.import_module("internvl_data.validator.worker")
NO_IMAGE = {"id": "w", "image": "a.jpg", "conversations": [turn("human", "What is it?"), turn("gpt", "A cat.")]}


def test_clean_dataset_exits_0_with_summary(make_meta, run_cli) -> None:
    meta = make_meta(d=[clean(1), clean(2)])
    code, out, err = run_cli("validate", meta, "--media", "off", "--no-manifest")
    assert code == 0
    assert out.startswith("Found 0 problems (0 errors, 0 warnings, 0 info) in 1 file, 2 records, in ")
    assert err == ""


def test_broken_line_exits_1_with_location(make_meta, run_cli, tmp_path: Path) -> None:
    meta = make_meta(d=[clean(1), '{"id": 2, "conversations": [}', clean(3)])
    code, out, _ = run_cli("validate", meta, "--media", "off", "--no-manifest")
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == f"{tmp_path / 'd.jsonl'}:2:29: IVL001 invalid JSON: Expecting value at column 29"
    assert lines[-1].startswith("Found 1 problem (1 error, 0 warnings, 0 info) in 1 file, 2 records")


@pytest.mark.parametrize(
    "content, expected",
    [(None, 2), ("dir", 2), ("not json {", 1), ("[1, 2]", 1), ("{}", 1), ("\ufeff{}", 1), ('{"d": 3}', 1)],
)
def test_unusable_meta_exit_codes(tmp_path: Path, run_cli, content: str | None, expected: int) -> None:
    """Exit 2 only when the meta file cannot be opened (nothing checked); read and wrong is a data error, exit 1."""
    meta = tmp_path / "meta.json"
    if content == "dir":
        meta.mkdir()
    elif content is not None:
        meta.write_text(content)
    code, out, _ = run_cli("validate", meta)
    assert code == expected
    assert f"{meta}:" in out and ("IVL101" in out or "IVL102" in out)
    assert not (tmp_path / "meta.ivl-manifest.json").exists()


def test_usage_errors_exit_2(make_meta, run_cli) -> None:
    meta = make_meta(d=[clean(1)])
    assert run_cli("validate", meta, "--media", "sometimes")[0] == 2
    code, _, err = run_cli("validate", meta, "--max-per-rule", "-1")
    assert code == 2 and "--max-per-rule must be >= 0" in err
    assert run_cli("validate")[0] == 2


def test_no_traceback_in_a_subprocess(tmp_path: Path) -> None:
    (tmp_path / "meta.json").write_text('{"d": {"root": 1, "annotation": [], "repeat_time": "x"}}')
    for args in ([str(tmp_path / "meta.json")], [str(tmp_path / "missing.json")], ["--jsonl", str(tmp_path)]):
        proc = subprocess.run(
            [sys.executable, "-m", "internvl_data", "validate", *args], capture_output=True, text=True
        )
        assert proc.returncode in (1, 2)
        assert "Traceback" not in proc.stdout + proc.stderr


def test_warnings_pass_unless_strict(make_meta, run_cli) -> None:
    meta = make_meta(d=[NO_IMAGE])
    code, out, _ = run_cli("validate", meta, "--media", "off", "--no-manifest")
    assert code == 0 and ":1:1: IVL214 " in out
    code, out, _ = run_cli("validate", meta, "--media", "off", "--no-manifest", "--strict", "--format", "json")
    assert code == 1
    assert [(f["code"], f["severity"]) for f in json.loads(out)["findings"]] == [("IVL214", "error")]


def test_select_and_ignore_by_prefix(make_meta, run_cli) -> None:
    meta = make_meta(d=[NO_IMAGE, "{bad", {"id": 3}])
    base = ("validate", meta, "--media", "off", "--no-manifest", "--format", "json")

    def codes(*extra: str) -> list[str]:
        return [f["code"] for f in json.loads(run_cli(*base, *extra)[1])["findings"]]

    assert codes() == ["IVL214", "IVL001", "IVL201"]
    assert codes("--select", "IVL0") == ["IVL001"]
    assert codes("--ignore", "IVL2") == ["IVL001"]
    assert codes("--select", "IVL2", "--ignore", "IVL201") == ["IVL214"]
    assert codes("--select", "ivl0,IVL201") == ["IVL001", "IVL201"]
    assert run_cli(*base, "--ignore", "IVL0,IVL201")[0] == 0


def test_max_per_rule_keeps_first_and_counts_rest(make_meta, run_cli) -> None:
    meta = make_meta(d=[{"id": i} for i in range(5)] + ["{"])
    code, out, _ = run_cli("validate", meta, "--media", "off", "--no-manifest", "--max-per-rule", "2")
    assert code == 1
    lines = out.splitlines()
    assert [ln.split(": ")[1].split()[0] for ln in lines[:3]] == ["IVL201", "IVL201", "IVL001"]
    assert [ln.split(":")[1] for ln in lines[:3]] == ["1", "2", "6"]
    assert lines[3] == "Not shown (--max-per-rule): IVL201 x3"
    assert lines[4] == "By code: IVL201 x 5, IVL001 x 1"
    assert lines[5].startswith("Found 6 problems (6 errors, 0 warnings, 0 info)")
    code, out, _ = run_cli(
        "validate", meta, "--media", "off", "--no-manifest", "--max-per-rule", "0", "--format", "json"
    )
    doc = json.loads(out)
    assert code == 1 and doc["findings"] == [] and doc["summary"]["suppressed"] == {"IVL001": 1, "IVL201": 5}
    assert doc["summary"]["errors"] == 6


@pytest.mark.parametrize("strict", [False, True])
def test_left_out_findings_keep_their_own_severity(tmp_path: Path, run_cli, strict: bool) -> None:
    """IVL208 is a warning by default but an error with internlm2-chat; IVL211 an error by default but a warning
    for a whitespace-only value: findings left out by --max-per-rule count at their real severity."""
    system = write_jsonl(tmp_path / "s.jsonl", [SYSTEM])
    blank = write_jsonl(tmp_path / "b.jsonl", [{"id": 1, "conversations": [turn("human", "  "), turn("gpt", "x")]}])
    extra = ["--strict"] if strict else []
    for path, args, code, summary in (
        (system, ["--template", "internlm2-chat"], 1, "(1 error, 0 warnings, 0 info)"),
        (blank, [], 1 if strict else 0, "(1 error, 0 warnings, 0 info)" if strict else "(0 errors, 1 warning, 0 info)"),
    ):
        got, out, _ = run_cli("validate", "--jsonl", path, "--max-per-rule", "0", *args, *extra)
        assert (got, out.splitlines()[-1].split(" in ")[0]) == (code, f"Found 1 problem {summary}")


def test_left_out_errors_block_the_manifest_and_count_in_the_api(make_meta) -> None:
    meta = make_meta(d=[{"id": 1}])
    report = engine.validate(meta, media="off", max_per_rule=0)
    assert (report.findings, report.suppressed, report.errors, report.ok) == ([], {"IVL201": 1}, 1, False)
    assert engine.exit_code(report) == 1 and not manifest.default_path(meta).exists()
    strict = engine.validate(make_meta(d=[NO_IMAGE]), media="off", max_per_rule=0, strict=True)
    assert (strict.findings, strict.errors, strict.warnings) == ([], 1, 0)
    assert engine.exit_code(strict) == 1 and not manifest.default_path(meta).exists()
    missing = engine.validate(meta.parent / "missing.json", max_per_rule=0, write_manifest=False)
    assert (missing.errors, engine.exit_code(missing)) == (1, 2)


def test_jsonl_mode_and_exit_zero(tmp_path: Path, run_cli) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", [clean(1)])
    bad = write_jsonl(tmp_path / "bad.jsonl", [clean(1), "[]"])
    assert run_cli("validate", "--jsonl", good)[0] == 0
    code, out, _ = run_cli("validate", "--jsonl", good, bad)
    assert code == 1 and f"{bad}:2:1: IVL006 line is a JSON array, not an object" in out
    assert run_cli("validate", "--jsonl", bad, "--exit-zero")[0] == 0
    assert not list(tmp_path.glob("*manifest*"))


def test_output_file_replaces_stdout(make_meta, run_cli, tmp_path: Path) -> None:
    meta = make_meta(d=[clean(1)])
    target = tmp_path / "report.json"
    code, out, _ = run_cli("validate", meta, "--media", "off", "--format", "json", "-o", target)
    assert code == 0 and out == ""
    assert json.loads(target.read_text())["summary"]["records"] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    code, _, err = run_cli("validate", meta, "-o", tmp_path / "no" / "such" / "dir.json")
    assert code == 2 and "cannot write" in err


def _rows() -> list:
    rows: list = [clean(i) for i in range(400)]
    rows[7] = "{broken"
    rows[150] = {"id": 3, "conversations": [turn("human", "x" * 3000), turn("gpt", "y")]}  # duplicate id, long line
    rows[151] = ""
    rows[200] = rows[300] = clean("s")  # a string id, repeated in another block
    rows[398] = {"id": 398}
    return rows


@pytest.mark.parametrize("final_newline", [True, False])
def test_blocks_in_a_pool_match_one_pass(tmp_path: Path, monkeypatch, final_newline: bool) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", _rows())
    if not final_newline:
        path.write_bytes(path.read_bytes().rstrip(b"\n"))
    whole = engine.validate_jsonl([str(path)], jobs=1, long_line=2000)
    monkeypatch.setattr(cache, "BLOCK", 1000)  # ~22 blocks; lines cross block ends; the 3 kB line spans 3
    monkeypatch.setattr(engine, "SMALL", 0)
    parts = engine.validate_jsonl([str(path)], jobs=2, long_line=2000)
    assert parts.findings == whole.findings
    assert [(f.code, f.line) for f in parts.findings] == [
        ("IVL001", 8),
        ("IVL007", 151),
        ("IVL224", 151),
        ("IVL002", 152),
        ("IVL224", 301),
        ("IVL201", 399),
    ]
    assert "first used at line 4)" in parts.findings[2].message
    assert "first used at line 201)" in parts.findings[4].message
    assert (parts.records, parts.files) == (whole.records, whole.files) == (398, 1)


@settings(max_examples=150, deadline=None)
@given(
    data=st.lists(st.sampled_from([b"a", b"bc", b"\n", b"\r\n", b"{}"]), max_size=30).map(b"".join),
    block=st.integers(1, 6),
)
def test_read_block_splits_lines_exactly_once(tmp_path_factory, data: bytes, block: int) -> None:
    path = tmp_path_factory.mktemp("rb") / "f"
    path.write_bytes(data)
    real = cache.BLOCK
    cache.BLOCK = block
    try:
        got, digests = _read_all(path, len(data), block)
        assert cache.combine(digests) == cache.content_hash(path)
    finally:
        cache.BLOCK = real
    want = data.split(b"\n")
    if data.endswith(b"\n") or not data:
        want.pop()
    assert got == want


def _read_all(path: Path, size: int, block: int) -> tuple[list[bytes], list[bytes]]:
    got, digests = [], []
    for i in range(max(1, -(-size // block))):
        digest, lines = scan.read_block(str(path), i, size)
        got += lines
        digests.append(digest)
    return got, digests


@pytest.mark.parametrize("data", [b"", b"\n", b"a", b"a\n", b"\n\n", b"ab\ncd", b"abc\n" * 7, b"x" * 9 + b"\ny\n"])
def test_read_block_examples(tmp_path: Path, monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(cache, "BLOCK", 4)
    path = tmp_path / "f"
    path.write_bytes(data)
    got, digests = _read_all(path, len(data), 4)
    want = data.split(b"\n")
    if data.endswith(b"\n") or not data:
        want.pop()
    assert got == want
    assert cache.combine(digests) == cache.content_hash(path)


SYSTEM = {"id": 1, "conversations": [turn("system", "Be brief."), turn("human", "Hi"), turn("gpt", "Hello")]}


@pytest.mark.parametrize(
    ("template", "expected"), [(None, ["warning"]), ("internvl2_5", []), ("internlm2-chat", ["error"])]
)
def test_template_reaches_the_record_checks(tmp_path: Path, run_cli, template: str | None, expected: list[str]) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", [SYSTEM])
    args = ["validate", "--jsonl", path, "--format", "json"] + (["--template", template] if template else [])
    code, out, _ = run_cli(*args)
    assert [f["severity"] for f in json.loads(out)["findings"] if f["code"] == "IVL208"] == expected
    assert code == (1 if expected == ["error"] else 0)


def test_progress_bar_only_on_a_terminal_outside_ci(monkeypatch) -> None:
    from internvl_data.parallel import ProgressBar, show_progress

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.delenv("CI", raising=False)
    assert show_progress(None) is True
    bar = ProgressBar("validating", 10)
    assert bar.total == 10
    bar.close()
    monkeypatch.setenv("CI", "true")
    assert not show_progress(None)
    assert not show_progress(False)
    assert show_progress(True)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    monkeypatch.delenv("CI")
    assert not show_progress(None)


def test_python_api_options(make_meta) -> None:
    from internvl_data import validate
    from internvl_data.validator.options import ValidateOptions

    meta = make_meta(d=[{"id": 1}])
    report = validate(meta, ValidateOptions(media="off", write_manifest=False), ignore=("IVL201",))
    assert report.findings == [] and report.records == 1
    with pytest.raises(ValueError, match="unknown option"):
        validate(meta, medium="off")


def test_an_annotation_unreadable_mid_run_is_one_finding(make_meta, run_cli, tmp_path: Path, monkeypatch) -> None:
    """Issue 13 item 8 (the real deletions are tests/faults/test_vanished.py): a file there at the start that cannot
    be read is one IVL107 finding, exit 1, the other files' findings kept; with --jsonl it is located at the file."""
    meta = make_meta(d=[clean(1)], e=[{"id": 2}])
    real = scan.read_block

    def denied(path, *args):  # type: ignore[no-untyped-def]
        if path.endswith("d.jsonl"):
            raise PermissionError(13, "Permission denied", path)
        return real(path, *args)

    monkeypatch.setattr(scan, "read_block", denied)
    code, out, err = run_cli("validate", meta, "--media", "off")
    assert (code, err) == (1, "")
    assert out.splitlines()[:2] == [
        f"{meta}:4:1: IVL107 dataset 'd': annotation file 'd.jsonl' vanished or became unreadable while being checked "
        f"({tmp_path / 'd.jsonl'}: Permission denied); none of its lines were checked",
        f"{tmp_path / 'e.jsonl'}:1:1: IVL201 `conversations` is missing",
    ]
    assert not manifest.default_path(meta).exists()
    code, out, err = run_cli("validate", "--jsonl", tmp_path / "d.jsonl", tmp_path / "e.jsonl")
    assert (code, err) == (1, "")
    assert out.splitlines()[:2] == [
        f"{tmp_path / 'd.jsonl'}:1:1: IVL107 annotation file vanished or became unreadable while being checked "
        f"({tmp_path / 'd.jsonl'}: Permission denied); none of its lines were checked",
        f"{tmp_path / 'e.jsonl'}:1:1: IVL201 `conversations` is missing",
    ]


def test_format_from_the_environment(make_meta, run_cli, monkeypatch) -> None:
    meta = make_meta(d=[{"id": 1}])
    monkeypatch.setenv("IVL_DATA_FORMAT", "github")
    code, out, _ = run_cli("validate", meta, "--media", "off")
    assert code == 1 and out.startswith("::error file=")
    monkeypatch.setenv("IVL_DATA_FORMAT", "xml")
    code, _, err = run_cli("validate", meta)
    assert code == 2 and "$IVL_DATA_FORMAT='xml' is not one of text, json, github, sarif" in err


def test_duplicate_ids_capped_and_counted(tmp_path: Path, monkeypatch) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [clean(i % 3) for i in range(30)])
    monkeypatch.setattr(cache, "BLOCK", 500)
    monkeypatch.setattr(engine, "SMALL", 0)
    for jobs in (1, 2):
        report = engine.validate_jsonl([str(path)], jobs=jobs, max_per_rule=4)
        assert [(f.line, f.message) for f in report.findings] == [
            (4, "duplicate id 0 (first used at line 1)"),
            (5, "duplicate id 1 (first used at line 2)"),
            (6, "duplicate id 2 (first used at line 3)"),
            (7, "duplicate id 0 (first used at line 1)"),
        ]
        assert report.suppressed == {"IVL224": 23}


def test_duplicate_ids_are_named_across_blocks(tmp_path: Path, monkeypatch) -> None:
    """The workers keep 8-byte digests; the message names the id, read back from the line (CRLF lines too)."""
    rows = [{**clean(0), "id": rid} for rid in ("a", "b", 7, "a", "7", 7)]
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\r\n" for r in rows))
    monkeypatch.setattr(cache, "BLOCK", 300)
    monkeypatch.setattr(engine, "SMALL", 0)
    for jobs in (1, 2):
        report = engine.validate_jsonl([str(path)], jobs=jobs, select=["IVL224"])
        assert [(f.line, f.message) for f in report.findings] == [
            (4, "duplicate id 'a' (first used at line 1)"),
            (6, "duplicate id 7 (first used at line 3)"),
        ]


def test_several_meta_files_in_one_run(tmp_path: Path, run_cli) -> None:
    metas = []
    for name, rows in (("a", [clean(1)]), ("b", [clean(1), {"id": 2}])):
        folder = tmp_path / name
        folder.mkdir()
        write_jsonl(folder / "d.jsonl", rows)
        meta = {
            "d": {"root": ".", "annotation": "d.jsonl", "data_augment": False, "repeat_time": 1, "length": len(rows)}
        }
        (folder / "meta.json").write_text(json.dumps(meta))
        metas.append(folder / "meta.json")
    code, out, _ = run_cli("validate", *metas, "--media", "off")
    assert code == 1
    finding, by_code, summary = out.splitlines()  # the one finding, the count per code, then the summary
    assert finding == f"{tmp_path / 'b' / 'd.jsonl'}:2:1: IVL201 `conversations` is missing"
    assert by_code == "By code: IVL201 x 1"
    assert summary.startswith("Found 1 problem (1 error, 0 warnings, 0 info) in 2 files, 3 records")
    assert (tmp_path / "a" / "meta.ivl-manifest.json").exists() and not (
        tmp_path / "b" / "meta.ivl-manifest.json"
    ).exists()
    code, _, err = run_cli("validate", *metas, "--manifest", tmp_path / "m.json")
    assert code == 2 and "--manifest names one file" in err


def test_pre_commit_writes_its_report_like_validate(make_meta, run_cli, tmp_path: Path, monkeypatch) -> None:
    """`pre-commit -o` shares validate's output steps: the file replaces stdout; a missing folder is refused before
    the work, with validate's message."""
    meta = Path(make_meta(d=[clean(1)]))
    monkeypatch.chdir(meta.parent)
    target = tmp_path / "report.json"
    args = ("pre-commit", meta.name, "--meta", meta.name, "--media", "off", "--isolated", "--format", "json")
    code, out, _ = run_cli(*args, "-o", target)
    assert code == 0 and out == ""
    assert json.loads(target.read_text())["summary"]["records"] == 1
    missing = tmp_path / "no" / "such" / "dir.json"
    code, out, err = run_cli(*args, "-o", missing)
    assert (code, out) == (2, "")
    assert err == (
        f"ivl-data pre-commit: error: cannot write {missing}: folder {missing.parent} does not exist; create it or "
        "fix the path\n"
    )


def test_pre_commit_checks_its_options_like_validate(make_meta, run_cli, monkeypatch) -> None:
    """An unknown --select code would make the hook check nothing: refused before any work, as validate does."""
    meta = Path(make_meta(d=[clean(1)]))
    monkeypatch.chdir(meta.parent)
    code, out, err = run_cli("pre-commit", meta.name, "--meta", meta.name, "--isolated", "--select", "IVL9")
    assert (code, out) == (2, "")
    assert err == (
        "ivl-data pre-commit: error: --select IVL9: no rule code starts with it; use codes or prefixes from "
        "`ivl-data rules` (IVL201, IVL2)\n"
    )


def test_render_refuses_a_negative_index_before_loading_anything(make_meta, run_cli, tmp_path: Path) -> None:
    meta = make_meta(d=[clean(1)])
    code, out, err = run_cli("render", meta, "--model", tmp_path / "no-such-model", "--index", "-2")
    assert (code, out) == (2, "")
    assert err == "ivl-data render: error: --index -2 must be >= 0 (--limit 0 renders everything)\n"
