"""`ivl-train check CFG`: resolved values, global batch, steps per epoch, trainable parameters, the data gate."""

from __future__ import annotations

import orjson
import pytest

from internvl_train.cli.dispatch import main
from internvl_train.params import count_parameters

LAUNCH_ENV = ("GPUS", "BATCH_SIZE", "PER_DEVICE_BATCH_SIZE", "WORLD_SIZE", "RANK", "LOCAL_RANK", "SLURM_PROCID")


@pytest.fixture
def cfg_file(tiny_model, valid_copy, tmp_path, monkeypatch):
    for name in LAUNCH_ENV:
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "train.yaml"
    path.write_text(
        f"model_name_or_path: {tiny_model}\nmeta_path: {valid_copy}\noutput_dir: {tmp_path / 'out'}\n"
        "max_dynamic_patch: 6\nbf16: false\n"
    )
    return path


def run(capsys, *args) -> tuple[int, list[str], str]:
    code = main(["check", *args, "--jobs", "1"])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_check_prints_values_batch_steps_parameters_and_the_gate(cfg_file, tiny_model, capsys, tmp_path):
    code, lines, err = run(capsys, str(cfg_file), "per_device_train_batch_size=2", "gradient_accumulation_steps=3")
    assert code == 0, (lines, err)
    assert lines[0] == f"config {cfg_file} (resolved; * = not the default)"
    assert f"   model_name_or_path: {tiny_model}" in lines
    assert " * max_dynamic_patch: 6" in lines and " * per_device_train_batch_size: 2" in lines
    assert "   conv_style: Hermes-2  (from the checkpoint)" in lines
    assert "   learning_rate: 4e-05" in lines and "   report_to: [none]" in lines
    assert lines.count(" * bf16: false") == 1 and not any(x.startswith(" * seed") for x in lines)
    i = lines.index("global batch: 6")
    assert lines[i + 1 : i + 4] == [
        "samples per epoch: 16 (text 3, single 2, multi 4, video 2, mixed 5)",
        "steps: 3 per epoch (8 micro-batches per process / accumulation 3), 3 in total (1 epoch), warmup 1",
        "parameters: " + count_parameters(tiny_model, freeze_backbone=True).summary(),
    ]
    assert lines[i + 4] == "data gate (validated in-process):"
    assert lines[-2].startswith("Found 2 problems (0 errors, 2 warnings, 0 info) in 5 files, 17 records")
    assert lines[-1] == "ready: `ivl-train run` would train with these values"
    assert not (tmp_path / "out").exists()  # check writes nothing


def test_processes_epochs_and_lora_change_the_arithmetic(cfg_file, tiny_model, capsys):
    args = [
        str(cfg_file),
        "--nproc-per-node",
        "2",
        "--no-data",
        "num_train_epochs=2.5",
        "gradient_accumulation_steps=3",
    ]
    code, lines, _ = run(capsys, *args, "use_llm_lora=8", "freeze_llm=true", "freeze_mlp=true")
    assert code == 0
    assert "global batch: 24" in lines  # 4 per device x 3 x 2 processes
    # 16 samples -> 4 micro-batches of 4 -> 2 per process -> 1 step per epoch (a partial window is a step)
    assert (
        "steps: 1 per epoch (2 micro-batches per process / accumulation 3), 3 in total (2.5 epochs), warmup 1" in lines
    )
    lora = count_parameters(tiny_model, freeze_llm=True, freeze_mlp=True, freeze_backbone=True, use_llm_lora=8)
    assert f"parameters: {lora.summary()}" in lines and lora.trainable == lora.lora > 0
    assert lines[-1] == "data gate: skipped (--no-data)"


def test_a_bad_record_exits_1_with_its_finding(cfg_file, tiny_model, valid_copy, capsys):
    text = valid_copy.parent / "text.jsonl"
    with open(text, "ab") as f:
        f.write(orjson.dumps({"conversations": [{"from": "human", "value": "only a question"}]}) + b"\n")
    code, lines, _ = run(capsys, str(cfg_file))
    assert code == 1
    ours = [x for x in lines if x.startswith(f"{text}:4:")]
    assert [x.split(" ", 2)[1] for x in ours] == ["IVL212", "IVL403", "IVL404"]
    from internvl_data.cli import main as ivl_data

    assert ivl_data(["validate", str(valid_copy), "--model", str(tiny_model), "--no-manifest", "--jobs", "1"]) == 1
    assert ours == [x for x in capsys.readouterr().out.splitlines() if x.startswith(f"{text}:4:")]  # as validate prints
    assert lines[-1] == "ivl-train check: the data gate refused the mixture; `ivl-train run` would stop before loading"


def test_config_problems_exit_2_with_file_and_line(cfg_file, capsys):
    cfg_file.write_text(cfg_file.read_text() + "learnig_rate: 1.0e-5\n")
    code, lines, err = run(capsys, str(cfg_file), "seed=x")
    assert code == 2 and lines == []
    assert err.splitlines() == [
        "ivl-train check: error: 2 problems in the training configuration:",
        f"  {cfg_file}:6: learnig_rate: unknown key (did you mean 'learning_rate'?)",
        "  command line (seed=x): seed: expected a whole number, got 'x'",
    ]


def test_a_checkpoint_without_template_asks_for_conv_style(cfg_file, tiny_model, tmp_path, capsys):
    import json
    import shutil

    ckpt = tmp_path / "no-template"
    shutil.copytree(tiny_model, ckpt, ignore=shutil.ignore_patterns("*.safetensors"))
    cfg = json.loads((ckpt / "config.json").read_text())
    del cfg["template"]
    (ckpt / "config.json").write_text(json.dumps(cfg))
    code, lines, err = run(capsys, str(cfg_file), f"model_name_or_path={ckpt}", "--no-data")
    assert code == 2 and lines == []
    assert err.splitlines() == [
        "ivl-train check: error: 1 problem in the training configuration:",
        f"  conv_style: {ckpt}/config.json names no template (original layout); set conv_style to one of Hermes-2, "
        "internlm2-chat, phi3-chat, internvl2_5",
    ]
    code, lines, _ = run(capsys, str(cfg_file), f"model_name_or_path={ckpt}", "--no-data", "conv_style=Hermes-2")
    assert code == 0 and " * conv_style: Hermes-2" in lines
