"""Fused layouts, checked on hand-built tensors whose values name their own row."""

from __future__ import annotations

import pytest
import torch

from internvl_train.checkpoint.keymap import KeyMap, QKVShape, fuse_grouped_qkv, split_grouped_qkv
from internvl_train.errors import CheckpointError


def test_internlm2_wqkv_is_grouped_per_kv_head():
    # 4 query heads, 2 KV heads, head_dim 1: rows are [q0 q1 k0 v0 | q2 q3 k1 v1] (§5.6)
    fused = torch.tensor([10.0, 11.0, 20.0, 30.0, 12.0, 13.0, 21.0, 31.0]).unsqueeze(1)
    q, k, v = split_grouped_qkv(fused, QKVShape(num_heads=4, num_kv_heads=2, head_dim=1))
    assert q.flatten().tolist() == [10.0, 11.0, 12.0, 13.0]
    assert k.flatten().tolist() == [20.0, 21.0]
    assert v.flatten().tolist() == [30.0, 31.0]
    assert torch.equal(fuse_grouped_qkv(q, k, v, QKVShape(4, 2, 1)), fused)


def test_internlm2_wqkv_bias_and_head_dim():
    shape = QKVShape(num_heads=6, num_kv_heads=2, head_dim=3)
    fused = torch.arange(2 * (3 + 2) * 3, dtype=torch.float32)
    q, k, v = split_grouped_qkv(fused, shape)
    assert q[:9].tolist() == list(range(9)) and q[9:].tolist() == list(range(15, 24))
    assert k.tolist() == [9.0, 10.0, 11.0, 24.0, 25.0, 26.0]
    assert v.tolist() == [12.0, 13.0, 14.0, 27.0, 28.0, 29.0]
    assert torch.equal(fuse_grouped_qkv(q, k, v, shape), fused)


@pytest.mark.parametrize("kv_heads", [1, 2])
def test_split_wqkv_parts_are_contiguous_and_own_their_memory(kv_heads):
    shape = QKVShape(num_heads=4, num_kv_heads=kv_heads, head_dim=2)
    fused = torch.arange((4 + 2 * kv_heads) * 2 * 3, dtype=torch.float32).reshape(-1, 3)
    for part in split_grouped_qkv(fused, shape):
        assert part.is_contiguous()
        assert part.untyped_storage().data_ptr() != fused.untyped_storage().data_ptr()
        assert part.untyped_storage().nbytes() == part.numel() * part.element_size()


def test_vision_qkv_split_names_and_refuse():
    km = KeyMap("qwen2")
    w = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    out = km.to_native("vision_model.encoder.layers.3.attn.qkv.weight", w)
    assert [n for n, _ in out] == [f"model.vision_tower.encoder.layer.3.attention.{x}_proj.weight" for x in "qkv"]
    assert [t[:, 0].tolist() for _, t in out] == [[0.0, 2.0], [4.0, 6.0], [8.0, 10.0]]
    ((name, back),) = km.to_original(out)
    assert name == "vision_model.encoder.layers.3.attn.qkv.weight" and torch.equal(back, w)


_O, _N = "language_model.model.layers.1.", "model.language_model.layers.1."


@pytest.mark.parametrize(
    ("family", "original", "native"),
    [
        ("internlm2", _O + "feed_forward.w1.weight", _N + "mlp.gate_proj.weight"),
        ("internlm2", _O + "feed_forward.w3.weight", _N + "mlp.up_proj.weight"),
        ("internlm2", _O + "feed_forward.w2.weight", _N + "mlp.down_proj.weight"),
        ("internlm2", _O + "attention_norm.weight", _N + "input_layernorm.weight"),
        ("internlm2", "language_model.output.weight", "lm_head.weight"),
        ("internlm2", "language_model.model.tok_embeddings.weight", "model.language_model.embed_tokens.weight"),
        ("phi3", _O + "self_attn.qkv_proj.weight", _N + "self_attn.qkv_proj.weight"),
        ("phi3", _O + "mlp.gate_up_proj.weight", _N + "mlp.gate_up_proj.weight"),
        ("llama", "language_model.lm_head.weight", "lm_head.weight"),
        ("qwen2", "vision_model.encoder.layers.0.ls1", "model.vision_tower.encoder.layer.0.lambda_1"),
        ("qwen2", "vision_model.embeddings.class_embedding", "model.vision_tower.embeddings.cls_token"),
        ("qwen2", "mlp1.3.bias", "model.multi_modal_projector.linear_2.bias"),
    ],
)
def test_renames_both_ways(family, original, native):
    km = KeyMap(family)
    t = torch.ones(2)
    assert [n for n, _ in km.to_native(original, t)] == [native]
    assert km.original_name(native) == original


def test_unknown_and_lora_tensors_are_refused_and_inv_freq_dropped():
    km = KeyMap("internlm2", QKVShape(4, 2, 8))
    with pytest.raises(CheckpointError, match="unexpected tensor 'foo.weight'"):
        km.to_native("foo.weight", torch.ones(1))
    with pytest.raises(CheckpointError, match="merge the adapters first"):
        km.to_native(
            "language_model.base_model.model.model.layers.0.attention.wqkv.lora_A.default.weight", torch.ones(1)
        )
    assert km.to_native("language_model.model.layers.0.attention.rotary_emb.inv_freq", torch.ones(1)) == []


def test_lora_wrapped_native_model_is_refused_on_save():
    km = KeyMap("qwen2")
    with pytest.raises(CheckpointError, match=r"belongs to a PEFT/LoRA wrapper; merge the adapters first"):
        km.original_name("model.language_model.layers.0.self_attn.q_proj.base_layer.weight")
    with pytest.raises(CheckpointError, match=r"native tensor 'model.extra.weight' has no place in the original"):
        km.original_name("model.extra.weight")
