"""TrainConfig / load_config: closed keys with suggestions, every problem at once with its YAML line, overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from internvl_train.config import ConfigError, TrainConfig, load_config, parse_override

ROOT = Path(__file__).resolve().parents[2]
META = str(ROOT / "fixtures" / "valid" / "meta.json")


@pytest.fixture
def ckpt(tmp_path):
    d = tmp_path / "ckpt"
    d.mkdir()
    (d / "config.json").write_text("{}")
    return str(d)


def write(tmp_path, text: str) -> str:
    p = tmp_path / "train.yaml"
    p.write_text(text)
    return str(p)


def minimal(ckpt: str, tmp_path) -> str:
    return f"model_name_or_path: {ckpt}\nmeta_path: {META}\noutput_dir: {tmp_path / 'out'}\n"


def refused(*args, **kwargs) -> list[str]:
    """The problems of the ConfigError that ``load_config(*args, **kwargs)`` must raise."""
    with pytest.raises(ConfigError) as exc:
        load_config(*args, **kwargs)
    return exc.value.problems


def test_minimal_file_gives_the_documented_defaults(tmp_path, ckpt):
    cfg = load_config(write(tmp_path, minimal(ckpt, tmp_path)))
    assert cfg.model_name_or_path == ckpt and cfg.meta_path == META
    assert (cfg.max_seq_length, cfg.freeze_backbone, cfg.freeze_llm, cfg.use_llm_lora) == (4096, True, False, 0)
    assert (cfg.lora_dropout, cfg.lora_target, cfg.max_skip_ratio) == (0.05, "official", 0.001)
    assert (cfg.overwrite_output_dir, cfg.merge_lora, cfg.trust_remote_code) == (False, False, False)
    assert (cfg.learning_rate, cfg.warmup_ratio, cfg.lr_scheduler_type, cfg.seed) == (4e-5, 0.03, "cosine", 42)
    assert cfg.conv_style is None and cfg.max_dynamic_patch is None  # the checkpoint decides
    assert cfg.report_to == ["none"]


def test_unknown_key_gets_a_suggestion_with_its_line(tmp_path, ckpt):
    path = write(tmp_path, minimal(ckpt, tmp_path) + "learnig_rate: 1.0e-5\nfreeze_bakbone: false\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert exc.value.problems == [
        f"{path}:4: learnig_rate: unknown key (did you mean 'learning_rate'?)",
        f"{path}:5: freeze_bakbone: unknown key (did you mean 'freeze_backbone'?)",
    ]
    assert str(exc.value).splitlines()[0] == "2 problems in the training configuration:"


def test_names_from_other_tools_point_to_ours(tmp_path, ckpt):
    path = write(tmp_path, minimal(ckpt, tmp_path) + "lr: 1.0e-5\nepochs: 3\ntemplate: Hermes-2\n")
    assert refused(path) == [
        f"{path}:4: lr: unknown key (did you mean 'learning_rate'?)",
        f"{path}:5: epochs: unknown key (did you mean 'num_train_epochs'?)",
        f"{path}:6: template: unknown key (did you mean 'conv_style'?)",
    ]


def test_every_problem_at_once_in_line_order(tmp_path, ckpt):
    text = (
        f"model_name_or_path: {tmp_path / 'nowhere'}\n"  # 1
        f"meta_path: {META}\n"  # 2
        "output_dir: out\n"  # 3
        "freeze_llm: maybe\n"  # 4
        "use_llm_lora: 2.5\n"  # 5
        "conv_style: Hermes2\n"  # 6
        "deepspeed: zero4\n"  # 7
        "per_device_train_batch_size: 0\n"  # 8
        "lora_target: everything\n"  # 9
    )
    path = write(tmp_path, text)
    assert refused(path) == [
        f"{path}:1: model_name_or_path: {tmp_path / 'nowhere'} is not a folder",
        f"{path}:4: freeze_llm: expected true or false, got 'maybe'",
        f"{path}:5: use_llm_lora: expected a whole number, got 2.5",
        (
            f"{path}:6: conv_style: unknown template 'Hermes2'; use one of Hermes-2, internlm2-chat, phi3-chat, "
            "internvl2_5"
        ),
        (
            f"{path}:7: deepspeed: 'zero4' is neither a DeepSpeed JSON file nor one of the shipped configs "
            "(zero1, zero2, zero3, zero3-offload) (did you mean 'zero3'?)"
        ),
        f"{path}:8: per_device_train_batch_size: input should be greater than or equal to 1, got 0",
        f"{path}:9: lora_target: expected 'official' or 'all-linear', got 'everything'",
    ]


def test_problems_between_keys_are_reported_at_the_later_key(tmp_path, ckpt):
    text = minimal(ckpt, tmp_path) + "min_dynamic_patch: 6\nmax_dynamic_patch: 4\nmerge_lora: true\n"
    path = write(tmp_path, text)
    assert refused(path) == [
        f"{path}:5: max_dynamic_patch: 4 is below min_dynamic_patch 6",
        f"{path}:6: merge_lora: true but no LoRA is trained; set use_llm_lora (or use_backbone_lora) to a rank",
    ]


def test_missing_required_keys_and_yaml_duplicates(tmp_path):
    path = write(tmp_path, "seed: 1\nseed: 2\n")
    assert refused(path) == [
        f"{path}:1: model_name_or_path: required (the checkpoint folder to fine-tune)",
        f"{path}:1: meta_path: required (the meta JSON file of the training data)",
        f"{path}:1: output_dir: required (the folder for checkpoints and the final model)",
        f"{path}:2: seed: given twice (first on line 1)",
    ]


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "seed: 1\nlearning_rate: [1, 2\n")
    found = refused(path)
    assert len(found) == 1 and found[0].startswith(f"{path}:3: invalid YAML (")
    path = write(tmp_path, "- a\n- b\n")
    assert refused(path) == [f"{path}:1: expected `key: value` lines at the top level"]


def test_overrides_are_yaml_scalars_and_win(tmp_path, ckpt):
    path = write(tmp_path, minimal(ckpt, tmp_path) + "freeze_llm: true\nlearning_rate: 2.0e-5\n")
    cfg = load_config(
        path,
        ["learning_rate=1e-5", "freeze_llm=false", "use_llm_lora=16", "report_to=[tensorboard]", "conv_style=null"],
    )
    assert cfg.learning_rate == 1e-5 and cfg.freeze_llm is False and cfg.use_llm_lora == 16
    assert cfg.report_to == ["tensorboard"] and cfg.conv_style is None
    assert (cfg.llm_lora_alpha, cfg.backbone_lora_alpha) == (32, 0)  # 2 x rank, as the official scripts
    assert parse_override("max_steps=10") == ("max_steps", 10)
    assert parse_override("output_dir=a=b") == ("output_dir", "a=b")
    assert parse_override("deepspeed=zero3-offload") == ("deepspeed", "zero3-offload")


def test_override_problems_name_the_argument(tmp_path, ckpt):
    path = write(tmp_path, minimal(ckpt, tmp_path))
    assert refused(path, ["seed=x", "nonsense", "learnin_rate=1"]) == [
        "command line: argument 2: 'nonsense' is not key=value (write key=value, e.g. learning_rate=1e-5)",
        "command line (learnin_rate=1): learnin_rate: unknown key (did you mean 'learning_rate'?)",
        "command line (seed=x): seed: expected a whole number, got 'x'",
    ]


def test_base_is_the_lowest_layer(tmp_path, ckpt):
    path = write(tmp_path, minimal(ckpt, tmp_path) + "learning_rate: 3.0e-5\n")
    cfg = load_config(path, ["seed=7"], base={"learning_rate": 1e-3, "weight_decay": 0.05, "seed": 1})
    assert (cfg.learning_rate, cfg.weight_decay, cfg.seed) == (3e-5, 0.05, 7)
    assert refused(path, base={"learnign_rate": 1.0}) == [
        "preset: learnign_rate: unknown key (did you mean 'learning_rate'?)"
    ]


def test_no_file_only_overrides(tmp_path, ckpt):
    cfg = load_config(None, [f"model_name_or_path={ckpt}", f"meta_path={META}", f"output_dir={tmp_path}"])
    assert cfg.output_dir == str(tmp_path)


def test_paths_checked_unless_asked_not_to(tmp_path):
    text = f"model_name_or_path: {tmp_path}\nmeta_path: nope.json\noutput_dir: o\ndeepspeed: ds.json\n"
    path = write(tmp_path, text)
    assert refused(path) == [
        f"{path}:1: model_name_or_path: {tmp_path} has no config.json (not a checkpoint)",
        f"{path}:2: meta_path: nope.json not found",
        f"{path}:4: deepspeed: ds.json not found (or use one of zero1, zero2, zero3, zero3-offload)",
    ]
    assert load_config(path, check_paths=False).deepspeed == "ds.json"


def test_resolved_dict_round_trips_through_yaml(tmp_path, ckpt):
    cfg = load_config(write(tmp_path, minimal(ckpt, tmp_path)), ["use_llm_lora=8", "lora_alpha=4"])
    dumped = yaml.safe_dump(cfg.resolved_dict(), sort_keys=False)
    assert list(cfg.resolved_dict()) == list(TrainConfig.model_fields)
    again = load_config(write(tmp_path, dumped))
    assert again == cfg and again.llm_lora_alpha == 4
    json.dumps(cfg.resolved_dict())  # JSON-safe too


def test_direct_construction_checks_consistency():
    with pytest.raises(ValueError, match="max_num_frame: 4 is below min_num_frame 8"):
        TrainConfig(model_name_or_path="m", meta_path="x.json", output_dir="o", max_num_frame=4)


def test_with_checkpoint_fills_only_unset_values():
    from internvl_data.pipeline.modelinfo import ModelInfo

    info = ModelInfo("m", "original", "Hermes-2", 448, 14, 0.5, 1, 12, True, True)
    cfg = TrainConfig(model_name_or_path="m", meta_path="x.json", output_dir="o", max_dynamic_patch=6)
    full = cfg.with_checkpoint(info)
    assert (full.conv_style, full.force_image_size, full.min_dynamic_patch, full.max_dynamic_patch) == (
        "Hermes-2",
        448,
        1,
        6,
    )
    assert (full.use_thumbnail, full.dynamic_image_size, full.down_sample_ratio) == (True, True, 0.5)


def test_scheduler_names_are_the_trainers():
    from transformers.trainer_utils import SchedulerType

    from internvl_train.config import SCHEDULERS

    assert SCHEDULERS == tuple(s.value for s in SchedulerType)
    with pytest.raises(ValueError, match="unknown scheduler 'cosin' \\(did you mean 'cosine'\\?\\)"):
        TrainConfig(model_name_or_path="m", meta_path="x.json", output_dir="o", lr_scheduler_type="cosin")
