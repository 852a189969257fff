"""Exact resume through `ivl-train run` (tiny checkpoint, CPU, single process), and a real 2-process launch.

A run killed with SIGKILL right after checkpoint-N is complete, then started again with the same command, ends
with the same weights (bitwise) and the same metrics.jsonl as a run that was never interrupted; a run killed in
the middle of writing a checkpoint resumes from the previous complete one; changed data refuses to resume.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
VALID = ROOT / "fixtures" / "valid"

pytestmark = pytest.mark.slow

# Runs `ivl-train run ARGS` in this process after adding a SIGKILL at a chosen point: KILL_AT=N right after
# checkpoint-N is complete (after the completion marker's callback), KILL_IN=N after checkpoint-N's weights
# were written but before the optimizer state and the marker, KILL_BEFORE_MARKER=N after every file of
# checkpoint-N but the marker (where HF would already have deleted the previous checkpoint).
HARNESS = """
import os, signal, sys
from internvl_train.recipe import train as T

kill_at, kill_in = int(os.environ.get("KILL_AT", "0")), int(os.environ.get("KILL_IN", "0"))
kill_before_marker = int(os.environ.get("KILL_BEFORE_MARKER", "0"))
make = T.make_trainer

def make_trainer(*a, **kw):
    from transformers import TrainerCallback

    trainer = make(*a, **kw)

    class Kill(TrainerCallback):
        def on_save(self, args, state, control, **k):
            if state.global_step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    trainer.add_callback(Kill())
    save = trainer._save

    def _save(output_dir=None, state_dict=None):
        save(output_dir, state_dict)
        if kill_in and str(output_dir).endswith(f"checkpoint-{kill_in}"):
            os.kill(os.getpid(), signal.SIGKILL)

    trainer._save = _save
    save_checkpoint = trainer._save_checkpoint

    def _save_checkpoint(model, trial):
        save_checkpoint(model, trial)  # every file of checkpoint-N written; the marker is next
        if trainer.state.global_step == kill_before_marker:
            os.kill(os.getpid(), signal.SIGKILL)

    trainer._save_checkpoint = _save_checkpoint
    return trainer

T.make_trainer = make_trainer
from internvl_train.cli.dispatch import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from internvl_train.tiny import write_tiny_checkpoint

    root = tmp_path_factory.mktemp("resume-e2e")
    model = write_tiny_checkpoint(root / "model", "qwen2", "300m", max_position_embeddings=1024)
    shutil.copytree(VALID, root / "data")
    cfg = root / "run.yaml"
    cfg.write_text(
        f"model_name_or_path: {model}\n"
        f"meta_path: {root / 'data' / 'meta.json'}\n"
        "max_steps: 6\nsave_steps: 2\nper_device_train_batch_size: 2\ngradient_accumulation_steps: 1\n"
        "learning_rate: 1.0e-3\nbf16: false\ndataloader_num_workers: 0\nmax_seq_length: 1024\nreport_to: none\n"
    )
    harness = root / "harness.py"
    harness.write_text(HARNESS)
    return root, cfg, harness


