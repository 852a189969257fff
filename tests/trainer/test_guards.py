"""Guard rails before any weight loads: one line each (exit 2 in `ivl-train run`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from internvl_train import guards
from internvl_train.config import TrainConfig
from internvl_train.guards import (
    GuardError,
    check_guards,
    expected_checkpoint_bytes,
    guard_problems,
    human_bytes,
    read_tensors,
)
from internvl_train.tiny import write_tiny_checkpoint


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("guard-ckpts")
    return {llm: write_tiny_checkpoint(root / llm, llm) for llm in ("qwen2", "internlm2")}


def config(model: Path, tmp_path: Path, **kw) -> TrainConfig:
    kw.setdefault("output_dir", str(tmp_path / "out"))
    return TrainConfig(model_name_or_path=str(model), meta_path=str(tmp_path / "meta.json"), **kw)


def numel(model: Path, *prefixes: str, suffixes: tuple[str, ...] | None = None) -> int:
    """Parameter counts from the real tensors (an independent path from the headers)."""
    tensors = load_file(model / "model.safetensors")
    return sum(
        t.numel() for k, t in tensors.items() if k.startswith(prefixes) and (suffixes is None or k.endswith(suffixes))
    )


class NoBf16Cuda:
    @staticmethod
    def is_available():
        return True

    @staticmethod
    def is_bf16_supported():
        return False

    @staticmethod
    def get_device_name(i):
        return "Tesla V100-SXM2-32GB"


def test_clean_config_passes(ckpts, tmp_path):
    cfg = config(ckpts["qwen2"], tmp_path, deepspeed="zero3-34b", max_seq_length=256)
    assert guard_problems(cfg, world_size=8) == []
    check_guards(cfg)  # no exception


def test_output_dir_below_a_file(ckpts, tmp_path):
    (tmp_path / "afile").write_text("x")
    cfg = config(ckpts["qwen2"], tmp_path, output_dir=str(tmp_path / "afile" / "run"), max_seq_length=256)
    assert guard_problems(cfg) == [
        (
            f"output_dir: {tmp_path}/afile/run cannot be created: {tmp_path}/afile is a file, not a folder; "
            "choose another output_dir"
        )
    ]


def test_output_dir_not_writable(ckpts, tmp_path):
    cfg = config(ckpts["qwen2"], tmp_path, output_dir="/sys/ivl-run/out", max_seq_length=256)
    assert guard_problems(cfg) == [
        (
            "output_dir: /sys/ivl-run/out is not writable (its nearest existing folder /sys): Permission denied; "
            "choose another output_dir or fix the permissions"
        )
    ]


# the official LoRA targets (docs/official-behaviour.md §7.1), in the original layout's names
_LLAMA = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj")
_LLAMA += ("mlp.gate_proj", "mlp.down_proj", "mlp.up_proj")
_INTERNLM2 = ("attention.wqkv", "attention.wo", "feed_forward.w1", "feed_forward.w2", "feed_forward.w3")


def trainable(cfg: TrainConfig) -> int:
    """The trainable count the disk guard uses (Adam state without DeepSpeed: 8 bytes a parameter)."""
    tensors = read_tensors(Path(cfg.model_name_or_path))
    return expected_checkpoint_bytes(cfg, tensors)[2] // 8


def test_trainable_counts_full_lora_and_unfrozen_vit(ckpts, tmp_path):
    q = ckpts["qwen2"]
    tensors = read_tensors(q)
    assert tensors.total == numel(q, "")
    full = config(q, tmp_path)  # freeze_backbone (default): LLM + MLP train
    assert trainable(full) == numel(q, "language_model.", "mlp1.")
    everything = config(q, tmp_path, freeze_backbone=False)
    assert trainable(everything) == tensors.total
    last = config(q, tmp_path, freeze_llm=True, freeze_mlp=True, unfreeze_vit_layers=-1)
    assert trainable(last) == numel(q, "vision_model.encoder.layers.1.")
    # LoRA r=4 on the official Qwen2 targets: r x (in + out) for each q/k/v/o/gate/up/down weight
    lora = config(q, tmp_path, freeze_llm=True, freeze_mlp=True, use_llm_lora=4)
    expected = 0
    for k, t in load_file(q / "model.safetensors").items():
        module = k.removesuffix(".weight")
        if k.startswith("language_model.") and k.endswith(".weight") and module.endswith(_LLAMA):
            expected += 4 * (t.shape[0] + t.shape[1])
    assert expected > 0
    assert trainable(lora) == expected


def test_lora_counts_match_peft(ckpts, tmp_path):
    """The guard counts the adapters the trainer adds: InternLM2 loads as the native llama model, whose q/k/v are
    three Linears where the official code wraps the fused wqkv (peft on the fused shapes + r x 2 x hidden each)."""
    from peft import LoraConfig, get_peft_model

    m = ckpts["internlm2"]
    # peft on a module holding the original layout's linear shapes (wqkv fused, as the official code wraps it)
    tensors = read_tensors(m)
    mods = torch.nn.ModuleDict()
    for key, shape in tensors.shapes.items():
        if key.startswith("language_model.") and key.endswith(".weight") and len(shape) == 2:
            mods[key.removesuffix(".weight").replace(".", "_")] = torch.nn.Linear(shape[1], shape[0], bias=False)
    targets = [k for k in mods if k.endswith(tuple(t.replace(".", "_") for t in _INTERNLM2))]
    peft_model = get_peft_model(torch.nn.Sequential(mods), LoraConfig(r=8, target_modules=targets))
    peft_fused = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    llm = json.loads((m / "config.json").read_text())["llm_config"]
    split = 8 * 2 * llm["hidden_size"] * llm["num_hidden_layers"]  # k and v take the hidden state as input too
    cfg = config(m, tmp_path, freeze_llm=True, freeze_mlp=True, use_llm_lora=8)
    assert trainable(cfg) == peft_fused + split > split > 0


def test_disk_space_below_one_checkpoint(ckpts, tmp_path, monkeypatch):
    q = ckpts["qwen2"]
    cfg = config(q, tmp_path, deepspeed="zero3-34b", max_seq_length=256)
    tensors = read_tensors(q)
    trainable = numel(q, "language_model.", "mlp1.")
    total, weights, optimizer = expected_checkpoint_bytes(cfg, tensors)
    assert (weights, optimizer) == (tensors.total * 2, trainable * 12)  # bf16 weights, DeepSpeed Adam state
    free = total - 1
    monkeypatch.setattr(guards.shutil, "disk_usage", lambda p: type("U", (), {"free": free})())
    assert guard_problems(cfg) == [
        (
            f"output_dir: {cfg.output_dir} has {human_bytes(free)} free, below the {human_bytes(total)} one "
            f"checkpoint needs (weights {human_bytes(weights)} + optimizer state {human_bytes(optimizer)}); "
            "free space or choose another output_dir"
        )
    ]
    monkeypatch.setattr(guards.shutil, "disk_usage", lambda p: type("U", (), {"free": total})())
    assert guard_problems(cfg) == []


def test_max_seq_length_above_positions(ckpts, tmp_path):
    q, i = ckpts["qwen2"], ckpts["internlm2"]
    assert guard_problems(config(q, tmp_path, max_seq_length=256)) == []
    assert guard_problems(config(q, tmp_path, max_seq_length=257)) == [
        (
            f"max_seq_length: 257 is above the model's 256 positions (llm_config.max_position_embeddings 256 in "
            f"{q}/config.json); set max_seq_length=256 or less"
        )
    ]
    # InternLM2's dynamic rope scaling (factor 2) doubles the positions
    assert guard_problems(config(i, tmp_path, max_seq_length=64)) == []
    assert guard_problems(config(i, tmp_path, max_seq_length=65)) == [
        (
            f"max_seq_length: 65 is above the model's 64 positions (llm_config.max_position_embeddings 32 x dynamic "
            f"rope factor 2.0 in {i}/config.json); set max_seq_length=64 or less"
        )
    ]


def test_lora_rank_without_targets(ckpts, tmp_path):
    other = tmp_path / "gpt2ish"
    other.mkdir()
    cfg_json = json.loads((ckpts["qwen2"] / "config.json").read_text())
    cfg_json["llm_config"]["architectures"] = ["GPT2LMHeadModel"]
    (other / "config.json").write_text(json.dumps(cfg_json))
    (other / "model.safetensors").symlink_to(ckpts["qwen2"] / "model.safetensors")
    cfg = config(other, tmp_path, use_llm_lora=16, max_seq_length=256)
    assert guard_problems(cfg) == [
        (
            f"use_llm_lora: rank 16, but the LLM architecture GPT2LMHeadModel (llm_config in {other}/config.json) has no "
            "official LoRA targets (InternLM2, Phi-3, Qwen2, Llama); set lora_target=all-linear or use_llm_lora=0"
        )
    ]
    assert guard_problems(config(other, tmp_path, use_llm_lora=16, lora_target="all-linear", max_seq_length=256)) == []


def test_deepspeed_contradictions(ckpts, tmp_path):
    ds = tmp_path / "ds.json"
    ds.write_text(
        json.dumps(
            {
                "fp16": {"enabled": True},
                "bf16": {"enabled": False},
                "train_micro_batch_size_per_gpu": 2,
                "gradient_accumulation_steps": "auto",
                "train_batch_size": 64,
                "gradient_clipping": 0.5,
                "optimizer": {"type": "AdamW", "params": {"lr": 1e-4, "weight_decay": "auto"}},
                "scheduler": {"type": "WarmupLR"},
            }
        )
    )
    cfg = config(ckpts["qwen2"], tmp_path, deepspeed=str(ds), max_seq_length=256, gradient_accumulation_steps=4)
    w = f"deepspeed: {ds}"
    assert guard_problems(cfg, world_size=8) == [
        f'{w}: fp16.enabled is true, but the config trains in bf16; set it to "auto"',
        f'{w}: bf16.enabled is false, but the config says bf16: true; set it to "auto"',
        f'{w}: train_micro_batch_size_per_gpu is 2, but per_device_train_batch_size is 4; set it to "auto" or to 4',
        f'{w}: train_batch_size is 64, but the global batch is 128; set it to "auto" or to 128',
        f'{w}: gradient_clipping is 0.5, but max_grad_norm is 1.0; set it to "auto" or to 1.0',
        f'{w}: optimizer.params.lr is 0.0001, but learning_rate is 4e-05; set it to "auto" or to 4e-05',
        f"{w}: has a scheduler block, which would replace lr_scheduler_type cosine and warmup_ratio 0.03; remove it",
    ]


@pytest.mark.parametrize("name", ["zero1", "zero2", "zero3", "zero3-offload", "zero3-34b", "zero3-100b"])
def test_shipped_deepspeed_configs_never_contradict(ckpts, tmp_path, name):
    cfg = config(ckpts["qwen2"], tmp_path, deepspeed=name, max_seq_length=256)
    assert guard_problems(cfg, world_size=16) == []


def test_human_bytes():
    assert [human_bytes(n) for n in (0, 1023, 1536, 5 * 1024**2, 3 * 1024**3, 2 * 1024**4)] == [
        "0 B",
        "1023 B",
        "1.5 KiB",
        "5.0 MiB",
        "3.0 GiB",
        "2.0 TiB",
    ]


def test_bf16_on_a_gpu_without_it(ckpts, tmp_path):
    cfg = config(ckpts["qwen2"], tmp_path, max_seq_length=256)
    with pytest.raises(GuardError) as info:
        check_guards(cfg, cuda=NoBf16Cuda)
    assert info.value.problems == [
        "bf16: true, but Tesla V100-SXM2-32GB has no bfloat16 support; set bf16=false (float32)"
    ]
    assert guard_problems(config(ckpts["qwen2"], tmp_path, max_seq_length=256, bf16=False), cuda=NoBf16Cuda) == []
