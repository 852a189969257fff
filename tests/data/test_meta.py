"""meta.py (loading, path resolution) and checks_meta.py (IVL1xx) with exact lines and messages."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from internvl_data.checks.meta import check_declared_length
from internvl_data.formats.meta import load_meta, resolve


def good(**kw: object) -> dict:
    entry = {"root": ".", "annotation": "d.jsonl", "data_augment": False, "repeat_time": 1, "length": 1}
    entry.update(kw)
    return entry


def load(tmp_path: Path, meta: object | str, files: tuple[str, ...] = ("d.jsonl",)) -> tuple[list, list]:
    for name in files:
        (tmp_path / name).write_text('{"conversations": []}\n')
    text = meta if isinstance(meta, str) else json.dumps(meta, indent=2)
    (tmp_path / "meta.json").write_text(text)
    res = load_meta(str(tmp_path / "meta.json"))
    assert all(f.path == str(tmp_path / "meta.json") for f in res.findings)
    return res.entries, [(f.code, f.line, f.severity.value, f.message) for f in res.findings]


def test_valid_meta(tmp_path: Path) -> None:
    entries, found = load(tmp_path, {"a": good(), "b": good(repeat_time=3, max_dynamic_patch=12)})
    assert found == []
    assert [(e.name, e.line, e.annotation_path, e.root_path) for e in entries] == [
        ("a", 2, str(tmp_path / "d.jsonl"), str(tmp_path)),
        ("b", 9, str(tmp_path / "d.jsonl"), str(tmp_path)),
    ]
    assert entries[1].entry is not None and entries[1].entry.repeat_time == 3
    assert type(entries[1].entry.repeat_time) is int
    assert entries[0].line_of("repeat_time") == 6


@pytest.mark.parametrize(
    "entry,want",
    [
        (
            {"root": ".", "annotation": "d.jsonl", "repeat_time": 1, "length": 1},
            [("IVL104", 2, "error", "dataset 'ds': missing required key 'data_augment'")],
        ),
        (
            good(data_augment="false"),
            [("IVL105", 5, "error", "dataset 'ds': 'data_augment' must be true or false, not 'false'")],
        ),
        (good(root=3), [("IVL105", 3, "error", "dataset 'ds': 'root' must be a string path, not 3")]),
        (
            good(repeat_time=2.0),
            [
                (
                    "IVL109",
                    6,
                    "error",
                    "dataset 'ds': 'repeat_time' is 2.0: above 1 the official loader requires an "
                    "integer (JSON 2.0 is a float and fails its assertion)",
                )
            ],
        ),
        (good(repeat_time=0), [("IVL109", 6, "error", "dataset 'ds': 'repeat_time' is 0; it must be above 0")]),
        (good(repeat_time=-1), [("IVL109", 6, "error", "dataset 'ds': 'repeat_time' is -1; it must be above 0")]),
        (good(repeat_time="1"), [("IVL109", 6, "error", "dataset 'ds': 'repeat_time' is '1', not a number")]),
        (good(repeat_time=True), [("IVL109", 6, "error", "dataset 'ds': 'repeat_time' is True, not a number")]),
        (
            good(repeat_time=0.25),
            [
                (
                    "IVL110",
                    6,
                    "warning",
                    "dataset 'ds': 'repeat_time' is 0.25: the loader keeps the first 25% of the "
                    "lines (floor(lines * repeat_time)), not a random subset",
                )
            ],
        ),
        (good(length="1"), [("IVL112", 7, "warning", "dataset 'ds': 'length' is '1', not a line count")]),
        (
            {k: v for k, v in good().items() if k != "length"},
            [("IVL113", 2, "info", "dataset 'ds': no 'length' (line count)")],
        ),
        (
            good(max_dynamic_patch=0),
            [("IVL114", 8, "error", "dataset 'ds': 'max_dynamic_patch' is 0, not a positive integer")],
        ),
        (
            good(max_dynamic_patch=6.0),
            [("IVL114", 8, "error", "dataset 'ds': 'max_dynamic_patch' is 6.0, not a positive integer")],
        ),
        (good(max_dynamic_patch=41), [("IVL115", 8, "warning", "dataset 'ds': 'max_dynamic_patch' is 41 (> 40)")]),
        (
            good(min_dynamic_patch=1),
            [
                (
                    "IVL116",
                    8,
                    "warning",
                    "dataset 'ds': unknown key 'min_dynamic_patch': this is a command-line argument "
                    "of the official trainer, not a per-dataset key",
                )
            ],
        ),
        (
            {**{k: v for k, v in good().items() if k != "root"}, "media_root": "."},
            [
                ("IVL104", 2, "error", "dataset 'ds': missing required key 'root' (found 'media_root': rename it)"),
                (
                    "IVL116",
                    7,
                    "warning",
                    "dataset 'ds': unknown key 'media_root': the official loader reads the media folder from `root`",
                ),
            ],
        ),
        (
            good(annotation="d.json"),
            [("IVL106", 4, "error", "dataset 'ds': annotation 'd.json' does not end in 'jsonl'")],
        ),
    ],
)
def test_entry_rules(tmp_path: Path, entry: dict, want: list) -> None:
    (tmp_path / "d.json").write_text("{}\n")
    entries, found = load(tmp_path, {"ds": entry})
    assert found == want
    has_error = any(sev == "error" for _, _, sev, _ in want)
    assert (entries[0].entry is None) == has_error


def test_missing_files(tmp_path: Path) -> None:
    _, found = load(tmp_path, {"ds": good(annotation="nope.jsonl", root="no_dir")}, files=())
    assert found == [
        (
            "IVL107",
            4,
            "error",
            f"dataset 'ds': annotation file 'nope.jsonl' not found (looked for {tmp_path / 'nope.jsonl'})",
        ),
        ("IVL108", 3, "warning", f"dataset 'ds': root folder 'no_dir' not found (looked for {tmp_path / 'no_dir'})"),
    ]
    _, found = load(tmp_path, {"ds": good(root="s3://bucket/x/")})
    assert found == []


def test_duplicate_names_and_keys(tmp_path: Path) -> None:
    text = (
        '{\n "a": {"root": ".", "annotation": "d.jsonl", "data_augment": false, "repeat_time": 1, "length": 1},\n'
        ' "a": {"root": ".", "root": ".", "annotation": "d.jsonl", "data_augment": true, "repeat_time": 1,\n'
        '       "length": 1}\n}\n'
    )
    entries, found = load(tmp_path, text)
    assert [(c, ln) for c, ln, _, _ in found] == [("IVL103", 3), ("IVL117", 3)]
    assert len(entries) == 1 and entries[0].raw["data_augment"] is True  # the last one, as json.loads keeps


@pytest.mark.parametrize(
    "text,want",
    [
        (
            '{"a": {"root": ".",}}',
            ("IVL101", 1, "error", "invalid JSON: Expecting property name enclosed in double quotes"),
        ),
        ("[1]", ("IVL102", 1, "error", "the meta file is a JSON list, not an object of datasets")),
        ("{}", ("IVL102", 1, "error", "the meta file is an empty object, not an object of datasets")),
        ('{\n"a": 3}', ("IVL102", 2, "error", "dataset 'a' is a int, not an object of settings")),
        (
            "\ufeff{}",
            ("IVL101", 1, "error", "the meta file starts with a UTF-8 byte order mark, which json.loads rejects"),
        ),
    ],
)
def test_unusable_meta(tmp_path: Path, text: str, want: tuple) -> None:
    entries, found = load(tmp_path, text)
    assert found == [want] and entries == []


def test_unreadable_meta(tmp_path: Path) -> None:
    res = load_meta(str(tmp_path / "missing.json"))
    assert [(f.code, f.line) for f in res.findings] == [("IVL101", 0)]
    (tmp_path / "bad.json").write_bytes(b'{\n"a\xff": 1}')
    res = load_meta(str(tmp_path / "bad.json"))
    assert [(f.code, f.line, f.message) for f in res.findings] == [("IVL101", 2, "invalid UTF-8 byte 0xff")]


def test_relative_paths_prefer_the_meta_folder_then_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    meta_dir, cwd = tmp_path / "meta", tmp_path / "cwd"
    (meta_dir / "data").mkdir(parents=True)
    (cwd / "data").mkdir(parents=True)
    (meta_dir / "data" / "both.jsonl").write_text("")
    (cwd / "data" / "both.jsonl").write_text("")
    (cwd / "data" / "cwd_only.jsonl").write_text("")
    monkeypatch.chdir(cwd)
    assert resolve("data/both.jsonl", str(meta_dir)) == str(meta_dir / "data" / "both.jsonl")
    assert resolve("data/cwd_only.jsonl", str(meta_dir)) == "data/cwd_only.jsonl"
    assert resolve("data/none.jsonl", str(meta_dir)) == str(meta_dir / "data" / "none.jsonl")
    assert resolve("/abs/x.jsonl", str(meta_dir)) == "/abs/x.jsonl"
    assert resolve("s3://b/x", str(meta_dir)) == "s3://b/x"
    assert resolve("x.jsonl", "") == "x.jsonl"


def test_declared_length(tmp_path: Path) -> None:
    entries, _ = load(tmp_path, {"ds": good(length=3), "other": good(length="3")})
    assert check_declared_length(entries[0], 3) == []
    (f,) = check_declared_length(entries[0], 2)
    assert (f.code, f.line, f.severity.value, f.message, f.dataset) == (
        "IVL111",
        7,
        "warning",
        "dataset 'ds': 'length' is 3 but the annotation file has 2 lines",
        "ds",
    )
    assert check_declared_length(entries[1], 2) == []  # a string length is IVL112's business


def test_fixture_valid_meta_loads_clean() -> None:
    root = Path(__file__).resolve().parents[2] / "fixtures" / "valid"
    res = load_meta(os.path.join(root, "meta.json"))
    assert {f.code for f in res.findings} <= {"IVL110"}  # repeat_time 0.5 is legal and explained
    assert all(e.entry is not None for e in res.entries)