def start(setup, out: Path, *overrides: str, **env: str) -> subprocess.Popen:
    root, cfg, harness = setup
    full_env = {k: v for k, v in os.environ.items() if k not in ("GPUS", "RANK", "WORLD_SIZE", "LOCAL_RANK")}
    full_env.update(env, PYTHONPATH=str(ROOT), IVL_DEBUG="")
    return subprocess.Popen(
        [sys.executable, str(harness), "run", str(cfg), f"output_dir={out}", *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=full_env,
        cwd=root,
    )


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out


def weights(out: Path) -> dict:
    from safetensors.torch import load_file

    state = {}
    for f in sorted((out / "model").glob("*.safetensors")):
        state.update(load_file(str(f)))
    assert state
    return state


SPEED = ("samples_per_second", "tokens_per_second")  # wall-clock fields: the only ones that may differ


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def trained(out: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock fields: step, epoch, loss, learning rate, grad norm, token counts."""
    return [{k: v for k, v in m.items() if k not in SPEED} for m in metrics(out)]


@pytest.fixture(scope="module")
def uninterrupted(setup):
    root = setup[0]
    code, log = finish(start(setup, root / "A"))
    assert code == 0, log
    return root / "A"


def test_kill_after_a_complete_checkpoint_then_the_same_command(setup, uninterrupted):
    import torch

    out = setup[0] / "B"
    code, log = finish(start(setup, out, KILL_AT="4"))
    assert code == -9, log
    assert (out / "checkpoint-4" / "ivl-complete.json").is_file() and not (out / "model").exists()
    code, log = finish(start(setup, out))  # the same command again
    assert code == 0, log
    assert "resuming from checkpoint-4 (step 4)" in log
    a, b = weights(uninterrupted), weights(out)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)  # bitwise
    assert [m["step"] for m in metrics(out)] == [1, 2, 3, 4, 5, 6]  # no gap, no duplicate
    assert trained(out) == trained(uninterrupted)


def test_lora_kill_then_the_same_command_equals_uninterrupted(setup):
    import torch
    from safetensors.torch import load_file

    lora = ("use_llm_lora=4", "freeze_llm=true", "freeze_mlp=true")
    root = setup[0]
    whole = start(setup, root / "LA", *lora)  # the uninterrupted run, side by side with the killed one
    code, log = finish(start(setup, root / "LB", *lora, KILL_AT="4"))
    assert code == -9, log
    code, log = finish(start(setup, root / "LB", *lora))
    assert code == 0, log
    assert "resuming from checkpoint-4 (step 4)" in log
    code, log = finish(whole)
    assert code == 0, log
    a = load_file(str(root / "LA" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(root / "LB" / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert trained(root / "LB") == trained(root / "LA")


def test_kills_while_writing_checkpoints_resume_from_the_previous_complete_one(setup, uninterrupted):
    import torch

    out = setup[0] / "C"
    # 1. killed in the middle of writing checkpoint-4 (weights written, optimizer state and marker not)
    code, log = finish(start(setup, out, KILL_IN="4"))
    assert code == -9, log
    assert (out / "checkpoint-4").is_dir() and not (out / "checkpoint-4" / "ivl-complete.json").exists()
    assert (out / "checkpoint-2" / "ivl-complete.json").is_file()
    # 2. the same command resumes from checkpoint-2; killed again after every file of checkpoint-6 but the marker,
    #    where HF would already have deleted checkpoint-4 (save_total_limit 1)
    code, log = finish(start(setup, out, KILL_BEFORE_MARKER="6"))
    assert code == -9, log
    assert "resuming from checkpoint-2 (step 2)" in log
    assert (out / "checkpoint-6" / "trainer_state.json").is_file()
    assert not (out / "checkpoint-6" / "ivl-complete.json").exists()
    assert (out / "checkpoint-4" / "ivl-complete.json").is_file()  # kept: the new one is not complete yet
    # 3. the same command resumes from checkpoint-4 and ends as if never interrupted
    code, log = finish(start(setup, out))
    assert code == 0, log
    assert "resuming from checkpoint-4 (step 4)" in log
    a, c = weights(uninterrupted), weights(out)
    assert all(torch.equal(a[k], c[k]) for k in a)
    assert trained(out) == trained(uninterrupted)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-6"]  # rotation still keeps one


def test_changed_data_refuses_to_resume_naming_the_dataset(setup, uninterrupted):
    root = setup[0]
    out = root / "D"
    shutil.copytree(uninterrupted, out)  # a finished run: its newest complete checkpoint is checkpoint-6
    text = root / "data" / "text.jsonl"
    original = text.read_bytes()
    try:
        text.write_bytes(original.replace(b"?", b"!", 1))
        assert text.read_bytes() != original
        code, log = finish(start(setup, out))
    finally:
        text.write_bytes(original)
    assert code == 2, log
    assert log.strip().splitlines()[-1] == (
        f"ivl-train run: error: resume refused: the data changed since checkpoint-6 was written (dataset 'text': "
        f"the content of {text} changed); restore the data, or start over with overwrite_output_dir=true or "
        f"another output_dir than {out}"
    )


def test_gpus_2_launches_two_cpu_processes_that_train(setup, tmp_path):
    root, cfg, _ = setup
    preset = tmp_path / "tiny-preset.yaml"
    preset.write_text(
        "launch:\n  gpus: 1\n  batch_size: 4\n"
        "max_steps: 2\nsave_steps: 2\nper_device_train_batch_size: 1\nlearning_rate: 1.0e-3\nbf16: false\n"
        "dataloader_num_workers: 0\nmax_seq_length: 1024\nreport_to: none\n"
    )
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    port = free_port()
    env.update(GPUS="2", MASTER_PORT=str(port), PYTHONPATH=str(ROOT))
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "internvl_train",
            "run",
            "--preset",
            str(preset),
            "--meta",
            str(root / "data" / "meta.json"),
            f"model_name_or_path={root / 'model'}",
            f"output_dir={out}",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ivl-train run: launching 2 processes: IVL_TRAIN_LAUNCHER=torchrun " in res.stderr
    assert f"--nproc_per_node=2 --master_port={port} -m internvl_train run" in res.stderr
    info = json.loads((out / "ivl-run.json").read_text())
    assert info["world_size"] == 2
    # BATCH_SIZE 4 / per-device 1 / 2 processes: accumulation 2
    assert info["config"]["gradient_accumulation_steps"] == 2
    assert [m["step"] for m in metrics(out)] == [1, 2]
    assert (out / "checkpoint-2" / "ivl-complete.json").is_file() and (out / "model" / "config.json").is_file()
