"""Issue 13 items 2, 6, 7, 8, 11 for `ivl-data validate`: read-only data, modes, output checks, exit codes, FIFOs."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from tests.faults.conftest import temporaries

META = {"d": {"root": "media", "annotation": "d.jsonl", "data_augment": False, "repeat_time": 1, "length": 2}}
CONV = [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]
ROWS = [{"id": 1, "conversations": CONV}, {"id": 2}]


def dataset_files() -> dict[str, bytes]:
    return {
        "meta.json": json.dumps(META).encode(),
        "d.jsonl": b"".join(json.dumps(r).encode() + b"\n" for r in ROWS),
        "media/.keep": b"",
    }


def test_read_only_data_is_validated_and_says_no_manifest(cli, mount_tmpfs) -> None:
    ro = mount_tmpfs("ro", files=dataset_files(), ro=True)
    code, out, err = cli("validate", ro / "meta.json", "--media", "off", "--no-progress")
    assert code == 1, err
    assert f"{ro / 'd.jsonl'}:2:" in out and "Found " in out
    assert err == (
        f"ivl-data validate: note: no manifest written (cannot write {ro / 'meta.ivl-manifest.json'}: {ro} is on a "
        "read-only file system; write elsewhere); pass --manifest PATH to write it elsewhere, or --no-manifest\n"
    )


def test_an_explicit_manifest_on_a_read_only_folder_fails_before_the_work(cli, mount_tmpfs, tmp_path) -> None:
    ro = mount_tmpfs("ro", files=dataset_files(), ro=True)
    code, out, err = cli("validate", ro / "meta.json", "--manifest", ro / "m.json", "--media", "off")
    assert (code, out) == (2, "")
    assert err == (
        f"ivl-data validate: error: cannot write {ro / 'm.json'}: {ro} is on a read-only file system; write elsewhere\n"
    )


def test_output_to_a_missing_folder_fails_before_the_work(cli, tmp_path: Path) -> None:
    for rel, data in dataset_files().items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    target = tmp_path / "nope" / "report.json"
    code, out, err = cli("validate", tmp_path / "meta.json", "-o", target, "--no-manifest")
    assert (code, out) == (2, "")
    assert err == (
        f"ivl-data validate: error: cannot write {target}: folder {target.parent} does not exist; "
        "create it or fix the path\n"
    )


def test_reports_and_manifest_follow_the_umask(cli, tmp_path: Path) -> None:
    for rel, data in dataset_files().items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    (tmp_path / "d.jsonl").write_bytes(json.dumps(ROWS[0]).encode() + b"\n")
    old = os.umask(0o022)
    try:
        (tmp_path / "meta.json").write_text(json.dumps({"d": {**META["d"], "length": 1}}))
        code, _, err = cli("validate", tmp_path / "meta.json", "--media", "off", "-o", tmp_path / "r.txt")
    finally:
        os.umask(old)
    assert code == 0, err
    for name in ("r.txt", "meta.ivl-manifest.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    assert temporaries(tmp_path) == []


@pytest.mark.parametrize(
    "text, code",
    [
        ("not json {", 1),
        ("\ufeff" + json.dumps(META), 1),
        ("{}", 1),
        ('{"d": [1]}', 1),
    ],
)
def test_a_meta_file_that_was_read_and_is_wrong_exits_1(cli, tmp_path: Path, text: str, code: int) -> None:
    (tmp_path / "meta.json").write_text(text, encoding="utf-8")
    got, out, err = cli("validate", tmp_path / "meta.json", "--media", "off")
    assert got == code and f"{tmp_path / 'meta.json'}:1" in out and "Found 1 problem (1 error" in out


def test_a_fifo_is_refused_instead_of_hanging(cli, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    done: list[tuple[int, str, str]] = []
    t = threading.Thread(target=lambda: done.append(cli("validate", fifo)), daemon=True)
    t.start()
    t.join(30)
    if not done:  # unblock the reader so the test process can end, then fail
        with open(fifo, "wb"):
            pass
        pytest.fail("validate blocked on a FIFO")
    code, out, err = done[0]
    assert (code, out) == (2, "")
    assert err == (
        f"ivl-data validate: error: {fifo}: is a FIFO or pipe, not a regular file; save the meta JSON file to a "
        "file and pass its path\n"
    )
