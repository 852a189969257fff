"""Severity follows consequence (issue 13): every rule declares what the official stack does with what it finds,
the catalogue refuses a severity that does not follow from it (unless an override says why), `ivl-data explain`
states the reason, and the severities changed by the review are what `ivl-data validate` reports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from internvl_data.checks.catalogue import (
    MEANING,
    SEVERITY_FOR,
    Case,
    Consequence,
    emit,
    registered,
    rule,
    severity_text,
)
from internvl_data.checks.findings import Severity
from internvl_data.checks.registry import all_rules
from tests.helpers.records import conv, turn, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
C, E, W, I = Consequence, Severity.ERROR, Severity.WARNING, Severity.INFO  # noqa: E741 (short names)


# ----------------------------------------------------------------------------- the table


def test_consequence_to_severity_table_is_as_documented() -> None:
    assert SEVERITY_FOR == {
        C.CRASH: (E,),
        C.BROKEN: (E,),
        C.ALTERED: (W,),
        C.NOTICE: (W, I),
    }
    assert list(MEANING) == list(Consequence)
    decisions = (ROOT / "docs" / "decisions.md").read_text()
    rules_md = (ROOT / "docs" / "rules.md").read_text()
    for c, severities in SEVERITY_FOR.items():
        row = f"| {c.value} | {' or '.join(s.value for s in severities)} |"
        assert row in decisions and row in rules_md, row


def test_every_rule_declares_a_consequence_and_no_idle_case() -> None:
    """That each severity follows from its consequence is rule()'s import-time refusal (tested below); here: every
    rule has a consequence, and no case repeats the rule's default (same severity, consequence and no override)."""
    rules = all_rules()
    assert len(rules) == 74
    for code, r in rules.items():
        assert isinstance(r.consequence, Consequence), code
        for case in r.cases:
            assert case.severity is not r.severity or case.override or case.consequence is not r.consequence


def test_overrides_are_few_and_known() -> None:
    """Adding an override is a decision: it goes into docs/decisions.md and into this list."""
    rules = all_rules()
    assert {code for code, r in rules.items() if r.override} == {"IVL103", "IVL208", "IVL302", "IVL406", "IVL407"}
    assert {(code, n) for code, r in rules.items() for n, c in enumerate(r.cases) if c.override} == {
        ("IVL211", 0),
        ("IVL225", 0),
    }
    decisions = (ROOT / "docs" / "decisions.md").read_text()
    listed = decisions.split("**Severity follows consequence**", 1)[1].split("Overrides:", 1)[1].split("\n- ", 1)[0]
    for code in ("IVL103", "IVL208", "IVL302", "IVL406", "IVL407", "IVL211", "IVL225"):
        assert code in listed, code


def test_every_why_says_what_the_official_code_does() -> None:
    for code, r in all_rules().items():
        assert re.search(r"official|loader|trainer|preprocessor|reader|fine-tune script", r.why), code
        assert not r.why.startswith("An error because"), code  # the Severity line says that now


# ----------------------------------------------------------------------------- refusals


def _register(severity: Severity, consequence: Consequence, **kw: object) -> None:
    rule("IVL998", "test-only", severity, "s", "w", "e", "f", consequence=consequence, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "severity,consequence",
    [(W, C.CRASH), (I, C.CRASH), (W, C.BROKEN), (E, C.ALTERED), (I, C.ALTERED), (E, C.NOTICE)],
)
def test_a_severity_that_contradicts_the_consequence_is_refused(severity: Severity, consequence: Consequence) -> None:
    with pytest.raises(RuntimeError, match=f"consequence {consequence.value} makes"):
        _register(severity, consequence)
    assert "IVL998" not in registered()


def test_override_needs_words_and_a_reason_to_exist() -> None:
    with pytest.raises(RuntimeError, match="write the reason as override"):
        _register(W, C.CRASH, override="   ")
    with pytest.raises(RuntimeError, match="drop the override"):
        _register(E, C.CRASH, override="no reason needed")
    with pytest.raises(RuntimeError, match=r"case 1 \(x\): consequence broken makes an error, not a warning"):
        _register(E, C.CRASH, cases=(Case("x", C.BROKEN, W),))
    assert "IVL998" not in registered()


def test_emit_refuses_a_severity_the_rule_does_not_declare() -> None:
    with pytest.raises(RuntimeError, match="IVL001: a warning finding"):
        emit("IVL001", "a.jsonl", 1, "x", severity=W)
    assert emit("IVL210", "a.jsonl", 1, "x", severity=E).severity is E  # one of IVL210's cases
    assert emit("IVL001", "a.jsonl", 1, "x", severity=E).severity is E  # its default, spelt out


