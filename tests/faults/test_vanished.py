"""Issue 13 item 8: an annotation file deleted, replaced by a folder or made unreadable while a real `ivl-data
validate`, `stats` or `lengths` subprocess reads it. The run is paused at the exact moment by
$IVL_TEST_PAUSE_BEFORE_READ (internvl_data.parallel.pause_before_reading), the file is changed, the run goes on."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.conftest import snapshot, spawn, temporaries, wait_for

CONV = [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]


def _dataset(name: str) -> dict:
    return {"root": ".", "annotation": f"{name}.jsonl", "data_augment": False, "repeat_time": 1, "length": 2}


def two_datasets(folder: Path) -> Path:
    """meta.json with datasets a and b; line 2 of each lacks `conversations` (IVL201)."""
    for name in ("a", "b"):
        rows = [{"id": 1, "conversations": CONV}, {"id": 2}]
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    meta = folder / "meta.json"
    meta.write_text(json.dumps({"a": _dataset("a"), "b": _dataset("b")}, indent=2) + "\n")
    return meta


def vanish(path: Path, how: str) -> str:
    """Make ``path`` unreadable the way ``how`` says; the strerror a reader then gets."""
    if how == "deleted":
        path.unlink()
        return "No such file or directory"
    if how == "folder":
        path.unlink()
        path.mkdir()
        return "Is a directory"
    path.chmod(0)
    return "Permission denied"


HOWS = [
    "deleted",
    "folder",
    pytest.param(
        "chmod-000",
        marks=pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file of mode 000"),
    ),
]


def paused_run(folder: Path, args: list, at: str) -> Callable[[], tuple[int, str, str]]:
    """Start ``ivl-data ARGS`` paused before it reads ``at`` (``DATASET@OFFSET``) and wait until it is there;
    returns ``go_on()``: let it finish, ``(exit code, stdout, stderr)``. The flag file lies beside ``folder``, not in
    it: the lengths tests compare snapshots of ``folder``."""
    flag = folder.with_name(folder.name + ".flag")
    proc = spawn("internvl_data", args, IVL_TEST_PAUSE_BEFORE_READ=f"{at}:{flag}")
    wait_for(flag.exists, proc)

    def go_on() -> tuple[int, str, str]:
        flag.write_text("go")
        out, err = proc.communicate(timeout=120)
        return proc.returncode, out, err

    return go_on


def summary(out: str) -> str:
    """The summary line without its time."""
    return out.splitlines()[-1].rsplit(", in ", 1)[0]


@pytest.mark.parametrize("how", HOWS)
def test_validate_keeps_every_finding_when_an_annotation_vanishes(tmp_path: Path, how: str) -> None:
    meta = two_datasets(tmp_path)
    (tmp_path / "meta.ivl-manifest.json").write_text("{}")  # an earlier run's: must not vouch for this data
    args = ["validate", meta, "--media", "off", "--jobs", "1", "--cache", tmp_path / "c"]
    go_on = paused_run(tmp_path, args, "b@0")
    why = vanish(tmp_path / "b.jsonl", how)
    code, out, err = go_on()
    assert (code, err) == (1, ""), err
    assert out.splitlines()[:-1] == [
        f"{meta}:11:1: IVL107 dataset 'b': annotation file 'b.jsonl' vanished or became unreadable while being "
        f"checked ({tmp_path / 'b.jsonl'}: {why}); none of its lines were checked",
        f"{tmp_path / 'a.jsonl'}:2:1: IVL201 `conversations` is missing",
        "By code: IVL107 x 1, IVL201 x 1",
    ]
    assert summary(out) == "Found 2 problems (2 errors, 0 warnings, 0 info) in 2 files, 2 records"
    assert not (tmp_path / "meta.ivl-manifest.json").exists()
    assert len(list((tmp_path / "c" / "results").iterdir())) == 1  # a's result; nothing cached for b


BLOCK = 4 << 20


def big_dataset(folder: Path, name: str, size: int) -> int:
    """``name``.jsonl of about ``size`` bytes, a record without `conversations` at line 2 and at the last line;
    returns how many lines start in its first 4 MiB block."""
    lines = [json.dumps({"id": 0, "conversations": CONV}), json.dumps({"id": 1})]
    total, text = 0, "x" * 2000
    while total < size:
        lines.append(json.dumps({"id": len(lines), "conversations": [CONV[0], {"from": "gpt", "value": text}]}))
        total += len(lines[-1]) + 1
    lines.append(json.dumps({"id": len(lines)}))
    data = "".join(line + "\n" for line in lines).encode()
    (folder / f"{name}.jsonl").write_bytes(data)
    return 1 + data[: BLOCK - 1].count(b"\n")


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_validate_keeps_the_lines_checked_before_the_file_vanished(tmp_path: Path, jobs: str) -> None:
    """a.jsonl: 5 MiB (in this process) or 9 MiB (two worker processes: the blocks are read in parallel); it is
    deleted before its second block is read. Its first block's findings are kept, and all of b's."""
    meta = two_datasets(tmp_path)
    checked = big_dataset(tmp_path, "a", (5 if jobs == "1" else 9) << 20)
    go_on = paused_run(tmp_path, ["validate", meta, "--media", "off", "--jobs", jobs, "--no-manifest"], f"a@{BLOCK}")
    (tmp_path / "a.jsonl").unlink()
    code, out, err = go_on()
    assert (code, err) == (1, ""), err
    assert out.splitlines()[:-1] == [
        f"{meta}:4:1: IVL107 dataset 'a': annotation file 'a.jsonl' vanished or became unreadable while being "
        f"checked ({tmp_path / 'a.jsonl'}: No such file or directory); only its first {checked:,} lines were checked",
        f"{tmp_path / 'a.jsonl'}:2:1: IVL201 `conversations` is missing",
        f"{tmp_path / 'b.jsonl'}:2:1: IVL201 `conversations` is missing",
        "By code: IVL201 x 2, IVL107 x 1",
    ]
    assert summary(out) == f"Found 3 problems (3 errors, 0 warnings, 0 info) in 2 files, {checked + 2} records"


@pytest.mark.parametrize("gone", ["meta.json", "a.jsonl"])
def test_validate_a_file_gone_before_the_manifest_is_written(tmp_path: Path, gone: str) -> None:
    """Clean data; the meta file, or an annotation file already checked, is deleted before the last file is read:
    the manifest cannot hash it, the data did not pass (exit 1, no manifest), the finding says so."""
    meta = two_datasets(tmp_path)
    for name in ("a", "b"):
        (tmp_path / f"{name}.jsonl").write_text(json.dumps({"id": 1, "conversations": CONV}) + "\n")
    meta.write_text(meta.read_text().replace('"length": 2', '"length": 1'))
    go_on = paused_run(tmp_path, ["validate", meta, "--media", "off", "--jobs", "1"], "b@0")
    (tmp_path / gone).unlink()
    code, out, err = go_on()
    assert (code, err) == (1, ""), err
    first = (
        f"{meta}:1:1: IVL101 the meta file vanished or became unreadable after it was checked, before the manifest "
        "was written (No such file or directory)"
        if gone == "meta.json"
        else f"{meta}:4:1: IVL107 dataset 'a': annotation file 'a.jsonl' vanished or became unreadable after it was "
        f"checked, before the manifest was written ({tmp_path / 'a.jsonl'}: No such file or directory)"
    )
    assert out.splitlines()[:-1] == [first, f"By code: {first.split()[1]} x 1"]
    assert summary(out) == "Found 1 problem (1 error, 0 warnings, 0 info) in 2 files, 2 records"
    assert not (tmp_path / "meta.ivl-manifest.json").exists()


def test_validate_a_media_file_that_vanishes_is_a_finding(tmp_path: Path) -> None:
    """A media file deleted after the run started is what it would be before: IVL301 at its record (exit 1)."""
    from PIL import Image

    meta = two_datasets(tmp_path)
    Image.new("RGB", (32, 32)).save(tmp_path / "img.png")
    row = {"id": 1, "image": "img.png", "conversations": [{"from": "human", "value": "<image>\nhi"}, CONV[1]]}
    (tmp_path / "b.jsonl").write_text(json.dumps(row) + "\n")
    meta.write_text(meta.read_text().replace('"length": 2\n  }\n}', '"length": 1\n  }\n}'))
    go_on = paused_run(tmp_path, ["validate", meta, "--jobs", "1"], "b@0")
    (tmp_path / "img.png").unlink()
    code, out, err = go_on()
    assert (code, err) == (1, ""), err
    assert out.splitlines()[:-1] == [
        f"{tmp_path / 'a.jsonl'}:2:1: IVL201 `conversations` is missing",
        f"{tmp_path / 'b.jsonl'}:1:1: IVL301 'img.png' does not exist (looked for {tmp_path / 'img.png'})",
        "By code: IVL201 x 1, IVL301 x 1",
    ]
    assert not (tmp_path / "meta.ivl-manifest.json").exists()


# --------------------------------------------------------------------------------------------------------- stats


def clean_datasets(folder: Path) -> Path:
    """meta.json with datasets a and b of two clean records each."""
    meta = two_datasets(folder)
    for name in ("a", "b"):
        rows = [{"id": i, "conversations": CONV} for i in (1, 2)]
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return meta


@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("how", HOWS)
def test_stats_counts_the_others_when_an_annotation_vanishes(tmp_path: Path, how: str, jobs: str) -> None:
    meta = clean_datasets(tmp_path)
    go_on = paused_run(tmp_path, ["stats", meta, "--format", "json", "--no-cache", "--jobs", jobs], "b@0")
    why = vanish(tmp_path / "b.jsonl", how)
    code, out, err = go_on()
    assert code == 1, err
    assert err == (
        f"{tmp_path / 'b.jsonl'}: vanished or became unreadable while stats read it ({why}); dataset 'b' is left out "
        "of every number\n"
    )
    rows = {r["dataset"]: r for r in json.loads(out)["summary"]}
    assert list(rows) == ["a", "(mixture)"]
    assert rows["a"]["effective_records"] == rows["(mixture)"]["effective_records"] == 2
    assert rows["a"]["share"] == 1.0


# ------------------------------------------------------------------------------------------------------- lengths


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers.tokenizers import write_model_dir

    return write_model_dir(tmp_path_factory.mktemp("model") / "m", "Hermes-2", "qwen2")


def lengths_args(meta: Path, model: Path, jobs: str = "1") -> list:
    return ["lengths", meta, "--model", model, "--in-place", "--no-cache", "--jobs", jobs]


@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("how", HOWS)
def test_lengths_writes_nothing_when_an_annotation_vanishes(tmp_path: Path, model: Path, how: str, jobs: str) -> None:
    meta = clean_datasets(tmp_path)
    go_on = paused_run(tmp_path, lengths_args(meta, model, jobs), "b@0")
    why = vanish(tmp_path / "b.jsonl", how)
    before = snapshot(tmp_path)
    code, out, err = go_on()
    assert (code, out) == (2, ""), err
    assert err == (
        f"ivl-data lengths: error: {tmp_path / 'b.jsonl'} vanished or became unreadable while lengths ran ({why}); "
        "nothing was written; run again\n"
    )
    assert snapshot(tmp_path) == before and temporaries(tmp_path) == [] and not list(tmp_path.glob("*.bak"))


@pytest.mark.parametrize("changed", ["a.jsonl", "meta.json"])
def test_lengths_never_replaces_a_file_that_changed_after_it_was_read(
    tmp_path: Path, model: Path, changed: str
) -> None:
    """a.jsonl (read already) or the meta file is rewritten by the user while b is read: writing a.jsonl from what
    was read would throw the user's edit away. Nothing is written."""
    meta = clean_datasets(tmp_path)
    go_on = paused_run(tmp_path, lengths_args(meta, model), "b@0")
    with open(tmp_path / changed, "a") as fh:
        fh.write("\n" if changed == "meta.json" else json.dumps({"id": 3, "conversations": CONV}) + "\n")
    before = snapshot(tmp_path)
    code, out, err = go_on()
    assert (code, out) == (2, ""), err
    assert err == (
        f"ivl-data lengths: error: {tmp_path / changed} changed while lengths ran; nothing was written; run again\n"
    )
    assert snapshot(tmp_path) == before and temporaries(tmp_path) == [] and not list(tmp_path.glob("*.bak"))


