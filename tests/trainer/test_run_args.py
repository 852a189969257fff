"""The shipped DeepSpeed configs carry the official values (docs/official-behaviour.md §6.4), and the config maps onto HF
TrainingArguments as the official flags mean them."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from internvl_train.config import TrainConfig
from internvl_train.recipe.train import training_arguments


def _ds(name: str) -> dict:
    return json.loads((resources.files("internvl_train") / "configs" / "deepspeed" / f"{name}.json").read_text())


def test_deepspeed_configs_have_the_official_values():
    z1, z2, z3, z3o = (_ds(n) for n in ("zero1", "zero2", "zero3", "zero3_offload"))
    assert z1["zero_optimization"] == {
        "stage": 1,
        "allgather_partitions": True,
        "allgather_bucket_size": 1e9,
        "overlap_comm": True,
        "reduce_scatter": True,
        "reduce_bucket_size": 1e9,
        "contiguous_gradients": True,
    }
    assert z2["zero_optimization"] == dict(
        z1["zero_optimization"], stage=2, allgather_bucket_size=1e8, reduce_bucket_size=1e8
    )
    assert (z1["wall_clock_breakdown"], z2["wall_clock_breakdown"]) == (True, False)
    zo = z3["zero_optimization"]
    assert zo["stage"] == 3 and zo["stage3_param_persistence_threshold"] == 1e7
    assert zo["stage3_gather_16bit_weights_on_model_save"] is True and zo["sub_group_size"] == 1e9
    assert z3o["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert z3o["zero_optimization"]["offload_param"]["device"] == "cpu"
    assert {k: v for k, v in z3o["zero_optimization"].items() if not k.startswith("offload_")} == zo
    for cfg in (z1, z2, z3, z3o):
        assert cfg["optimizer"] == {
            "type": "AdamW",
            "params": {"lr": "auto", "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": "auto"},
        }
        assert cfg["fp16"]["enabled"] == "auto" and cfg["fp16"]["initial_scale_power"] == 32
        assert cfg["bf16"] == {"enabled": "auto"} and "scheduler" not in cfg
        assert cfg["steps_per_print"] == 2000
        for key in ("gradient_accumulation_steps", "gradient_clipping", "train_batch_size"):
            assert cfg[key] == "auto"


def _cfg(tmp_path, **kw) -> TrainConfig:
    return TrainConfig(model_name_or_path="m", meta_path="x.json", output_dir=str(tmp_path / "o"), bf16=False, **kw)


def test_training_arguments_follow_the_config(tmp_path):
    args = training_arguments(_cfg(tmp_path, deepspeed="zero2", warmup_ratio=0.03, group_by_length=True))
    assert args.deepspeed.endswith("configs/deepspeed/zero2.json")
    assert args.warmup_steps == 0.03 and args.get_warmup_steps(100) == 3  # ceil(0.03 x total), as official
    assert args.train_sampling_strategy == "group_by_length" and args.lr_scheduler_type == "cosine"
    assert args.remove_unused_columns is False and args.ddp_find_unused_parameters is False


def test_tensorboard_only_when_installed(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if "tensorboard" in n else real(n, *a))
    args = training_arguments(_cfg(tmp_path, report_to=["tensorboard"]))
    assert args.report_to in ([], "none", ["none"])
    assert "report_to: tensorboard is not installed (pip install tensorboard); not logging to it" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize("scheduler", ["cosine", "linear"])
def test_scheduler_passes_through(tmp_path, scheduler):
    assert training_arguments(_cfg(tmp_path, lr_scheduler_type=scheduler)).lr_scheduler_type == scheduler