# ----------------------------------------------------------------------------- explain


@pytest.mark.parametrize(
    "code,lines",
    [
        (
            "IVL301",
            [
                "Severity: error by default, because the official loader or trainer raises on it: the sample is "
                "dropped and replaced by a random other one, or the run stops."
            ],
        ),
        (
            "IVL222",
            [
                "Severity: error by default, because the model trains on a broken sample: a wrong or corrupted "
                "target, or nothing to learn."
            ],
        ),
        (
            "IVL401",
            [
                "Severity: warning by default, because the official stack silently changes, cuts or drops part of "
                "it, but what trains is still a valid sample."
            ],
        ),
        (
            "IVL004",
            [
                "Severity: info by default, because training is not affected: it is a question of style or intent, "
                "or information."
            ],
        ),
        (
            "IVL406",
            [
                "Severity: warning by default, because ivl-data validate does not know the trainer's max_num_frame "
                "(it counts 32, the official default), so it cannot tell whether any draw overflows; ivl-train's "
                "data gate, which knows it, makes this an error when max_num_frame is 32 or more. Without that "
                "reason it would be an error, because the model trains on a broken sample: a wrong or corrupted "
                "target, or nothing to learn."
            ],
        ),
        (
            "IVL312",
            [
                "Severity: error by default, because the official loader or trainer raises on it: the sample is "
                "dropped and replaced by a random other one, or the run stops.",
                "  warning when the video has frames, only fewer than a --min-frames above 1 (the reader repeats the "
                "last one), because the official stack silently changes, cuts or drops part of it, but what trains "
                "is still a valid sample.",
            ],
        ),
    ],
)
def test_explain_states_the_severity_and_why(run_cli, code: str, lines: list[str]) -> None:
    rc, out, _ = run_cli("explain", code)
    assert rc == 0
    got = out.splitlines()
    start = got.index(lines[0])
    assert got[start : start + len(lines) + 1] == [*lines, ""]
    assert got[start - 2].startswith("  ") and got[start + len(lines) + 1] == "Example"  # after "Why is this bad?"


def test_rules_json_carries_the_consequence(run_cli) -> None:
    rc, out, _ = run_cli("rules", "--format", "json")
    rows = {r["code"]: r for r in json.loads(out)}
    assert rc == 0 and len(rows) == len(all_rules())
    assert (rows["IVL222"]["severity"], rows["IVL222"]["consequence"], rows["IVL222"]["override"]) == (
        "error",
        "broken",
        "",
    )
    assert rows["IVL103"]["consequence"] == "altered" and rows["IVL103"]["override"].startswith("a whole dataset")
    assert [(c["severity"], c["consequence"]) for c in rows["IVL210"]["cases"]] == [
        ("error", "crash"),
        ("error", "broken"),
    ]


def test_docs_rules_md_shows_the_severity_line() -> None:
    text = (ROOT / "docs" / "rules.md").read_text()
    for r in all_rules().values():
        head, *cases = severity_text(r)
        assert "**" + head.replace(":", ":**", 1) in text, r.code
        assert all(f"- {c}" in text for c in cases), r.code


# ----------------------------------------------------------------------------- severities changed by the review


def _validate(run_cli, meta: Path, *args: object) -> tuple[int, list[tuple[str, str]]]:
    rc, out, _ = run_cli("validate", meta, "--no-manifest", "--format", "json", *args)
    return rc, [(f["code"], f["severity"]) for f in json.loads(out)["findings"]]


G_FIRST = turn("gpt", "Welcome.")


@pytest.mark.parametrize(
    "code,raw,want",
    [
        # warning -> info: JSON reads the \r as whitespace, the sample trains unchanged
        ("IVL004", b'{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "x"}]}\r', "info"),
        # error -> warning: the parser keeps the last value, and what trains is a valid sample
        (
            "IVL008",
            b'{"id": 1, "id": 2, "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "x"}]}',
            "warning",
        ),
    ],
)
def test_changed_line_severities(make_meta, run_cli, code: str, raw: bytes, want: str) -> None:
    assert _validate(run_cli, make_meta(d=[raw]), "--media", "off") == (0, [(code, want)])


def test_ivl117_duplicate_meta_key_is_a_warning(tmp_path: Path, run_cli) -> None:
    """error -> warning: the parser keeps the last value and the official trainer uses it."""
    write_jsonl(tmp_path / "d.jsonl", [{"conversations": conv("Hi", "x")}])
    (tmp_path / "media").mkdir()
    (tmp_path / "meta.json").write_text(
        '{"d": {"root": "elsewhere", "root": "media", "annotation": "d.jsonl", "data_augment": false, '
        '"repeat_time": 1, "length": 1}}\n'
    )
    assert _validate(run_cli, tmp_path / "meta.json", "--media", "off") == (0, [("IVL117", "warning")])


