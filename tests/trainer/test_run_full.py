"""`ivl-train run`, full fine-tune of a tiny checkpoint on 8 records (text, single, multi-image, video): the logged
step-1 loss is the official loss, the run overfits, frozen weights stay bit-identical, the outputs are complete
and the final model is in the original layout and reloads with identical logits."""

from __future__ import annotations

import json
import struct

import pytest
import torch
import yaml
from safetensors.torch import load_file

from internvl_data.pipeline.dataset import build_data
from internvl_train import load_pretrained
from internvl_train.recipe.callbacks import METRIC_FIELDS
from tests.trainer.model_helpers import reference_loss, train_eight

STEPS = 20
pytestmark = pytest.mark.slow  # one ~30-60 s training run shared by the module


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("full")
    ckpt, meta, rows = train_eight(d, STEPS, 5e-3)
    return d, ckpt, meta, rows


def test_step_one_loss_is_the_official_loss(full_run):
    d, ckpt, meta, rows = full_run
    bundle = build_data(
        ckpt, meta, overrides={"max_seq_length": 1024, "min_num_frame": 2, "max_num_frame": 4, "seed": 42}
    )
    ds = bundle.dataset()
    samples = [ds.build(i) for i in range(len(ds))]  # one batch of 8 = the whole mixture; a token mean ignores order
    assert sorted(s.kind for s in samples) == ["multi", "multi", "single", "single", "text", "text", "text", "video"]
    ctx = bundle.tokenizer.get_vocab()["<IMG_CONTEXT>"]
    ref = reference_loss(ckpt, samples, ctx)
    assert abs(rows[0]["loss"] - ref) / ref <= 1e-5


def test_metrics_and_overfit(full_run):
    _, _, _, rows = full_run
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    assert all(list(r) == list(METRIC_FIELDS) for r in rows)
    assert all(r["tokens"] > r["supervised_tokens"] > 0 and r["tokens_per_second"] > 0 for r in rows)
    assert rows[-1]["loss"] < 0.1 * rows[0]["loss"]


def test_outputs(full_run):
    d, _, _, _ = full_run
    out = d / "out"
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["max_steps"] == STEPS and resolved["conv_style"] == "Hermes-2"  # filled from the checkpoint
    assert (out / "data-manifest.json").is_file()
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ckpt = out / f"checkpoint-{STEPS}"
    for name in ("model.safetensors", "config.json", "optimizer.pt", "scheduler.pt", "trainer_state.json"):
        assert (ckpt / name).is_file(), name
    marker = json.loads((ckpt / "ivl-complete.json").read_text())
    assert marker["step"] == STEPS and len(marker["data_manifest_sha256"]) == 64
    assert ckpt.joinpath("ivl-complete.json").stat().st_mtime_ns >= ckpt.joinpath("optimizer.pt").stat().st_mtime_ns


def _header_keys(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return {k for k in json.loads(f.read(n)) if k != "__metadata__"}


def test_final_model_is_original_layout_trained_and_frozen_parts_unchanged(full_run):
    d, ckpt, _, _ = full_run
    final = d / "out" / "model"
    assert _header_keys(final / "model.safetensors") == _header_keys(ckpt / "model.safetensors")
    before, after = json.loads((ckpt / "config.json").read_text()), json.loads((final / "config.json").read_text())
    assert set(after) == set(before) and set(after["llm_config"]) >= set(before["llm_config"]) - {"auto_map"}
    assert after["architectures"] == ["InternVLChatModel"]
    w0, w1 = load_file(str(ckpt / "model.safetensors")), load_file(str(final / "model.safetensors"))
    for key in w0:
        if key.startswith("vision_model."):  # freeze_backbone: true (the default)
            assert torch.equal(w0[key], w1[key]), key
        else:  # the LLM and mlp1 train
            assert not torch.equal(w0[key], w1[key]), key


def test_final_model_reloads_with_the_trained_logits(full_run):
    d, _, _, _ = full_run
    final, _ = load_pretrained(d / "out" / "model")
    last, _ = load_pretrained(d / "out" / f"checkpoint-{STEPS}")  # the trained weights in native HF format
    ids = torch.arange(3, 40)[None]
    with torch.no_grad():
        assert torch.equal(final(input_ids=ids).logits, last(input_ids=ids).logits)
