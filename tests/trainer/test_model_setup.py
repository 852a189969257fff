"""build_model: freezing as the official flags mean them, the deliberate differences (frozen subtrees in eval mode,
stochastic depth on the native ViT, unfreeze_lm_head that works, LoRA targets in native names, dtype)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from internvl_train.recipe.model import ModelSetupError, ModelSpec, build_model, lora_targets


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    from internvl_train.tiny import write_tiny_checkpoint

    root = tmp_path_factory.mktemp("setup")
    return {llm: write_tiny_checkpoint(root / llm, llm, "300m") for llm in ("qwen2", "internlm2", "phi3")}


def _trainable(model, prefix):
    params = [p for n, p in model.native.named_parameters() if n.startswith(prefix)]
    return {p.requires_grad for p in params}


def test_official_freezing_and_frozen_vit_in_eval_mode(ckpts):
    model, _ = build_model(ModelSpec(str(ckpts["qwen2"]), freeze_backbone=True, drop_path_rate=0.1))
    model.train()
    assert _trainable(model, "model.vision_tower.") == {False}
    assert _trainable(model, "model.multi_modal_projector.") == {True}
    assert _trainable(model, "model.language_model.") == {True} and _trainable(model, "lm_head.") == {True}
    assert not model.native.model.vision_tower.training  # no dropout / stochastic depth inside a frozen ViT
    assert model.native.model.language_model.training and model.training


def test_unfreeze_vit_layers_and_lm_head(ckpts):
    spec = ModelSpec(str(ckpts["qwen2"]), freeze_llm=True, unfreeze_vit_layers=-1, unfreeze_lm_head=True)
    model, _ = build_model(spec)
    model.train()
    layers = model.native.model.vision_tower.encoder.layer
    assert {p.requires_grad for p in layers[0].parameters()} == {False} and not layers[0].training
    assert {p.requires_grad for p in layers[1].parameters()} == {True} and layers[1].training
    assert _trainable(model, "lm_head.") == {True}  # the official flag is a no-op; here it trains the head
    assert _trainable(model, "model.language_model.") == {False} and not model.native.model.language_model.training


def test_drop_path_acts_in_a_training_vit_only(ckpts):
    model, _ = build_model(ModelSpec(str(ckpts["qwen2"]), freeze_backbone=False, drop_path_rate=0.5))
    vit = model.native.model.vision_tower
    pixels = torch.randn(16, 3, 56, 56)
    model.train()
    torch.manual_seed(0)
    a = vit(pixel_values=pixels).last_hidden_state
    b = vit(pixel_values=pixels).last_hidden_state
    assert not torch.equal(a, b)
    model.eval()
    assert torch.equal(vit(pixel_values=pixels).last_hidden_state, vit(pixel_values=pixels).last_hidden_state)
    layers = vit.encoder.layer
    assert [layer.drop_path_rate for layer in layers] == pytest.approx([0.0, 0.5])  # linspace(0, rate, L)


@pytest.mark.parametrize(
    ("llm", "suffixes"),
    [
        ("internlm2", {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}),
        ("phi3", {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}),
        ("qwen2", {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}),
    ],
)
def test_llm_lora_targets_are_the_official_modules_in_native_names(ckpts, llm, suffixes):
    model, _ = build_model(ModelSpec(str(ckpts[llm]), use_llm_lora=4, freeze_llm=True, freeze_mlp=True))
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all(".lora_A." in n or ".lora_B." in n for n in names)
    wrapped = {n.split(".lora_")[0].rsplit(".", 1)[1] for n in names}
    assert wrapped == suffixes
    assert all(".language_model.layers." in n for n in names)  # not the head, not the ViT
    native, _ = build_model(ModelSpec(str(ckpts[llm]), grad_checkpoint=False))
    assert lora_targets(native.native, ModelSpec("x", use_llm_lora=4, lora_target="all-linear"))[0] == [
        n.split(".lora_")[0].removeprefix("inner.base_model.model.") for n in names if ".lora_A." in n
    ]


def test_lora_with_a_training_projector_and_vit_lora(ckpts):
    spec = ModelSpec(str(ckpts["qwen2"]), use_llm_lora=4, use_backbone_lora=2, freeze_llm=True, freeze_mlp=False)
    model, _ = build_model(spec)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("multi_modal_projector" in n and "modules_to_save" in n for n in names)  # saved whole with the adapter
    vit_a = [p for n, p in model.named_parameters() if ".vision_tower." in n and ".lora_A." in n]
    llm_a = [p for n, p in model.named_parameters() if ".language_model." in n and ".lora_A." in n]
    assert {p.shape[0] for p in vit_a} == {2} and {p.shape[0] for p in llm_a} == {4}
    with pytest.raises(ModelSetupError, match="unfreeze_vit_layers with use_backbone_lora"):
        build_model(ModelSpec(str(ckpts["qwen2"]), use_backbone_lora=2, unfreeze_vit_layers=-1))


def test_dtype_from_config():
    cfg = SimpleNamespace(model_name_or_path="m", bf16=True, deepspeed=None)
    assert ModelSpec.from_config(cfg).dtype == "float32"  # HF autocast keeps float32 master weights
    cfg.deepspeed = "zero2"
    assert ModelSpec.from_config(cfg).dtype == "bfloat16"  # DeepSpeed keeps its own float32 copy


def test_lora_with_gradient_checkpointing_and_frozen_embeddings_gets_gradients(ckpts):
    from tests.trainer.model_helpers import mixed_samples

    path = ckpts["qwen2"]
    spec = ModelSpec(str(path), use_llm_lora=4, freeze_llm=True, freeze_mlp=True, grad_checkpoint=True)
    model, _ = build_model(spec)
    model.train()
    assert all(layer.gradient_checkpointing for layer in model.native.model.language_model.layers)
    samples, bundle = mixed_samples(path, kinds=("text", "single"), max_seq_length=256)
    model(**bundle.collator(samples))["loss"].backward()
    grads = [p.grad for n, p in model.named_parameters() if ".lora_B." in n]
    assert grads and all(g is not None and torch.count_nonzero(g) > 0 for g in grads)