def test_ivl222_box_out_of_range_is_an_error(make_meta, run_cli) -> None:
    """warning -> error: a box outside 0..1000 or with swapped corners trains a wrong target."""
    for box in ("[[120, 40, 1920, 1080]]", "[[30, 20, 10, 40]]"):
        meta = make_meta(d=[{"conversations": conv("Where?", f"<ref>cat</ref><box>{box}</box>")}])
        assert _validate(run_cli, meta, "--media", "off") == (1, [("IVL222", "error")])


@pytest.mark.parametrize(
    "record,want",
    [
        ({"conversations": [G_FIRST, *conv("Hi", "x")]}, "warning"),  # text: the turn is dropped, the rest trains
        ({"image": "a.jpg", "conversations": [G_FIRST, *conv("What is it?", "A cat.")]}, "error"),  # '<image>\n' lost
        ({"image": "a.jpg", "conversations": [turn("gpt", "<image>\nHi"), *conv("What?", "A cat.")]}, "error"),
        ({"image": "a.jpg", "conversations": [G_FIRST, *conv("<image>\nWhat is it?", "A cat.")]}, "warning"),
        ({"image": ["a.jpg", "b.jpg"], "conversations": [G_FIRST, *conv("<image><image>Diff?", "None.")]}, "warning"),
        ({"image": ["a.jpg", "b.jpg"], "conversations": [turn("gpt", "<image>"), *conv("<image>?", "No.")]}, "error"),
        ({"video": "v.mp4", "conversations": [G_FIRST, *conv("<video>\nWhat happens?", "It moves.")]}, "error"),
    ],
    ids=["text", "single-auto", "single-in-dropped", "single-later", "multi-later", "multi-lost", "video"],
)
def test_ivl210_is_an_error_when_the_dropped_turn_takes_the_media(make_meta, run_cli, record: dict, want: str) -> None:
    """A leading gpt turn: a warning (ALTERED), an error when the image placeholder (CRASH) or the video frames
    (BROKEN) go with it."""
    rc, found = _validate(run_cli, make_meta(d=[record]), "--media", "off", "--select", "IVL210")
    assert (rc, found) == (int(want == "error"), [("IVL210", want)])


@pytest.mark.parametrize("template,want", [("internlm2-chat", "error"), ("Hermes-2", "warning"), (None, "warning")])
def test_ivl211_whitespace_value_follows_the_template(make_meta, run_cli, template: str | None, want: str) -> None:
    """internlm2-chat strips a whitespace-only value to empty (BROKEN, an error); the others keep it."""
    meta = make_meta(d=[{"conversations": conv("Hi", "  ")}])
    args = ["--template", template] if template else []
    assert _validate(run_cli, meta, "--media", "off", *args) == (int(want == "error"), [("IVL211", want)])


@pytest.mark.parametrize(
    "first,want",
    [
        ("<video>\nWhat happens? <video>", "warning"),  # the frames go into the first turn; the other stays text
        ("<video> What happens? <video>", "error"),  # no '<video>\n' in the first turn: no frames, loss zeroed
    ],
)
def test_ivl219_repeated_video_placeholder(make_meta, run_cli, first: str, want: str) -> None:
    meta = make_meta(d=[{"video": "v.mp4", "conversations": conv(first, "It moves.")}])
    assert _validate(run_cli, meta, "--media", "off") == (int(want == "error"), [("IVL219", want)])


def test_ivl312_too_few_frames_is_an_error_only_without_a_frame(make_meta, run_cli) -> None:
    """A frame folder (read without decord): 2 frames under --min-frames 4 are repeated (a warning); an empty
    folder leaves nothing to read (an error, at the default --min-frames 1)."""
    from PIL import Image

    meta = make_meta(d=[{"video": "few/", "conversations": conv("<video>\nWhat?", "It moves.")}])
    (meta.parent / "media" / "few").mkdir()
    for k in range(2):
        Image.new("RGB", (4, 4)).save(meta.parent / "media" / "few" / f"f_{k}.jpg")
    assert _validate(run_cli, meta, "--min-frames", "4") == (0, [("IVL312", "warning")])
    meta = make_meta(d=[{"video": "none/", "conversations": conv("<video>\nWhat?", "It moves.")}])
    (meta.parent / "media" / "none").mkdir()
    assert _validate(run_cli, meta) == (1, [("IVL312", "error")])
