"""The 15 presets hold the official values of the InternVL2 2nd fine-tune scripts (docs/official-behaviour.md §6.2-6.4)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from internvl_train.presets import PresetError, preset_launch, preset_names, preset_values

# One row per official script (internvl_chat/shell/internvl2.0/2nd_finetune/internvl2_<script>.sh), copied from the
# reference's table: launcher, GPUS, BATCH_SIZE, PER_DEVICE_BATCH_SIZE, conv_style, lr, wd, drop_path, freeze_llm,
# freeze_mlp, use_llm_lora (0: none), deepspeed json, model path.
OFFICIAL = [
    ("internvl2-1b-full", "1b_qwen2_0_5b_dynamic_res_2nd_finetune_full", "torchrun", 8, 128, 4, "Hermes-2", 4e-5, 0.01, 0.1, False, False, 0, "zero_stage1_config.json", "InternVL2-1B"),
    ("internvl2-1b-lora", "1b_qwen2_0_5b_dynamic_res_2nd_finetune_lora", "torchrun", 2, 16, 4, "Hermes-2", 4e-5, 0.01, 0.0, True, True, 16, "zero_stage1_config.json", "InternVL2-1B"),
    ("internvl2-2b-full", "2b_internlm2_1_8b_dynamic_res_2nd_finetune_full", "torchrun", 8, 128, 4, "internlm2-chat", 4e-5, 0.01, 0.1, False, False, 0, "zero_stage1_config.json", "InternVL2-2B"),
    ("internvl2-2b-lora", "2b_internlm2_1_8b_dynamic_res_2nd_finetune_lora", "torchrun", 2, 16, 4, "internlm2-chat", 4e-5, 0.01, 0.0, True, True, 16, "zero_stage1_config.json", "InternVL2-2B"),
    ("internvl2-2b-lora-coco", "2b_internlm2_1_8b_dynamic_res_2nd_finetune_lora_coco", "torchrun", 8, 512, 4, "internlm2-chat", 4e-5, 0.01, 0.0, True, True, 128, "zero_stage1_config.json", "InternVL2-2B"),
    ("internvl2-4b-full", "4b_phi3_3_8b_dynamic_res_2nd_finetune_full", "torchrun", 8, 128, 4, "phi3-chat", 4e-5, 0.01, 0.1, False, False, 0, "zero_stage1_config.json", "InternVL2-4B"),
    ("internvl2-4b-lora", "4b_phi3_3_8b_dynamic_res_2nd_finetune_lora", "torchrun", 2, 16, 4, "phi3-chat", 4e-5, 0.01, 0.0, True, True, 16, "zero_stage1_config.json", "InternVL2-4B"),
    ("internvl2-8b-full", "8b_internlm2_7b_dynamic_res_2nd_finetune_full", "torchrun", 8, 128, 4, "internlm2-chat", 4e-5, 0.05, 0.1, False, False, 0, "zero_stage1_config.json", "InternVL2-8B"),
    ("internvl2-8b-lora", "8b_internlm2_7b_dynamic_res_2nd_finetune_lora", "torchrun", 2, 16, 4, "internlm2-chat", 4e-5, 0.05, 0.0, True, True, 16, "zero_stage1_config.json", "InternVL2-8B"),
    ("internvl2-26b-full", "26b_internlm2_20b_dynamic_res_2nd_finetune_full", "torchrun", 8, 128, 2, "internlm2-chat", 2e-5, 0.05, 0.4, False, False, 0, "zero_stage3_config.json", "InternVL2-26B"),
    ("internvl2-26b-lora", "26b_internlm2_20b_dynamic_res_2nd_finetune_lora", "torchrun", 2, 16, 2, "internlm2-chat", 2e-5, 0.05, 0.0, True, True, 16, "zero_stage3_config.json", "InternVL2-26B"),
    ("internvl2-40b-full", "40b_hermes2_yi_34b_dynamic_res_2nd_finetune_full", "srun", 16, 128, 2, "Hermes-2", 2e-5, 0.05, 0.4, False, False, 0, "zero_stage3_config_34b.json", "InternVL2-40B"),
    ("internvl2-40b-lora", "40b_hermes2_yi_34b_dynamic_res_2nd_finetune_lora", "torchrun", 2, 16, 2, "Hermes-2", 2e-5, 0.05, 0.0, True, True, 16, "zero_stage3_config_34b.json", "InternVL2-40B"),
    ("internvl2-76b-full", "76b_hermes2_llama3_70b_dynamic_res_2nd_finetune_full", "srun", 32, 128, 1, "internlm2-chat", 2e-5, 0.05, 0.4, False, False, 0, "zero_stage3_config_100b.json", "InternVL2-Llama3-76B"),
    ("internvl2-76b-lora", "76b_hermes2_llama3_70b_dynamic_res_2nd_finetune_lora", "torchrun", 8, 16, 1, "internlm2-chat", 2e-5, 0.05, 0.0, True, True, 16, "zero_stage3_config_100b.json", "InternVL2-Llama3-76B"),
]  # fmt: skip

# The official DeepSpeed json -> the name of the config we ship with the same values.
DEEPSPEED = {
    "zero_stage1_config.json": "zero1",
    "zero_stage3_config.json": "zero3",
    "zero_stage3_config_34b.json": "zero3-34b",
    "zero_stage3_config_100b.json": "zero3-100b",
}

# Passed identically by all 15 scripts (the ones that are config keys).
COMMON = {
    "force_image_size": 448,
    "max_dynamic_patch": 6,
    "min_dynamic_patch": 1,
    "down_sample_ratio": 0.5,
    "freeze_backbone": True,
    "dataloader_num_workers": 4,
    "bf16": True,
    "num_train_epochs": 1,
    "save_steps": 200,
    "save_total_limit": 1,
    "warmup_ratio": 0.03,
    "lr_scheduler_type": "cosine",
    "logging_steps": 1,
    "max_seq_length": 4096,
    "grad_checkpoint": True,
    "group_by_length": True,
    "dynamic_image_size": True,
    "use_thumbnail": True,
    "report_to": "tensorboard",
    "max_grad_norm": 1.0,
    "seed": 42,
}


def test_the_fifteen_names():
    assert preset_names() == [row[0] for row in OFFICIAL]


@pytest.mark.parametrize("row", OFFICIAL, ids=[r[0] for r in OFFICIAL])
def test_preset_has_the_official_values(row):
    name, script, launcher, gpus, batch, per_device, conv, lr, wd, dp, freeze_llm, freeze_mlp, rank, ds, model = row
    values = preset_values(name)
    launch = preset_launch(name)
    assert launch.script == f"internvl2_{script}.sh"
    assert launch.launcher == launcher
    assert (launch.gpus, launch.batch_size, launch.gpus_per_node) == (gpus, batch, 8)
    expected = {
        **COMMON,
        "model_name_or_path": f"./pretrained/{model}",
        "output_dir": f"work_dirs/internvl_chat_v2_0/internvl2_{script}",
        "conv_style": conv,
        "learning_rate": lr,
        "weight_decay": wd,
        "drop_path_rate": dp,
        "freeze_llm": freeze_llm,
        "freeze_mlp": freeze_mlp,
        "deepspeed": DEEPSPEED[ds],
        "per_device_train_batch_size": per_device,
        "gradient_accumulation_steps": batch // per_device // gpus,  # GRADIENT_ACC of the script
    }
    if rank:
        expected["use_llm_lora"] = rank
    assert values == expected  # nothing more: no meta_path (the user's), no overwrite_output_dir (resume)


def test_values_are_fresh_copies():
    values = preset_values("internvl2-1b-full")
    values["learning_rate"] = 1.0
    assert preset_values("internvl2-1b-full")["learning_rate"] == 4e-5


def test_unknown_name_suggests():
    with pytest.raises(PresetError, match=r"^unknown preset 'internvl2-8b-ful' \(did you mean 'internvl2-8b-full'\?\)"):
        preset_values("internvl2-8b-ful")


def test_a_yaml_path_is_a_preset(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text("launch:\n  gpus: 2\n  batch_size: 4\nlearning_rate: 1.0e-3\n")
    assert preset_values(str(p)) == {"learning_rate": 1e-3}
    assert (preset_launch(str(p)).gpus, preset_launch(str(p)).batch_size, preset_launch(str(p)).launcher) == (
        2,
        4,
        "torchrun",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "launch:\n  gpu: 2\n",
            "launch: unknown key 'gpu' (known: script, size, launcher, gpus, batch_size, gpus_per_node)",
        ),
        ("launch:\n  gpus: 0\n", "launch: gpus must be a positive integer, not 0"),
        ("launch:\n  launcher: mpirun\n", "launch: launcher must be 'torchrun' or 'srun', not 'mpirun'"),
        ("- a\n", "a preset is a mapping of config keys (with an optional 'launch:' section)"),
    ],
)
def test_bad_preset_files(tmp_path, text, message):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(PresetError) as info:
        preset_launch(str(p))
    assert str(info.value) == f"{p}: {message}"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "internvl_train", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_cli_lists_size_gpus_batch_zero():
    res = _cli("presets")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == [
        "preset",
        "size",
        "launcher",
        "GPUs",
        "batch",
        "per-device",
        "accum",
        "zero",
        "lr",
        "lora",
    ]
    table = {line.split()[0]: line.split() for line in lines[1:16]}
    assert list(table) == preset_names()
    assert table["internvl2-1b-full"] == [
        "internvl2-1b-full",
        "1B",
        "torchrun",
        "8",
        "128",
        "4",
        "4",
        "1",
        "4e-05",
        "-",
    ]
    assert table["internvl2-40b-full"] == [
        "internvl2-40b-full",
        "40B",
        "srun",
        "16",
        "128",
        "2",
        "4",
        "3",
        "(34b)",
        "2e-05",
        "-",
    ]
    assert table["internvl2-2b-lora-coco"][3:] == ["8", "512", "4", "16", "1", "4e-05", "128"]
    assert table["internvl2-76b-lora"][3:] == ["8", "16", "1", "2", "3", "(100b)", "2e-05", "16"]


def test_cli_one_preset_and_unknown():
    res = _cli("presets", "internvl2-26b-lora")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == (
        "# internvl2-26b-lora: internvl2_26b_internlm2_20b_dynamic_res_2nd_finetune_lora.sh "
        "(torchrun, GPUS=2, BATCH_SIZE=16)"
    )
    assert "use_llm_lora: 16\n" in res.stdout and "deepspeed: zero3\n" in res.stdout
    res = _cli("presets", "internvl2-26b-ful")
    assert res.returncode == 2
    assert res.stderr == (
        "ivl-train presets: error: unknown preset 'internvl2-26b-ful' (did you mean 'internvl2-26b-full'?); "
        "`ivl-train presets` lists them\n"
    )


# -- through the config loader ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("row", OFFICIAL, ids=[r[0] for r in OFFICIAL])
def test_preset_validates_as_a_train_config(row):
    from internvl_train.config import load_config

    name, rank = row[0], row[12]
    cfg = load_config(None, ["meta_path=data/meta.json"], base=preset_values(name), check_paths=False)
    resolved = cfg.resolved_dict()
    for key, value in preset_values(name).items():
        assert resolved[key] == ([value] if key == "report_to" else value), key
    assert (cfg.use_llm_lora, cfg.llm_lora_alpha, cfg.lora_dropout) == (rank, 2 * rank, 0.05)  # alpha = 2 x r
    assert (cfg.use_backbone_lora, cfg.unfreeze_vit_layers, cfg.unfreeze_lm_head) == (0, 0, False)
    assert (cfg.min_num_frame, cfg.max_num_frame, cfg.overwrite_output_dir) == (8, 32, False)


def test_preset_key_in_a_yaml_file(tmp_path):
    from internvl_train.config import load_config

    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("preset: internvl2-8b-lora\nmeta_path: my/meta.json\nlearning_rate: 1.0e-5\n")
    cfg = load_config(cfg_file, ["use_llm_lora=8"], check_paths=False)
    assert (cfg.learning_rate, cfg.use_llm_lora, cfg.llm_lora_alpha) == (1e-5, 8, 16)
    assert (cfg.weight_decay, cfg.deepspeed, cfg.model_name_or_path) == (0.05, "zero1", "./pretrained/InternVL2-8B")


def test_unknown_preset_key_in_a_yaml_file_names_the_line(tmp_path):
    from internvl_train.config import ConfigError, load_config

    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("meta_path: my/meta.json\npreset: internvl2-8b-lorra\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg_file, check_paths=False)
    assert sorted(info.value.problems) == [
        f"{cfg_file}:1: model_name_or_path: required (the checkpoint folder to fine-tune)",
        f"{cfg_file}:1: output_dir: required (the folder for checkpoints and the final model)",
        f"{cfg_file}:2: preset: unknown preset 'internvl2-8b-lorra' (did you mean 'internvl2-8b-lora'?); "
        "`ivl-train presets` lists them",
    ]


@pytest.mark.parametrize(("name", "threshold"), [("zero3_34b", 1e5), ("zero3_100b", 1e4)])
def test_shipped_zero3_variants_of_the_40b_and_76b(name, threshold):
    import json
    from importlib import resources

    ds = json.loads((resources.files("internvl_train") / "configs" / "deepspeed" / f"{name}.json").read_text())
    zero = ds["zero_optimization"]
    assert (zero["stage"], zero["stage3_param_persistence_threshold"]) == (3, threshold)
    assert zero["stage3_gather_16bit_weights_on_model_save"] is True
    assert ds["optimizer"] == {
        "type": "AdamW",
        "params": {"lr": "auto", "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": "auto"},
    }
    assert "scheduler" not in ds
    # identical to the shipped zero3 except the persistence threshold (docs/official-behaviour.md §6.4)
    zero3 = json.loads((resources.files("internvl_train") / "configs" / "deepspeed" / "zero3.json").read_text())
    zero3["zero_optimization"]["stage3_param_persistence_threshold"] = threshold
    assert ds == zero3