def test_lengths_a_change_between_two_renames_is_named(tmp_path: Path, model: Path) -> None:
    """b.jsonl is rewritten by the user after a.jsonl was checked and while its new version waits to be renamed
    in: a.jsonl is replaced (its .bak holds the original), b.jsonl and the meta file are left as they are."""
    meta = clean_datasets(tmp_path)
    original = snapshot(tmp_path)
    proc = spawn("internvl_data", lengths_args(meta, model), IVL_LENGTHS_PAUSE_BEFORE_RENAME="3")
    wait_for(lambda: [p for p in tmp_path.iterdir() if p.name.startswith(".a.jsonl.")], proc)
    (tmp_path / "b.jsonl").write_text(json.dumps({"id": 9, "conversations": CONV}) + "\n")
    out, err = proc.communicate(timeout=120)
    assert (proc.returncode, out) == (2, ""), err
    assert err == (
        f"ivl-data lengths: error: {tmp_path / 'b.jsonl'} changed while lengths ran; already rewritten: "
        f"{tmp_path / 'a.jsonl'}; the others were left as they are; run again\n"
    )
    assert (tmp_path / "a.jsonl.bak").read_bytes() == original["a.jsonl"]
    assert b'"length"' in (tmp_path / "a.jsonl").read_bytes()
    assert (tmp_path / "meta.json").read_bytes() == original["meta.json"]
    assert (tmp_path / "b.jsonl").read_text() == json.dumps({"id": 9, "conversations": CONV}) + "\n"
    assert temporaries(tmp_path) == []
