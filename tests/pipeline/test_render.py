"""`ivl-data render`: exact jsonl, the text view, pixel dumps, errors as data, usage errors."""

import json

import numpy as np
import pytest

from internvl_data.cli.dispatch import main
from internvl_data.pipeline.templates import SYSTEM_INTERNVL2

KEYS = [
    "dataset",
    "index",
    "line",
    "input_ids",
    "labels",
    "attention_mask",
    "num_tiles",
    "image_flags",
    "pixel_values_shape",
    "official_mismatch",
    "truncated",
    "warnings",
    "error",
]


@pytest.fixture(scope="module")
def fixture(tmp_path_factory, model_factory, meta_writer):
    from PIL import Image

    folder = tmp_path_factory.mktemp("render")
    Image.new("RGB", (60, 30), (250, 0, 0)).save(folder / "wide.png")
    records = {
        "chat": [
            {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yes."}]},
            {
                "image": "wide.png",
                "conversations": [{"from": "human", "value": "What?"}, {"from": "gpt", "value": "Red."}],
            },
            {"image": "gone.png", "conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "y"}]},
        ],
        "more": [{"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]}],
    }
    meta = meta_writer(folder, records, folder)
    # tile 28, patch 14, ratio 0.5: 1 token per tile; 60x30 at max 4 -> grid 2x1 + thumbnail
    model = model_factory("Hermes-2", "qwen2", image_size=28, max_dynamic_patch=4)
    return folder, meta, model


def run(capsys, *argv):
    code = main(["render", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_exact_jsonl(capsys, fixture):
    from internvl_data.pipeline.tokenizer import load_tokenizer

    folder, meta, model = fixture
    code, out, _ = run(capsys, meta, "--model", model, "--dataset", "chat", "--limit", "0", "--format", "jsonl")
    assert code == 1  # one record cannot be built
    rows = [json.loads(line) for line in out.splitlines()]
    # a record that cannot be built has no "truncated" or "warnings"
    assert [list(r) for r in rows] == [KEYS] * 2 + [[k for k in KEYS if k not in ("truncated", "warnings")]]
    tok = load_tokenizer(model)
    head = f"<|im_start|>system\n{SYSTEM_INTERNVL2}<|im_end|><|im_start|>user\n"
    for row, (q, a, tiles) in zip(
        rows, [("Hi", "Yes.", []), ("<img>" + "<IMG_CONTEXT>" * 3 + "</img>\nWhat?", "Red.", [3])]
    ):
        prompt = tok(head + q + "<|im_end|><|im_start|>assistant\n").input_ids
        answer = tok(a + "<|im_end|>", add_special_tokens=False).input_ids
        assert row["input_ids"] == prompt + answer
        assert row["labels"] == [-100] * len(prompt) + answer
        assert row["attention_mask"] == [1] * len(prompt + answer)
        assert row["num_tiles"] == tiles
        assert row["image_flags"] == ([1] * 3 if tiles else [0])
        assert row["pixel_values_shape"] == [3 if tiles else 1, 3, 28, 28]
        assert row["official_mismatch"] is False and row["truncated"] is False and row["error"] is None
    assert [r["index"] for r in rows] == [0, 1, 2] and [r["line"] for r in rows] == [1, 2, 3]
    assert rows[2]["error"] == {"code": "IVL301", "message": f"{folder / 'gone.png'}: image not found"}
    assert rows[2]["input_ids"] is None


def test_text_view_marks_trained_spans_and_grids(capsys, fixture):
    _, meta, model = fixture
    code, out, _ = run(capsys, meta, "--model", model, "--index", "1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("== chat[1]  ") and lines[0].endswith("chat.jsonl:2")
    assert "image 1: 60x30 -> grid 2x1 + thumbnail = 3 tile(s)" in lines
    assert out.rstrip().endswith(
        "<|im_start|>user\n<img><IMG_CONTEXT>x3</img>\nWhat?<|im_end|><|im_start|>assistant\n⟦Red.<|im_end|>⟧"
    )


def test_global_index_and_dataset_index(capsys, fixture):
    _, meta, model = fixture
    code, out, _ = run(capsys, meta, "--model", model, "--index", "3", "--format", "jsonl")
    assert code == 0 and json.loads(out)["dataset"] == "more" and json.loads(out)["index"] == 0
    code, out, _ = run(capsys, meta, "--model", model, "--dataset", "more", "--index", "0", "--format", "jsonl")
    assert json.loads(out)["dataset"] == "more"


def test_dump_pixels(capsys, fixture, tmp_path):
    _, meta, model = fixture
    code, _, _ = run(capsys, meta, "--model", model, "--limit", "2", "--format", "jsonl", "--dump-pixels", tmp_path)
    assert code == 0
    arr = np.load(tmp_path / "chat-1.npy")
    assert arr.dtype == np.float32 and arr.shape == (3, 3, 28, 28)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chat-0.npy", "chat-1.npy"]


def test_native_checkpoint_needs_template(capsys, fixture, model_factory):
    _, meta, _ = fixture
    native = model_factory(None, "qwen2", layout="native")
    code, _, err = run(capsys, meta, "--model", native)
    assert code == 2 and "--template NAME" in err and "Traceback" not in err
    code, out, _ = run(capsys, meta, "--model", native, "--template", "Hermes-2", "--format", "jsonl")
    assert code == 0 and json.loads(out)["error"] is None


@pytest.mark.parametrize(
    "args,message",
    [
        (["--dataset", "nope"], "no dataset 'nope'"),
        (["--index", "99"], "--index 99 is out of range"),
        (["--max-seq-length", "0"], "must be at least 1"),
    ],
)
def test_usage_errors(capsys, fixture, args, message):
    _, meta, model = fixture
    code, _, err = run(capsys, meta, "--model", model, *args)
    assert code == 2 and message in err


def test_bad_model_dir(capsys, fixture, tmp_path):
    _, meta, _ = fixture
    code, _, err = run(capsys, meta, "--model", tmp_path)
    assert code == 2 and "config.json" in err and "Traceback" not in err


def test_select_is_lazy_and_maps_indices():
    from internvl_data.pipeline.render import RenderUsageError, select

    class Fake:
        def dataset_sizes(self):
            return {"a": 2, "b": 10**9, "c": 3}

    assert list(select(Fake(), None, None, 3)) == [(0, "a", 0), (1, "a", 1), (2, "b", 0)]
    assert list(select(Fake(), "c", None, 0)) == [(10**9 + 2, "c", 0), (10**9 + 3, "c", 1), (10**9 + 4, "c", 2)]
    assert list(select(Fake(), None, 10**9 + 3, 1)) == [(10**9 + 3, "c", 1)]
    assert list(select(Fake(), "b", 5, 1)) == [(7, "b", 5)]
    with pytest.raises(RenderUsageError, match=r"dataset 'c' has 3 samples \(0..2\)"):
        select(Fake(), "c", 3, 1)


def test_text_view_colour_on_terminals():
    from internvl_data.pipeline.render import COLOR_CLOSE, COLOR_OPEN, decode_marked

    class Tok:
        def decode(self, ids, **kw):
            return "".join(chr(ord("a") + i) for i in ids)

    ids, labels = np.array([0, 1, 9, 9, 2]), np.array([-100, 1, -100, -100, 2])
    assert decode_marked(Tok(), ids, labels, 9) == "a⟦b⟧<IMG_CONTEXT>x2⟦c⟧"
    assert (
        decode_marked(Tok(), ids, labels, 9, color=True)
        == f"a{COLOR_OPEN}b{COLOR_CLOSE}<IMG_CONTEXT>x2{COLOR_OPEN}c{COLOR_CLOSE}"
    )
