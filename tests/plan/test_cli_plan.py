"""`ivl-train plan`: JSON shape, verdicts and exit codes, suggestions, smallest GPU count, time, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from internvl_train.cli.dispatch import main
from internvl_train.cli.plan import parse_bytes
from internvl_train.plan.cards import card_config
from internvl_train.plan.config import setup_of
from internvl_train.plan.planner import GPU_COUNTS, compute
from internvl_train.plan.shapes import shapes_from_config
from internvl_train.tiny import write_tiny_checkpoint

ROOT = Path(__file__).resolve().parents[2]
GiB = 2**30


def plan_json(capsys, *argv: str) -> tuple[int, dict]:
    code = main(["plan", *argv, "--format", "json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_76b_full_on_32_gpus_fits_and_matches_the_api(capsys):
    code, out = plan_json(capsys, "--preset", "internvl2-76b-full", "--gpus", "32")
    assert code == 0
    assert out["fits"] is True and out["verdict"] in ("fits", "tight")
    assert isinstance(out["per_gpu_bytes"], int) and out["suggestions"] == []
    assert out["setup"]["zero_stage"] == 3 and out["setup"]["micro_batch"] == 1 and out["gpus"] == 32
    assert out["per_gpu_bytes"] == sum(v for k, v in out["breakdown"].items() if k != "cpu_offloaded") - min(
        out["breakdown"]["optimizer_step_fp32_gradients"],
        out["breakdown"]["activations_llm"]
        + out["breakdown"]["activations_logits_loss"]
        + out["breakdown"]["activations_vision_projector"]
        + out["breakdown"]["zero3_gathered_params"],
    )
    assert out["model"]["parameters"] == 76_262_358_400


def test_does_not_fit_gives_ranked_suggestions_and_exit_1(capsys):
    code = main(["plan", "--preset", "internvl2-8b-full", "--gpus", "2", "--gpu-memory", "40GiB"])
    text = capsys.readouterr().out
    assert code == 1
    assert "(does not fit)" in text.splitlines()[0]
    assert "does not fit; changes that help, cheapest first:" in text
    code, out = plan_json(capsys, "--preset", "internvl2-8b-full", "--gpus", "2", "--gpu-memory", "40GiB")
    assert code == 1 and out["fits"] is False
    assert out["suggestions"], out
    assert all(s["verdict"] in ("fits", "tight") for s in out["suggestions"])
    assert all(s["per_gpu_bytes"] <= 40 * GiB for s in out["suggestions"])


def test_smallest_gpu_count_when_gpus_absent(capsys):
    code, out = plan_json(capsys, "--preset", "internvl2-26b-full", "--gpu-memory", "80GiB")
    assert code == 0 and out["gpus_from"] == "smallest count that fits"
    n = out["gpus"]
    shapes = shapes_from_config(card_config("26b"))
    import argparse

    from internvl_train.cli.plan import load

    cfg = load(argparse.Namespace(config=None, preset="internvl2-26b-full", overrides=[]))
    smaller = [c for c in GPU_COUNTS if c < n]
    assert smaller, n
    assert compute(shapes, setup_of(cfg, shapes, smaller[-1]), 80 * GiB).verdict == "does not fit"
    assert compute(shapes, setup_of(cfg, shapes, n), 80 * GiB).verdict != "does not fit"


def test_lora_plans_less_than_full(capsys):
    _, full = plan_json(capsys, "--preset", "internvl2-8b-full", "--gpus", "2")
    _, lora = plan_json(capsys, "--preset", "internvl2-8b-lora", "--gpus", "2")
    assert lora["per_gpu_bytes"] < full["per_gpu_bytes"]
    assert lora["breakdown"]["optimizer_moments"] < full["breakdown"]["optimizer_moments"] / 100
    assert lora["model"]["lora"] == lora["model"]["trainable"] == 41_943_040  # r=16, native q/k/v/o/gate/up/down
    assert full["model"]["lora"] == 0


def test_checkpoint_config_and_time_from_tokens_per_second(tmp_path, capsys):
    ckpt = write_tiny_checkpoint(tmp_path / "ck", "qwen2", "300m")
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"model_name_or_path: {ckpt}\nmeta_path: {ROOT / 'fixtures/valid/meta.json'}\noutput_dir: {tmp_path / 'out'}\n"
        "deepspeed: zero2\nper_device_train_batch_size: 2\nmax_seq_length: 256\n"
    )
    meta = str(ROOT / "fixtures/valid/meta.json")
    code, out = plan_json(capsys, str(cfg), "--gpus", "2", "--meta", meta, "--tokens-per-second-per-gpu", "1000")
    assert code == 0
    assert out["model"]["source"] == str(ckpt / "config.json")
    tokens = out["mixture"]["tokens_total"]
    assert tokens > 0
    assert out["time_per_epoch_s"] == round(tokens / (1000 * 2), 1)
    assert out["time_basis"] == "1000 tokens/s per GPU"


@pytest.mark.parametrize(
    "argv,message",
    [
        ([], "ivl-train plan: error: give a config file (CFG) or --preset NAME"),
        (
            ["--preset", "internvl2-8b-full", "model_name_or_path=./nowhere"],
            "./nowhere: no config.json there and the name is not a released InternVL2 size",
        ),
        (["--preset", "internvl2-8b-full", "--gpu-memory", "80XB"], "'80XB' is not a size"),
        (["--preset", "internvl2-8b-ful"], "unknown preset 'internvl2-8b-ful' (did you mean 'internvl2-8b-full'?)"),
    ],
)
def test_bad_input_one_line_exit_2(argv, message, capsys):
    try:
        code = main(["plan", *argv])
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_parse_bytes():
    assert parse_bytes("80GiB") == 80 * GiB
    assert parse_bytes("80GB") == 80 * 10**9
    assert parse_bytes("141G") == 141 * GiB
    with pytest.raises(ValueError, match="not a size"):
        parse_bytes("lots")


def test_flop_based_time():
    from internvl_train.plan.planner import GPUS, epoch_seconds, flops_per_token

    shapes = shapes_from_config(card_config("8b"))
    import argparse

    from internvl_train.cli.plan import load

    cfg = load(argparse.Namespace(config=None, preset="internvl2-8b-full", overrides=[]))
    setup = setup_of(cfg, shapes, 8)
    fpt = flops_per_token(shapes, setup)
    llm = shapes.numel("llm") - shapes.dims.vocab * shapes.dims.hidden
    assert 8 * llm < fpt < 9 * llm  # full training with checkpointing: 8 x parameters + attention + the ViT's share
    secs, how = epoch_seconds(10**9, 8, shapes=shapes, setup=setup, gpu="h100", mfu=0.5)
    assert secs == pytest.approx(10**9 / (GPUS["h100"] * 0.5 / fpt * 8))
    assert how.startswith("H100 bf16 peak at 50% MFU = ")
    lora = load(argparse.Namespace(config=None, preset="internvl2-8b-lora", overrides=[]))
    assert flops_per_token(shapes, setup_of(lora, shapes, 2)) < fpt  # no weight gradients of the frozen LLM


def test_official_environment_variables_as_run_reads_them(capsys, monkeypatch):
    monkeypatch.setenv("GPUS", "4")
    monkeypatch.setenv("PER_DEVICE_BATCH_SIZE", "1")
    code, out = plan_json(capsys, "--preset", "internvl2-8b-full")
    assert code == 0
    assert (out["gpus"], out["gpus_from"], out["setup"]["micro_batch"]) == (4, "GPUS", 1)
    code, out = plan_json(capsys, "--preset", "internvl2-8b-full", "--gpus", "8")  # the flag wins
    assert (out["gpus"], out["gpus_from"]) == (8, "--gpus")
