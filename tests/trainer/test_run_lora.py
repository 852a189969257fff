"""`ivl-train run` with LoRA on the LLM (the official LoRA freezing): overfits 8 records, trains only the adapter,
saves only the adapter (checkpoints with optimizer and scheduler state too), and ``merge_lora: true`` and
``ivl-train merge-lora`` write an original-layout model whose logits equal base + adapter."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file

from internvl_train import load_pretrained
from internvl_train.cli.dispatch import main
from tests.trainer.model_helpers import train_eight

STEPS = 50
pytestmark = pytest.mark.slow  # one ~60 s training run shared by the module


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("lora")
    ckpt, _, rows = train_eight(
        d,
        STEPS,
        1e-2,
        use_llm_lora=32,
        freeze_llm=True,
        freeze_mlp=True,
        merge_lora=True,
        group_by_length=True,  # the length-grouped sampler (one batch of 8 holds every record anyway)
        dataloader_num_workers=1,  # samples built in a worker process
    )
    return d, ckpt, rows


def test_overfits(lora_run):
    _, _, rows = lora_run
    assert rows[-1]["loss"] < 0.1 * rows[0]["loss"]


def test_only_the_adapter_is_saved(lora_run):
    d, _, _ = lora_run
    adapter = d / "out" / "adapter"
    assert not list(adapter.glob("model*.safetensors"))
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["r"] == 32 and cfg["lora_alpha"] == 64 and cfg["lora_dropout"] == 0.05
    keys = load_file(str(adapter / "adapter_model.safetensors"))
    assert keys and all(".lora_A." in k or ".lora_B." in k for k in keys)
    assert all(".language_model." in k for k in keys)  # LLM LoRA only; 2 layers x 7 modules x (A, B)
    assert len(keys) == 2 * 7 * 2
    ckpt = d / "out" / f"checkpoint-{STEPS}"
    assert not list(ckpt.glob("model*.safetensors"))
    for name in ("adapter_model.safetensors", "optimizer.pt", "scheduler.pt", "ivl-complete.json"):
        assert (ckpt / name).is_file(), name


def _logits(model, ids, pixels=None):
    with torch.no_grad():
        return model(input_ids=ids, pixel_values=pixels).logits


def test_merged_model_equals_base_plus_adapter(lora_run, tmp_path):
    d, ckpt, _ = lora_run
    assert main(["merge-lora", str(d / "out" / "adapter"), str(tmp_path / "merged")]) == 0
    base, _ = load_pretrained(ckpt)
    with_adapter = PeftModel.from_pretrained(base, str(d / "out" / "adapter"))
    ids = torch.arange(3, 60)[None]
    ref = _logits(with_adapter, ids)
    for merged_dir in (d / "out" / "model", tmp_path / "merged"):  # merge_lora: true, and the command
        merged, _ = load_pretrained(merged_dir)
        assert float((_logits(merged, ids) - ref).abs().max() / ref.abs().max()) <= 1e-5
    w0 = load_file(str(ckpt / "model.safetensors"))
    w1 = load_file(str(d / "out" / "model" / "model.safetensors"))
    assert set(w0) == set(w1)
    for key in w0:
        lora_target = key.startswith("language_model.") and key.endswith("proj.weight")  # q k v o gate up down
        assert torch.equal(w0[key], w1[key]) != lora_target, key


def test_merge_lora_refuses_a_folder_without_an_adapter(tmp_path, capsys):
    assert main(["merge-lora", str(tmp_path), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "adapter_config.json: missing; point at the adapter/ folder of a LoRA run" in err
    assert not (tmp_path / "out").exists()
