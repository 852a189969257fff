"""The training forward computes the official loss (docs/official-behaviour.md §5.1) on a text-only + single + multi-image + video
batch, to 1e-5 relative in float32, for every LLM family."""

from __future__ import annotations

import pytest
import torch

from internvl_train.recipe.model import ImageTokenMismatch, ModelSpec, build_model, causal_lm_loss
from internvl_train.tiny import write_tiny_checkpoint
from tests.trainer.model_helpers import mixed_samples, reference_loss


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    return {
        llm: write_tiny_checkpoint(root / llm, llm, "300m" if llm != "llama" else "6b", max_position_embeddings=4096)
        for llm in ("qwen2", "internlm2", "phi3", "llama")
    }


@pytest.mark.parametrize("llm", ["qwen2", "internlm2", "phi3", "llama"])
def test_loss_equals_reference_forward(ckpts, llm):
    path = ckpts[llm]
    samples, bundle = mixed_samples(path)
    assert [s.kind for s in samples] == ["text", "single", "multi", "video"]
    model, tok = build_model(ModelSpec(str(path), freeze_backbone=False, grad_checkpoint=False))
    batch = bundle.collator(samples)
    assert int((batch["image_flags"] == 0).sum()) == 1  # the text-only sample's dummy tile
    ctx = tok.get_vocab()["<IMG_CONTEXT>"]
    with torch.no_grad():
        ours = float(model(**batch)["loss"])
    ref = reference_loss(path, samples, ctx)
    assert abs(ours - ref) / ref <= 1e-5


def test_text_only_batch_still_gives_every_vit_parameter_a_gradient(ckpts):
    """The dummy tile runs through the ViT with weight 0: DDP / ZeRO never see an unused parameter."""
    path = ckpts["qwen2"]
    samples, bundle = mixed_samples(path, kinds=("text",))
    model, _ = build_model(ModelSpec(str(path), freeze_backbone=False, grad_checkpoint=False))
    out = model(**bundle.collator(samples))
    out["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        if ".vision_tower." in name or "multi_modal_projector" in name:
            assert torch.count_nonzero(p.grad) == 0, name


def test_image_token_count_mismatch_is_an_error_not_a_zero_loss(ckpts):
    path = ckpts["qwen2"]
    samples, bundle = mixed_samples(path, kinds=("single",))
    model, _ = build_model(ModelSpec(str(path), grad_checkpoint=False))
    batch = bundle.collator(samples)
    batch["image_flags"][0] = 0  # one real tile fewer than the IMG_CONTEXT run needs
    with pytest.raises(ImageTokenMismatch, match=r"<IMG_CONTEXT> tokens but .* real tiles"):
        model(**batch)


def test_loss_without_supervised_tokens_is_zero_with_zero_gradient():
    logits = torch.randn(1, 5, 7, requires_grad=True)
    loss, n = causal_lm_loss(logits, torch.full((1, 5), -100))
    loss.backward()
    assert float(loss.detach()) == 0.0 and int(n) == 0
    assert torch.count_nonzero(logits.grad) == 0
