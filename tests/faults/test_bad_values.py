"""Issue 13 items 7, 10, 11: bad values, output locations and special files are refused before the work."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

META = {"d": {"root": "media", "annotation": "d.jsonl", "data_augment": False, "repeat_time": 1, "length": 1}}
ROW = {"id": 1, "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}


@pytest.fixture()
def meta(tmp_path: Path) -> Path:
    (tmp_path / "media").mkdir()
    (tmp_path / "d.jsonl").write_text(json.dumps(ROW) + "\n")
    (tmp_path / "meta.json").write_text(json.dumps(META))
    return tmp_path / "meta.json"


@pytest.mark.parametrize("flag", ["--select", "--ignore"])
def test_an_unknown_code_is_refused(cli, meta: Path, flag: str) -> None:
    code, out, err = cli("validate", meta, flag, "FOO", "--no-manifest")
    assert (code, out) == (2, "")
    assert err == (
        f"ivl-data validate: error: {flag} FOO: no rule code starts with it; use codes or prefixes from "
        "`ivl-data rules` (IVL201, IVL2)\n"
    )
    assert cli("validate", meta, flag, "IVL2", "--no-manifest", "--media", "off")[0] == 0


def test_cache_pointing_at_a_file(cli, meta: Path, tmp_path: Path) -> None:
    (tmp_path / "c").write_text("")
    code, _, err = cli("validate", meta, "--cache", tmp_path / "c", "--no-manifest")
    assert (
        code == 2
        and err
        == f"ivl-data validate: error: --cache {tmp_path / 'c'}: is a file; name a folder (it is created if missing)\n"
    )
    code, _, err = cli("stats", meta, "--cache", tmp_path / "c")
    assert code == 2 and err.endswith(
        f"--cache {tmp_path / 'c'}: is a file; name a folder (it is created if missing)\n"
    )


def test_negative_batch_size_and_limit(cli, meta: Path) -> None:
    code, out, err = cli("stats", meta, "--global-batch-size", "-5")
    assert (code, out, err) == (2, "", "ivl-data stats: error: --global-batch-size must be >= 1, got -5\n")
    code, out, err = cli("render", meta, "--model", meta.parent, "--limit", "-1")
    assert (code, out) == (2, "")
    assert err == "ivl-data render: error: --limit -1 must be >= 0 (--limit 0 renders everything)\n"


def test_stats_output_checked_before_the_scan(cli, meta: Path, tmp_path: Path) -> None:
    target = tmp_path / "nonexistent" / "out.json"
    code, out, err = cli("stats", meta, "-o", target, "--format", "json")
    assert (code, out) == (2, "")
    assert err == (
        f"ivl-data stats: error: cannot write {target}: folder {target.parent} does not exist; "
        "create it or fix the path\n"
    )
    assert ".tmp" not in err


@pytest.mark.parametrize("kind", ["fifo", "dir"])
def test_stats_names_a_fifo_or_folder_as_such(cli, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "meta.json"
    os.mkfifo(path) if kind == "fifo" else path.mkdir()
    code, out, err = cli("stats", path)
    what = "a FIFO or pipe" if kind == "fifo" else "a folder"
    assert (code, out) == (2, "")
    assert err == (
        f"ivl-data stats: error: {path}: is {what}, not a regular file; save the meta JSON file to a file and "
        "pass its path\n"
    )
