"""Issue 14 item 5: `ivl-data import --from sharegpt|openai-messages|llava SRC OUT_DIR`, and validate's hint."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from internvl_data.cli.dispatch import main as ivl_data
from internvl_train.tiny import write_tiny_checkpoint

FIXTURES = Path(__file__).parent / "fixtures" / "import"
CASES = {  # format -> (source, extra args, expected records, system prompts merged: default, internvl2_5)
    "sharegpt": ("sharegpt/mllm_demo.json", [], 3, (2, 1)),
    "openai-messages": ("openai-messages/swift_train.jsonl", [], 5, (1, 0)),
    "llava": ("llava/llava_instruct.json", ["--media-root", str(FIXTURES / "llava" / "images")], 3, (0, 0)),
}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "qwen2", "qwen2", "300m")


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("fmt", list(CASES))
@pytest.mark.parametrize("template", [None, "internvl2_5"])
def test_each_format_converts_validates_clean_and_renders(tmp_path, capsys, ckpt, fmt, template):
    src, extra, n, merged = CASES[fmt]
    out = tmp_path / "out"
    tpl = ["--template", template] if template else []
    assert ivl_data(["import", "--from", fmt, str(FIXTURES / src), str(out), *extra, *tpl]) == 0
    stdout, stderr = capsys.readouterr()
    assert stdout.startswith(f"Found 0 problems (0 errors, 0 warnings, 0 info) in 1 file, {n} records")
    name = Path(src).stem
    meta = json.loads((out / "meta.json").read_text())
    root = str(FIXTURES / (src.split("/")[0] + ("/images" if fmt == "llava" else "")))
    assert meta == {
        name: {"root": root, "annotation": f"{name}.jsonl", "data_augment": False, "repeat_time": 1, "length": n}
    }
    assert len(rows(out / f"{name}.jsonl")) == n
    merged = merged[1] if template else merged[0]
    if merged:
        assert f"; {merged} system prompt(s) merged into the first user turn (" in stderr
    else:
        assert "merged" not in stderr
    assert ivl_data(["render", str(out / "meta.json"), "--model", str(ckpt), "--limit", "0", *tpl]) == 0
    shown = capsys.readouterr().out
    assert len(re.findall(r"^== ", shown, re.MULTILINE)) == n and "MISMATCH" not in shown and "error" not in shown


def test_sharegpt_records_as_written(tmp_path, capsys):
    assert ivl_data(["import", "--from", "sharegpt", str(FIXTURES / "sharegpt/mllm_demo.json"), str(tmp_path)]) == 0
    got = rows(tmp_path / "mllm_demo.jsonl")
    assert got[0]["image"] == "images/red.png"
    assert got[0]["conversations"][0] == {
        "from": "human",
        "value": "<image>\nYou are a careful describer of images.\n\nWho is in the picture?",
    }
    assert got[1]["image"] == ["images/red.png", "images/blue.jpg"]
    assert got[1]["conversations"][0]["value"] == "<image>\n<image>\nWhich one is blue?"
    assert got[2] == {
        "id": 2,
        "conversations": [
            {"from": "human", "value": "Answer briefly.\n\nWhat is 2+2?"},
            {"from": "gpt", "value": "4."},
        ],
    }


def test_openai_blocks_and_system_turn_with_internvl2_5(tmp_path, capsys):
    src = FIXTURES / "openai-messages/swift_train.jsonl"
    assert ivl_data(["import", "--from", "openai-messages", str(src), str(tmp_path), "--template", "internvl2_5"]) == 0
    got = rows(tmp_path / "swift_train.jsonl")
    assert got[0]["conversations"][0] == {"from": "system", "value": "You are a helpful assistant."}
    assert got[1] == {
        "id": 1,
        "image": "images/blue.jpg",
        "conversations": [
            {"from": "human", "value": "<image>\nWhat colour is the background?"},
            {"from": "gpt", "value": "Blue."},
        ],
    }
    assert got[2]["image"] == "images/red.png" and got[3]["video"] == "videos/clip.mp4"
    assert got[3]["conversations"][0]["value"] == "<video>\nWhat happens?"


def test_unconvertible_records_are_reported_with_their_line_and_exit_1(tmp_path, capsys):
    src = tmp_path / "src" / "bad.json"
    src.parent.mkdir()
    shutil.copy(FIXTURES / "sharegpt/images/red.png", src.parent / "a.png")
    records = [
        {"conversations": [{"from": "human", "value": "<image>x"}, {"from": "gpt", "value": "y"}], "images": ["a.png"]},
        {
            "conversations": [{"from": "human", "value": "<image><image>x"}, {"from": "gpt", "value": "y"}],
            "images": ["a.png"],
        },
        {"conversations": [{"from": "human", "value": "x"}, {"from": "function_call", "value": "{}"}]},
        {
            "conversations": [{"from": "human", "value": "<image>x"}, {"from": "gpt", "value": "y"}],
            "images": ["https://x/a.png"],
        },
        "not an object",
    ]
    src.write_text("[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n")
    assert ivl_data(["import", "--from", "sharegpt", str(src), str(tmp_path / "out")]) == 1
    out, err = capsys.readouterr()
    assert err.splitlines()[:4] == [
        f"{src}:3: 2 <image> placeholder(s) but 1 image(s)",
        f"{src}:4: turn 1 is a 'function_call' turn; tool calls have no InternVL equivalent",
        f"{src}:5: image 'https://x/a.png' is a URL; download it and give the local path",
        f"{src}:6: a record must be a JSON object, not str",
    ]
    assert "wrote 1 record(s)" in err and "4 could not be converted" in err
    assert out.startswith("Found 0 problems") and len(rows(tmp_path / "out" / "bad.jsonl")) == 1


def test_usage_errors(tmp_path, capsys):
    assert ivl_data(["import", "--from", "llava", str(tmp_path / "missing.json"), str(tmp_path)]) == 2
    assert "SRC " in capsys.readouterr().err
    (tmp_path / "meta.json").write_text("{}")
    src = FIXTURES / "llava/llava_instruct.json"
    assert ivl_data(["import", "--from", "llava", str(src), str(tmp_path)]) == 2
    assert "meta.json exists; pass --force" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        ivl_data(["import", "--from", "alpaca", str(src), str(tmp_path)])
    assert exc.value.code == 2


def test_validate_names_the_import_command_for_foreign_records(tmp_path, capsys):
    src = tmp_path / "x.jsonl"
    src.write_text(
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
        '{"conversations": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
    )
    assert ivl_data(["validate", "--jsonl", str(src)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(
        "IVL201 `conversations` is missing; it looks like openai-messages data: convert it with "
        "`ivl-data import --from openai-messages SRC OUT_DIR`"
    )
    assert lines[1].endswith(
        "IVL202 turn 0 has no `from`; it looks like sharegpt data: convert it with "
        "`ivl-data import --from sharegpt SRC OUT_DIR`"
    )
