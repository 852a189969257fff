"""`ivl-data lengths`: only the `length` key and the meta lengths change; a killed run leaves the original intact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from internvl_data.cli import dispatch as cli
from internvl_data.stats.lengths import EditError, set_dataset_keys, set_line_length

QA = [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]


def test_line_edits_are_byte_exact() -> None:
    assert set_line_length(b'{"a": 1, "b": [1,{"c":"}\\""}]}', 42) == b'{"a": 1, "b": [1,{"c":"}\\""}], "length": 42}'
    assert set_line_length(b'{"a":1,"b":2}', 7) == b'{"a":1,"b":2,"length":7}'
    assert set_line_length(b'{"length": "12", "x": {"length": 3}}', 5) == b'{"length": 5, "x": {"length": 3}}'
    assert set_line_length(b'{"a": 1}\r', 3) == b'{"a": 1, "length": 3}\r'
    assert set_line_length(b'{"\\u006cength": 2.5 , "z":0}', 9) == b'{"\\u006cength": 9 , "z":0}'
    assert set_line_length(b"{}", 1) == b'{"length": 1}'
    with pytest.raises(EditError):
        set_line_length(b"[1, 2]", 3)


def test_meta_edits_keep_layout() -> None:
    meta = b'{\n  "a": {\n    "root": "r",\n    "annotation": "a.jsonl"\n  },\n  "b": {"root": "x", "length": 9}\n}\n'
    out = set_dataset_keys(meta, {"a": {"length": b"3"}, "b": {"length": b"4"}})
    assert out == (
        b'{\n  "a": {\n    "root": "r",\n    "annotation": "a.jsonl",\n    "length": 3\n  },\n'
        b'  "b": {"root": "x", "length": 4}\n}\n'
    )


@pytest.fixture()
def data(tmp_path: Path, media_dir: Path) -> Path:
    """A meta file whose annotation lines use several JSON styles, one line is broken, no final newline."""
    lines = [
        json.dumps({"id": 1, "conversations": QA}),
        json.dumps({"id": 2, "image": "a.jpg", "conversations": QA}, separators=(",", ":")),
        '{"conversations": [{"from": "human", "value": "caf\\u00e9 \\"q\\""}, {"from": "gpt", "value": "a"}],'
        '  "length": "old",   "extra": [1.50, 2e3, null]}',
        "{broken json",
        json.dumps({"id": 5, "video": "v.mp4", "conversations": QA}, ensure_ascii=False) + "\r",
    ]
    (tmp_path / "d.jsonl").write_bytes("\n".join(lines).encode())
    (tmp_path / "meta.json").write_text(
        f'{{\n    "d": {{"root": "{media_dir}", "annotation": "d.jsonl",\n          "data_augment": false, "repeat_time": 1}}\n}}\n'
    )
    return tmp_path


def _expected_lines(original: bytes, lengths: list[int | None]) -> list[bytes]:
    return [raw if n is None else set_line_length(raw, n) for raw, n in zip(original.split(b"\n"), lengths)]


def test_in_place_changes_only_lengths(
    data: Path, model_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ann, meta = data / "d.jsonl", data / "meta.json"
    before, meta_before = ann.read_bytes(), meta.read_bytes()
    code = cli.main(
        [
            "lengths",
            str(meta),
            "--model",
            str(model_dirs["qwen2/Hermes-2"]),
            "--in-place",
            "--no-cache",
            "--jobs",
            "1",
            "--num-frames",
            "2",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1  # the broken line is reported and left as it is
    assert f"{ann}:4: not valid JSON (see `ivl-data validate`); left unchanged" in err
    after = ann.read_bytes()
    # text only; 1,794 image tokens (800x600: 7 tiles) + 52; the `extra` line; broken; 2 video frames + text
    assert after.split(b"\n") == _expected_lines(before, [51, 1846, 58, None, 587])
    assert not after.endswith(b"\n")  # the missing final newline stays missing
    assert ann.with_name("d.jsonl.bak").read_bytes() == before
    assert meta.read_bytes() == meta_before.replace(b'"repeat_time": 1}', b'"repeat_time": 1, "length": 5}')
    assert meta.with_name("meta.json.bak").read_bytes() == meta_before
    assert oct(ann.stat().st_mode & 0o777) == oct(ann.with_name("d.jsonl.bak").stat().st_mode & 0o777)
    from internvl_data.stats.worker import _STATE

    assert _STATE["sizes"].new == {}  # lengths never saves the media cache, so it keeps no new entries (--jobs 1)


def test_lengths_agree_with_stats(data: Path, model_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    ann = data / "d.jsonl"
    lines = ann.read_bytes().split(b"\n")
    ann.write_bytes(b"\n".join(lines[:3]) + b"\n")  # the good lines only
    model = str(model_dirs["llama3/internlm2-chat"])
    assert (
        cli.main(
            [
                "lengths",
                str(data / "meta.json"),
                "--model",
                model,
                "--in-place",
                "--no-backup",
                "--no-cache",
                "--jobs",
                "2",
            ]
        )
        == 0
    )
    assert not ann.with_name("d.jsonl.bak").exists()
    written = [json.loads(line)["length"] for line in ann.read_text().splitlines()]
    capsys.readouterr()
    assert cli.main(["stats", str(data / "meta.json"), "--model", model, "--format", "json", "--no-cache"]) == 0
    row = json.loads(capsys.readouterr().out)["summary"][0]
    assert (sum(written), max(written), len(written)) == (row["tokens_total"], row["total_tokens_max"], 3)


def test_output_dir_leaves_originals(
    data: Path, model_dirs: dict[str, Path], tmp_path_factory, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path_factory.mktemp("out")
    ann, meta = data / "d.jsonl", data / "meta.json"
    before, meta_before = ann.read_bytes(), meta.read_bytes()
    code = cli.main(
        [
            "lengths",
            str(meta),
            "--model",
            str(model_dirs["qwen2/Hermes-2"]),
            "--output-dir",
            str(out),
            "--no-cache",
            "--num-frames",
            "2",
        ]
    )
    assert code == 1
    assert ann.read_bytes() == before and meta.read_bytes() == meta_before
    assert sorted(p.name for p in out.iterdir()) == ["d.jsonl", "meta.json"]
    assert (out / "d.jsonl").read_bytes().split(b"\n") == _expected_lines(before, [51, 1846, 58, None, 587])
    new_meta = json.loads((out / "meta.json").read_text())
    assert new_meta["d"]["annotation"] == "d.jsonl" and new_meta["d"]["length"] == 5
    capsys.readouterr()


def test_usage_errors(data: Path, model_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    model = str(model_dirs["qwen2/Hermes-2"])
    assert cli.main(["lengths", str(data / "meta.json"), "--model", model]) == 2
    assert "pass either --in-place" in capsys.readouterr().err
    assert cli.main(["lengths", str(data / "meta.json"), "--model", model, "--output-dir", "x", "--no-backup"]) == 2
    assert "--no-backup only applies to --in-place" in capsys.readouterr().err
    assert cli.main(["lengths", str(data / "meta.json"), "--model", str(data), "--in-place"]) == 2
    assert "config.json: not found" in capsys.readouterr().err


def test_killed_mid_write_leaves_the_original_intact(data: Path, model_dirs: dict[str, Path]) -> None:
    ann, meta = data / "d.jsonl", data / "meta.json"
    before, meta_before = ann.read_bytes(), meta.read_bytes()
    env = dict(os.environ, IVL_LENGTHS_PAUSE_BEFORE_RENAME="60")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "internvl_data",
            "lengths",
            str(meta),
            "--model",
            str(model_dirs["qwen2/Hermes-2"]),
            "--in-place",
            "--no-cache",
            "--jobs",
            "1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        tmp = []
        while not tmp and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            tmp = [p for p in data.iterdir() if p.name.startswith(".d.jsonl.") and p.stat().st_size > 0]
        assert tmp, "the new file was never written"
        assert tmp[0].read_bytes().split(b"\n")[0] == set_line_length(before.split(b"\n")[0], 51)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert ann.read_bytes() == before and meta.read_bytes() == meta_before
    assert not ann.with_name("d.jsonl.bak").exists()
