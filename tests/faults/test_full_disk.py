"""Issue 13 items 5 and 7: a full file system (a 2 MB tmpfs) during `lengths --in-place` and `stats -o`: the
original is byte-identical, no partial temporary is left, and the message names the user's path (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.faults.conftest import run, snapshot, temporaries


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers.tokenizers import write_model_dir

    return write_model_dir(tmp_path_factory.mktemp("model") / "m", "Hermes-2", "qwen2")


def dataset(n: int) -> dict[str, bytes]:
    rows = [
        {"id": i, "conversations": [{"from": "human", "value": f"q {i} " * 30}, {"from": "gpt", "value": "a " * 40}]}
        for i in range(n)
    ]
    meta = {"d": {"root": ".", "annotation": "d.jsonl", "data_augment": False, "repeat_time": 1, "length": n}}
    return {"meta.json": json.dumps(meta).encode(), "d.jsonl": "".join(json.dumps(r) + "\n" for r in rows).encode()}


def test_lengths_on_a_full_disk_keeps_the_original_and_leaves_nothing(mount_tmpfs, model: Path) -> None:
    disk = mount_tmpfs("disk", size="2m", files=dataset(4500))  # ~1.2 MB: the new copy cannot fit beside it
    before = snapshot(disk)
    code, _, err = run(
        "internvl_data", ["lengths", disk / "meta.json", "--model", model, "--in-place", "--jobs", "1", "--no-cache"]
    )
    assert code == 2 and "Traceback" not in err
    assert err.startswith("ivl-data lengths: error: cannot write") and "No space left on device; free some space" in err
    assert ".ivl-tmp" not in err and len(err.strip().splitlines()) == 1
    assert snapshot(disk) == before and temporaries(disk) == [] and not (disk / "d.jsonl.bak").exists()


def test_stats_output_on_a_full_disk(mount_tmpfs, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name, raw in dataset(50).items():
        (data / name).write_bytes(raw)
    disk = mount_tmpfs("disk", size="64k", files={"filler": b"x" * 60_000})
    code, out, err = run("internvl_data", ["stats", data / "meta.json", "--format", "json", "-o", disk / "out.json"])
    assert (code, out) == (2, "")
    assert err == (
        f"ivl-data stats: error: cannot write {disk / 'out.json'}: No space left on device; free some space or "
        "write elsewhere\n"
    )
    assert temporaries(disk) == [] and sorted(p.name for p in disk.iterdir()) == ["filler"]
