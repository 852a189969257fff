"""Property: the count-only token path equals SampleBuilder.build_text on arbitrary conversations.

Random messages mix words, whitespace runs, CJK, punctuation, the tokenizers' special tokens and image
placeholders, at random lengths around SHORT and random max_seq_length values, so span boundaries fall inside
long and short pieces, next to special tokens and at truncation points.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from internvl_data.formats.models import record_kind
from internvl_data.stats.tokens import TokenCounter, model_settings
from internvl_data.stats.worker import Record, Settings
from tests.stats.test_stats_tokens import _fast, _reference

PIECES = [
    "the",
    " cat",
    "  ",
    "\n",
    "\n\n",
    "\t",
    "猫",
    "坐在桌子上",
    "!",
    "?",
    ".",
    ",",
    "'s",
    "123",
    " 4.5",
    "<|im_end|>",
    "<|im_start|>",
    "<|endoftext|>",
    "</s>",
    "<s>",
    "<|end|>",
    "<|user|>",
    "<img>",
    "</img>",
    "<image>",
    " <image> ",
    "<IMG_CONTEXT>",
    "Frame-1: ",
    "x" * 40,
    " word" * 30,
]
MESSAGE = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)


@st.composite
def records(draw: st.DrawFn) -> Record:
    turns = draw(st.integers(1, 3))
    convs = []
    for _ in range(turns):
        convs += [{"from": "human", "value": draw(MESSAGE)}, {"from": "gpt", "value": draw(MESSAGE)}]
    kind = draw(st.sampled_from(["text", "single", "multi", "video"]))
    if kind == "video":
        if draw(st.booleans()):
            convs[0]["value"] = "<video>\n" + convs[0]["value"]
        obj, tiles = {"video": "v.mp4", "conversations": convs}, [1] * 3
    elif kind == "text":
        obj, tiles = {"conversations": convs}, []
    elif kind == "single":
        obj, tiles = {"image": "x.jpg", "conversations": convs}, [draw(st.integers(1, 4))]
    else:
        n = draw(st.integers(2, 3))
        convs[0]["value"] = "<image>\n" * n + convs[0]["value"]
        obj, tiles = (
            {"image": ["x.jpg"] * n, "conversations": convs},
            draw(st.lists(st.integers(1, 3), min_size=n, max_size=n)),
        )
    return Record(obj, record_kind(obj), tiles)


@pytest.mark.parametrize("checked", [False, True], ids=["count-only", "checked"])
@pytest.mark.parametrize(
    "pair", ["qwen2/Hermes-2", "internlm2/internlm2-chat", "phi3/phi3-chat", "llama3/internlm2-chat"]
)
def test_count_only_path_equals_sample_builder(model_dirs: dict[str, Path], pair: str, checked: bool) -> None:
    """Count-only: the path every record after the first 64 takes. Checked: the exact piece path, compared with
    the whole-text encoding and the count-only path (a difference would switch them off: asserted below)."""
    from internvl_data.pipeline.sample import SampleBuilder

    counters: dict[int, TokenCounter] = {}

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(rec=records(), max_len=st.sampled_from([64, 300, 700, 1100, 8192]))
    def check(rec: Record, max_len: int) -> None:
        counter = counters.get(max_len)
        if counter is None:
            counter = counters[max_len] = TokenCounter.load(
                model_settings(str(model_dirs[pair]), Settings(max_seq_length=max_len))
            )
        counter.checks_left = 10**6 if checked else 0
        got = counter.count_batch([rec])
        ref = SampleBuilder(counter.b.codec.tokenizer, counter.b.info, max_seq_length=max_len, num_frames=3)
        assert [_fast(c) for c in got] == [_reference(ref, rec)]
        if not got[0].error:  # every field, not only those the reference has
            assert got == [counter._slow(rec)]
        assert counter.measured and counter.pieces.ok

    check()
