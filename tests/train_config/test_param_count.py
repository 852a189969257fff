"""count_parameters (config.json alone) against the real native module tree of tiny checkpoints of every family."""

from __future__ import annotations

import json

import pytest
import torch

from internvl_train.params import count_parameters

COMBOS = [("qwen2", "300m"), ("internlm2", "300m"), ("phi3", "300m"), ("llama", "6b"), ("internlm2", "6b")]
LLM_TARGETS = {
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "qwen2": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "phi3": ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
}


@pytest.fixture(scope="module")
def natives(tmp_path_factory):
    """(config.json dict, native model) per combination, loaded once."""
    from internvl_train.checkpoint.loading import load_pretrained
    from internvl_train.tiny import write_tiny_checkpoint

    out = {}
    for llm, vit in COMBOS:
        d = write_tiny_checkpoint(tmp_path_factory.mktemp("pc") / f"{llm}-{vit}", llm, vit, layers=3, vision_layers=3)
        model, _tok = load_pretrained(d)
        out[(llm, vit)] = (json.loads((d / "config.json").read_text()), model)
    return out


def numel(model, prefix: str) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix))


def lora(model, prefix: str, names: tuple[str, ...], r: int) -> int:
    return sum(
        r * (m.in_features + m.out_features)
        for n, m in model.named_modules()
        if n.startswith(prefix) and isinstance(m, torch.nn.Linear) and n.rsplit(".", 1)[-1] in names
    )


@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: "-".join(c))
def test_totals_per_part_equal_the_module_tree(natives, combo):
    cfg, model = natives[combo]
    count = count_parameters(cfg)
    assert count.parts["vision"].total == numel(model, "model.vision_tower.")
    assert count.parts["mlp"].total == numel(model, "model.multi_modal_projector.")
    assert count.parts["llm"].total == numel(model, "model.language_model.") + numel(model, "lm_head.")
    assert count.base == count.total == count.trainable == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: "-".join(c))
def test_freezing_and_lora(natives, combo):
    cfg, model = natives[combo]
    family = model.config.text_config.model_type
    vit = "model.vision_tower."
    head = numel(model, "lm_head.")
    # the official full fine-tune: ViT frozen, the rest trains
    full = count_parameters(cfg, freeze_backbone=True)
    assert full.trainable == sum(p.numel() for p in model.parameters()) - numel(model, vit)
    # the official LoRA scripts: everything frozen, LoRA r=16 on the LLM
    lo = count_parameters(cfg, freeze_llm=True, freeze_mlp=True, freeze_backbone=True, use_llm_lora=16)
    expected = lora(model, "model.language_model.layers.", LLM_TARGETS[family], 16)
    assert expected > 0 and lo.trainable == lo.lora == expected
    assert lo.total == lo.base + expected
    assert count_parameters(cfg, freeze_backbone=True, use_llm_lora=16, lora_target="all-linear").lora == expected
    # ViT LoRA (q/k/v/projection/fc1/fc2), the head unfrozen, the last two ViT layers unfrozen
    vl = count_parameters(cfg, freeze_llm=True, freeze_mlp=True, freeze_backbone=True, use_backbone_lora=4)
    names = ("q_proj", "k_proj", "v_proj", "projection_layer", "fc1", "fc2")
    assert vl.trainable == lora(model, vit + "encoder.", names, 4)
    lm = count_parameters(cfg, freeze_llm=True, freeze_mlp=True, freeze_backbone=True, unfreeze_lm_head=True)
    assert lm.trainable == head
    layers = count_parameters(cfg, freeze_llm=True, freeze_mlp=True, freeze_backbone=True, unfreeze_vit_layers=-2)
    assert layers.trainable == numel(model, vit + "encoder.layer.1.") + numel(model, vit + "encoder.layer.2.")
    assert count_parameters(cfg, freeze_backbone=True, unfreeze_vit_layers=1).parts["vision"].trainable == (
        layers.trainable
    )


def test_summary_and_bad_input(tmp_path, natives):
    cfg, _ = natives[("qwen2", "300m")]
    count = count_parameters(cfg, freeze_llm=True, freeze_mlp=True, freeze_backbone=True, use_llm_lora=8)
    assert count.summary() == (
        f"trainable {count.lora:,} of {count.total:,} ({100 * count.lora / count.total:.2f}%): "
        f"vision 0, mlp 0, llm {count.lora:,} ({count.lora:,} LoRA)"
    )
    with pytest.raises(ValueError, match="config.json: cannot read the checkpoint config"):
        count_parameters(tmp_path)
    with pytest.raises(ValueError, match="unsupported LLM architecture 'GPT2'"):
        count_parameters({**cfg, "llm_config": {**cfg["llm_config"], "architectures": ["GPT2"]}})


def test_released_lora_counts():
    """The official logs: InternLM2-1.8B r=128 -> 125,829,120 LoRA parameters (the wqkv LoRA of the original is
    fused; natively q/k/v are three Linear layers, so the native count is larger by r x 2 x hidden per layer)."""
    llm = {
        "architectures": ["InternLM2ForCausalLM"],
        "hidden_size": 2048,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "intermediate_size": 8192,
        "num_hidden_layers": 24,
        "vocab_size": 92553,
    }
    vision = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "image_size": 448}
    cfg = {"llm_config": llm, "vision_config": {**vision, "patch_size": 14, "norm_type": "layer_norm"}}
    count = count_parameters(cfg, freeze_llm=True, freeze_mlp=True, freeze_backbone=True, use_llm_lora=128)
    assert count.lora == 125_829_120 + 128 * 2 * 2048 * 24
