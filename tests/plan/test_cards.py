"""Architecture cards of the seven released sizes: accepted by the checkpoint code, the published sizes."""

from __future__ import annotations

import pytest

from internvl_train.checkpoint.configmap import to_native
from internvl_train.plan.cards import SIZES, card_config, size_of_name
from internvl_train.plan.shapes import lora_targets, shapes_from_config

# Parameter counts of the native model built from each card (the model cards publish 0.9B, 2.2B, 4.2B, 8.1B,
# 25.5B, 40.1B, 76.3B).
PARAMS = {
    "1b": 938_158_976,
    "2b": 2_205_754_368,
    "4b": 4_146_855_936,
    "8b": 8_075_365_376,
    "26b": 25_514_186_112,
    "40b": 40_068_583_808,
    "76b": 76_262_358_400,
}
VIT = {"1b": 304_012_288, "26b": 5_536_496_000}


@pytest.mark.parametrize("size", list(SIZES))
def test_card_builds_native_model(size):
    cfg = card_config(size)
    native = to_native(cfg, image_token_id=0, where=size)  # the converter accepts the card as a config.json
    assert native.text_config.num_hidden_layers == SIZES[size][1].layers
    shapes = shapes_from_config(cfg, size)
    assert shapes.numel() == PARAMS[size]
    vit = VIT["26b" if SIZES[size][0].big else "1b"]
    assert shapes.numel("vision") == vit
    assert shapes.dims.tokens_per_tile == 256 and shapes.dims.patches == 1024


def test_lora_count_matches_official_log_where_layout_agrees():
    # Phi-3 keeps its fused qkv_proj/gate_up_proj natively: r=16 on its 32 layers
    # = 16 x 32 x ((3072 + 9216) + (3072 + 3072) + (3072 + 16384) + (8192 + 3072))
    shapes = shapes_from_config(card_config("4b"))
    targets = lora_targets(shapes, "llm")
    assert len(targets) == 4 * 32
    assert 16 * sum(t.in_features + t.out_features for t in targets) == 16 * 32 * (12288 + 6144 + 19456 + 11264)
    # InternLM2 splits wqkv into q/k/v natively: three A matrices instead of one (41.9M, not the official 37.7M)
    t8 = lora_targets(shapes_from_config(card_config("8b")), "llm")
    assert 16 * sum(t.in_features + t.out_features for t in t8) == 41_943_040


@pytest.mark.parametrize(
    "text,size",
    [
        ("./pretrained/InternVL2-8B", "8b"),
        ("./pretrained/InternVL2-Llama3-76B/", "76b"),
        ("internvl2-26b-lora", "26b"),
        ("1b", "1b"),
        ("./pretrained/my-model", None),
    ],
)
def test_size_of_name(text, size):
    assert size_of_name(text) == size


@pytest.mark.parametrize("size", ["1b", "4b", "8b", "26b"])
@pytest.mark.parametrize(
    "flags",
    [
        dict(freeze_backbone=True),
        dict(freeze_backbone=True, freeze_llm=True, freeze_mlp=True, use_llm_lora=16),
        dict(freeze_backbone=True, unfreeze_vit_layers=-4, freeze_llm=True),
    ],
)
def test_tensor_layout_agrees_with_the_parameter_counter(size, flags):
    from internvl_train.params import count_parameters
    from internvl_train.plan.states import Training, tensors

    counted = count_parameters(card_config(size), **flags)
    ts = tensors(shapes_from_config(card_config(size)), Training(**flags), zero_stage=1)
    assert sum(t.numel for t in ts if t.trainable) == counted.trainable
    assert sum(t.numel for t in ts) == counted.total
