"""Token counts: the stats fast path equals SampleBuilder.build_text record by record; exact mixture numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from internvl_data import cli
from internvl_data.models import record_kind
from internvl_data.sample import SampleBuilder, SampleError, TruncatedImageError
from internvl_data.stats_scan import Record, Settings
from internvl_data.stats_tokens import TokenCounter, model_settings, prepare

TURNS = [
    ("Describe the picture in detail.", "The red car is parked next to a tall building."),
    ("  What is shown?  ", " Two apples and one banana on the wooden table. "),
    ("请描述这张图片的内容。", "我们可以看到一只小猫坐在桌子上。"),
    ("Count: 12345, 3.14 and (a), [b]?", "Hello world! It's a test."),
]


def _records() -> list[Record]:
    """Every kind, multi-turn, placeholder present/absent/mid-text, a trailing human turn, an empty answer."""
    out = []
    for k in range(24):
        q, a = TURNS[k % 4]
        convs = [{"from": "human", "value": q}, {"from": "gpt", "value": a * (1 + k % 3)}]
        if k % 5 == 1:
            convs += [{"from": "human", "value": TURNS[(k + 1) % 4][0]}, {"from": "gpt", "value": TURNS[(k + 2) % 4][1]}]
        kind = ("text", "single", "multi", "video")[k % 4]
        if kind == "single":
            if k % 3 == 0:
                convs[0]["value"] = "<image>\n" + q
            elif k % 3 == 1:
                convs[0]["value"] = q + " <image> here"
            obj = {"image": "x.jpg", "conversations": convs}
            tiles = [(1, 3, 7, 13)[k % 4]]
        elif kind == "multi":
            n = 2 + k % 2
            convs[0]["value"] = "".join(f"Image-{i + 1}: <image>\n" for i in range(n)) + q
            obj = {"image": ["x.jpg"] * n, "conversations": convs}
            tiles = [1 + (k + i) % 3 for i in range(n)]
        elif kind == "video":
            convs[0]["value"] = "<video>\n" + q
            obj = {"video": "v.mp4", "conversations": convs}
            tiles = [1] * 3
        else:
            obj, tiles = {"conversations": convs}, []
        out.append(Record(obj, record_kind(obj), tiles))
    out.append(Record({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"},
                                         {"from": "human", "value": "trailing"}]}, "text", []))
    out.append(Record({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": ""}]}, "text", []))
    out.append(Record({"conversations": [{"from": "human", "value": "q"}, {"from": "system", "value": "x"}]},
                      "text", []))
    out.append(Record({"image": ["x.jpg", "x.jpg"], "conversations": [{"from": "human", "value": "<image> only one"},
                                                                      {"from": "gpt", "value": "a"}]}, "multi", [1, 1]))
    return out


def _reference(builder: SampleBuilder, rec: Record) -> tuple:
    """(total, supervised, mismatch, truncated image, error code) straight from SampleBuilder.build_text."""
    try:
        s = builder.build_text(prepare(rec), rec.kind, rec.tiles, np.zeros((0, 3, 1, 1), np.float32),
                               np.zeros(0, np.int64))
    except TruncatedImageError as exc:
        return (exc.details["length"], None, None, True, None)
    except SampleError as exc:
        return (None, None, None, False, exc.code)
    return (s.full_length, int((s.labels != -100).sum()), s.official_mismatch, False, None)


def _fast(c) -> tuple:
    if c.error:
        return (None, None, None, False, c.error.split(":")[0])
    if c.truncated_image:
        return (c.total, None, None, True, None)
    return (c.total, c.supervised, c.mismatch, False, None)


@pytest.mark.parametrize("max_len", [8192, 700, 120])
@pytest.mark.parametrize("pair", ["qwen2/Hermes-2", "llama3/internlm2-chat", "internlm2/internlm2-chat",
                                  "phi3/phi3-chat", "qwen2/internvl2_5", "qwen2/internlm2-chat"])
def test_fast_path_equals_sample_builder(model_dirs: dict[str, Path], pair: str, max_len: int) -> None:
    counter = TokenCounter.load(model_settings(str(model_dirs[pair]), Settings(max_seq_length=max_len)))
    records = _records()
    fast = counter.count_batch(records)
    ref = SampleBuilder(counter.b.codec.tokenizer, counter.b.info, max_seq_length=max_len, num_frames=3)
    assert [_fast(c) for c in fast] == [_reference(ref, r) for r in records]
    if pair == "qwen2/Hermes-2" and max_len == 8192:
        assert counter.pieces.ok and counter.checks_left == 64 - 26  # 26 records took the fast path, verified
        assert [c.image for c in fast[:4]] == [0, 3 * 256 + 2, 4 * 256 + 2 * 2, 3 * 258]


def test_piece_cache_falls_back_when_it_disagrees(model_dirs: dict[str, Path]) -> None:
    counter = TokenCounter.load(model_settings(str(model_dirs["qwen2/Hermes-2"]), Settings()))
    counter.pieces.agrees = lambda text: False  # type: ignore[method-assign]
    records = _records()
    assert counter.count_batch(records) == [counter._slow(r) for r in records]
    assert not counter.pieces.ok and counter.n is counter.b.n
