"""IVL2xx record checks: exact codes, lines, JSON paths and severities; the fast path on clean data; ids."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from internvl_data.checks.findings import Severity
from internvl_data.checks.lines import LineCtx, check_line
from internvl_data.checks.records import _findings, check_record, grounding_problems
from internvl_data.formats.lines import iter_lines
from internvl_data.validator.worker import id_key
from tests.helpers.bench_data import write_bench_lines

ROOT = Path(__file__).resolve().parents[2]
E, W = Severity.ERROR, Severity.WARNING


def H(v: str) -> dict:
    return {"from": "human", "value": v}


def G(v: str) -> dict:
    return {"from": "gpt", "value": v}


def run(rec: dict, template: str | None = None) -> list[tuple[str, str, str]]:
    ctx = LineCtx("d.jsonl", line=7, dataset="ds", template=template)
    out = check_record(rec, ctx)
    assert out == _findings(rec, ctx)  # fast path and detailed pass agree
    assert all(f.path == "d.jsonl" and f.line == 7 and f.dataset == "ds" for f in out)
    return [(f.code, f.json_path, f.severity.value) for f in out]


CLEAN = [
    {"id": 1, "conversations": [H("Hi"), G("Hello")]},
    {"id": "a", "image": "x.jpg", "width": 640, "height": 480, "conversations": [H("<image>\nWhat?"), G("A cat.")]},
    {"image": "x.jpg", "conversations": [H("What is it?\n<image>"), G("A cat."), H("Sure?"), G("Yes.")]},
    {
        "image": ["a.jpg", "b.jpg"],
        "width_list": [1, 2],
        "height_list": [3, 4],
        "conversations": [H("Image-1: <image>\nImage-2: <image>\nCompare."), G("Same.")],
    },
    {"image": ["a.jpg", "b.jpg"], "conversations": [H("<image>\nFirst."), G("Ok."), H("<image>\nSecond?"), G("Ok.")]},
    {"video": "v.mp4", "clip": [0.0, 1.5], "length": 300, "conversations": [H("<video>\nWhat?"), G("Rain.")]},
    {"id": 3, "video": None, "conversations": [H("a < b?"), G("Yes, 1 < 2.")]},
    {
        "image": "x.jpg",
        "conversations": [
            H("<image>\nWhere is <ref>the cat</ref>?"),
            G("<ref>the cat</ref><box>[[0, 10, 1000, 999]]</box>"),
        ],
    },
    {"conversations": [H("Hi"), G("Hello")], "source": "extra keys are allowed"},
]


@pytest.mark.parametrize("rec", CLEAN)
def test_clean_records_have_no_findings(rec: dict) -> None:
    assert run(rec) == []


CASES = [
    ({"id": 1}, [("IVL201", "$.conversations", "error")]),
    ({"conversations": {"from": "human"}}, [("IVL201", "$.conversations", "error")]),
    ({"conversations": [{"value": "Hi"}, G("x")]}, [("IVL202", "$.conversations[0].from", "error")]),
    ({"conversations": [H("Hi"), {"from": "gpt", "value": 5}]}, [("IVL202", "$.conversations[1].value", "error")]),
    ({"conversations": ["Hi", G("x")]}, [("IVL202", "$.conversations[0]", "error")]),
    ({"conversations": [H("Hi"), {"from": "gpt", "text": "x"}]}, [("IVL203", "$.conversations[1].text", "error")]),
    ({"image": None, "conversations": [H("<image>\nHi"), G("x")]}, [("IVL204", "$.image", "error")]),
    ({"image": 5, "conversations": [H("Hi"), G("x")]}, [("IVL205", "$.image", "error")]),
    ({"image": ["a.jpg", None], "conversations": [H("<image><image>"), G("x")]}, [("IVL205", "$.image[1]", "error")]),
    (
        {"image": "a.jpg", "video": "v.mp4", "conversations": [H("<image>\nHi"), G("x")]},
        [("IVL206", "$.video", "error")],
    ),
    ({"conversations": [{"from": "user", "value": "Hi"}, G("x")]}, [("IVL207", "$.conversations[0].from", "error")]),
    ({"conversations": [H("Hi"), H("Hey"), G("x")]}, [("IVL209", "$.conversations[1].from", "error")]),
    ({"conversations": [G("Welcome"), H("Hi"), G("x")]}, [("IVL210", "$.conversations[0].from", "warning")]),
    ({"conversations": [H("Hi"), G("")]}, [("IVL211", "$.conversations[1].value", "error")]),
    ({"conversations": [H(" \t"), G("x")]}, [("IVL211", "$.conversations[0].value", "warning")]),
    ({"conversations": [H("Hi"), G("x"), H("Bye")]}, [("IVL212", "$.conversations[2].from", "error")]),
    ({"conversations": [H("Hi"), G("x<|im_end|>")]}, [("IVL213", "$.conversations[1].value", "error")]),
    ({"conversations": [H("<IMG_CONTEXT>"), G("x")]}, [("IVL213", "$.conversations[0].value", "error")]),
    ({"image": "a.jpg", "conversations": [H("Hi"), G("x")]}, [("IVL214", "$.conversations[0].value", "warning")]),
    (
        {"image": "a.jpg", "conversations": [H("Hi"), G("x"), H("<image>\nAnd?"), G("y")]},
        [("IVL215", "$.conversations[0].value", "warning")],
    ),
    (
        {"image": "a.jpg", "conversations": [H("<image><image>"), G("x")]},
        [("IVL216", "$.conversations[0].value", "warning")],
    ),
    (
        {"image": ["a", "b"], "conversations": [H("<image><image><image>"), G("x")]},
        [("IVL216", "$.conversations", "warning")],
    ),
    ({"image": ["a", "b"], "conversations": [H("<image>"), G("x")]}, [("IVL217", "$.conversations", "error")]),
    ({"video": "v.mp4", "conversations": [H("What?"), G("x")]}, [("IVL218", "$.conversations[0].value", "warning")]),
    (
        {"video": "v.mp4", "conversations": [H("<video>What?"), G("x")]},
        [("IVL219", "$.conversations[0].value", "error")],
    ),
    (
        {"video": "v.mp4", "conversations": [H("<video>\n<video>\n"), G("x")]},
        [("IVL219", "$.conversations", "warning")],
    ),
    ({"conversations": [H("<image>\nHi"), G("x")]}, [("IVL220", "$.conversations", "warning")]),
    ({"image": "a", "conversations": [H("<image>\n<video>\n"), G("x")]}, [("IVL220", "$.conversations", "warning")]),
    (
        {"conversations": [H("Hi"), G("<ref>a</ref><box>[1, 2, 3, 4]</box>")]},
        [("IVL221", "$.conversations[1].value", "error")],
    ),
    (
        {"conversations": [H("Hi"), G("<box>[[1, 2, 3, 1001]]</box>")]},
        [("IVL222", "$.conversations[1].value", "error")],
    ),
    ({"length": "5", "conversations": [H("Hi"), G("x")]}, [("IVL223", "$.length", "error")]),
    ({"length": True, "conversations": [H("Hi"), G("x")]}, [("IVL223", "$.length", "error")]),
    ({"id": [1], "conversations": [H("Hi"), G("x")]}, [("IVL225", "$.id", "error")]),
    ({"width": "640", "conversations": [H("Hi"), G("x")]}, [("IVL225", "$.width", "error")]),
    ({"width_list": [3, 0], "conversations": [H("Hi"), G("x")]}, [("IVL225", "$.width_list[1]", "error")]),
    ({"video": 3, "conversations": [H("Hi"), G("x")]}, [("IVL225", "$.video", "error")]),
    ({"video": "v", "clip": [2, 1], "conversations": [H("<video>\nHi"), G("x")]}, [("IVL225", "$.clip", "error")]),
    ({"video": "v", "clip": [2], "conversations": [H("<video>\nHi"), G("x")]}, [("IVL225", "$.clip", "error")]),
    ({"image": [], "conversations": [H("Hi"), G("x")]}, [("IVL226", "$.image", "warning")]),
    ({"image": "", "conversations": [H("Hi"), G("x")]}, [("IVL226", "$.image", "warning")]),
]


@pytest.mark.parametrize("rec,want", CASES, ids=[w[0][0] + f"-{i}" for i, (_, w) in enumerate(CASES)])
def test_record_findings(rec: dict, want: list) -> None:
    assert run(rec) == want


def test_several_problems_in_one_record_are_all_reported() -> None:
    rec = {"image": None, "length": "x", "conversations": [{"from": "user", "value": ""}, G("<img>")]}
    assert sorted(run(rec)) == [
        ("IVL204", "$.image", "error"),
        ("IVL207", "$.conversations[0].from", "error"),
        ("IVL211", "$.conversations[0].value", "error"),
        ("IVL213", "$.conversations[1].value", "error"),
        ("IVL223", "$.length", "error"),
    ]


SYSTEM_FIRST = {"conversations": [{"from": "system", "value": "Be brief."}, H("Hi"), G("x")]}


def test_system_role_depends_on_the_template() -> None:
    assert run(SYSTEM_FIRST) == [("IVL208", "$.conversations[0].from", "warning")]
    assert run(SYSTEM_FIRST, template="internvl2_5") == []
    assert run(SYSTEM_FIRST, template="Hermes-2") == [("IVL208", "$.conversations[0].from", "error")]
    later = {"conversations": [H("Hi"), {"from": "system", "value": "x"}, G("y")]}
    assert ("IVL208", "$.conversations[1].from", "error") in run(later, template="internvl2_5")


def test_system_message_text_names_the_template() -> None:
    (f,) = check_record(SYSTEM_FIRST, LineCtx("d.jsonl", line=1))
    assert "internvl2_5" in f.message and "--template" in f.message


def test_internvl2_5_does_not_check_alternation() -> None:
    rec = {"conversations": [H("a"), H("b"), G("c")]}
    assert run(rec, template="internvl2_5") == []
    assert run(rec, template="phi3-chat") == [("IVL209", "$.conversations[1].from", "error")]


def test_messages_name_the_fix() -> None:
    (f,) = check_record({"conversations": [H("Hi"), {"from": "gpt", "text": "x"}]}, LineCtx("d", line=1))
    assert f.message == "turn 1 uses `text` instead of `value`: the trainer raises KeyError"
    assert f.hint == 'Rename the key "text" to "value".'


def test_grounding_problems() -> None:
    assert grounding_problems("<ref>a</ref><box>[[1, 2, 3, 4], [5, 6, 7, 8]]</box>") == []
    assert grounding_problems("<box>[[1,2,3,4]]</box>") == []
    assert grounding_problems("<box>[[1.5, 2, 3, 4]]</box>")[0][0] == "IVL222"
    assert grounding_problems("<box>[[10, 2, 3, 4]]</box>") == [("IVL222", "box [10, 2, 3, 4] has x1 > x2 or y1 > y2")]
    assert grounding_problems("<ref>a<box>[[1, 2, 3, 4]]</box>") == [("IVL221", "1 <ref> but 0 </ref>")]
    assert grounding_problems("<box>(1, 2, 3, 4)</box>") == [
        ("IVL221", "box '(1, 2, 3, 4)' is not [[x1, y1, x2, y2], ...]")
    ]


def _records(path: Path) -> list[dict]:
    ctx = LineCtx(str(path))
    out = []
    for lineno, _, raw in iter_lines(path):
        ctx.line = lineno
        obj, findings = check_line(raw, ctx)
        assert findings == []
        out.append(obj)
    return out


def test_valid_fixture_dataset_is_clean() -> None:
    files = sorted((ROOT / "fixtures" / "valid").glob("*.jsonl"))
    assert files, "fixtures/valid is missing"
    for path in files:
        for obj in _records(path):
            assert {code for code, _, _ in run(obj)} <= {"IVL214"}, (path.name, obj)  # auto-insert is legal


@pytest.fixture(scope="module")
def bench_lines(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = write_bench_lines(tmp_path_factory.mktemp("bench"), 3000)
    if path is None:
        pytest.skip("../shared/bench/make_dataset.py not available")
    return path


def test_make_dataset_records_are_clean(bench_lines: Path) -> None:
    """make_dataset.py output: nothing but the intended IVL214 (records that rely on auto-insertion)."""
    codes: dict[str, int] = {}
    for obj in _records(bench_lines):
        for code, _, _ in run(obj):
            codes[code] = codes.get(code, 0) + 1
    assert set(codes) == {"IVL214"}


def test_digest_is_stable_across_processes() -> None:
    code = "from internvl_data.validator.worker import id_key; print(id_key('abc'), id_key(-5))"
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert runs == {f"{id_key('abc')} {id_key(-5)}\n"}
    assert id_key(1) != id_key("1")
    assert id_key(0) == 0 and id_key(1.0) != id_key(1)  # small ints are their own key; digests have the top bit
    assert min(id_key("abc"), id_key(-5), id_key(2**63), id_key(1.0)) >= 1 << 63
    assert [id_key(v) for v in (None, True, [1], {"a": 1})] == [None] * 4  # not ids
