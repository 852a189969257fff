"""`torchrun --nproc_per_node 2` on CPU (gloo): DDP, ZeRO-2 and ZeRO-3 each run 3 steps in which rank 0's
micro-batch is text-only and rank 1's has an image: no hang, and the logged losses equal one process reading the
same 2 records per step (2 accumulation steps) to 1e-4."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.helpers.ports import free_port
from tests.trainer.model_helpers import ROOT, VALID_META, tiny, write_config

pytestmark = pytest.mark.slow  # four short subprocess runs
DRIVER = Path(__file__).with_name("dist_driver.py")
TIMEOUT = 420


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("dist")
    ckpt = tiny(d / "ckpt")
    lines = {n: (VALID_META.parent / f"{n}.jsonl").read_text().splitlines() for n in ("text", "single")}
    records = [r for pair in zip(lines["text"], lines["single"]) for r in pair]  # text, image, text, image, ...
    (d / "alternating.jsonl").write_text("\n".join(records) + "\n")
    meta = {
        "alt": {
            "root": str(VALID_META.parent),
            "annotation": str(d / "alternating.jsonl"),
            "repeat_time": 1,
            "data_augment": False,
        }
    }
    (d / "meta.json").write_text(json.dumps(meta))
    return d, ckpt


def _run(d: Path, ckpt: Path, name: str, nproc: int, **values) -> list[float]:
    out = d / name
    cfg = write_config(
        d / f"{name}.yaml",
        model_name_or_path=str(ckpt),
        meta_path=str(d / "meta.json"),
        output_dir=str(out),
        per_device_train_batch_size=1,
        max_steps=3,
        learning_rate=1e-3,
        weight_decay=0.0,  # DeepSpeed's AdamW decays every parameter, HF's skips biases and norms: same with 0
        warmup_ratio=0,
        lr_scheduler_type="constant",
        save_steps=1000,
        **values,
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    if nproc == 1:
        cmd = [sys.executable, str(DRIVER), str(cfg)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
        cmd += ["--master_port", str(free_port()), str(DRIVER), str(cfg)]
    proc = subprocess.run(cmd, cwd=d, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    return [r["loss"] for r in rows]


@pytest.fixture(scope="module")
def single(setup):
    d, ckpt = setup
    return _run(d, ckpt, "single", 1, gradient_accumulation_steps=2)


@pytest.mark.parametrize("deepspeed", [None, "zero2", "zero3"], ids=["ddp", "zero2", "zero3"])
def test_two_ranks_equal_one_process(setup, single, deepspeed):
    d, ckpt = setup
    extra = {"deepspeed": deepspeed} if deepspeed else {}
    losses = _run(d, ckpt, f"ranks-{deepspeed or 'ddp'}", 2, **extra)
    assert losses == pytest.approx(single, rel=1e-4)
    assert len(set(single)) == 3  # the weights moved between steps
    if deepspeed == "zero3":  # the final model holds the gathered full weights, not the empty local shards
        final = load_file(str(d / "ranks-zero3" / "model" / "model.safetensors"))
        base = load_file(str(ckpt / "model.safetensors"))
        assert {k: v.shape for k, v in final.items()} == {k: v.shape for k, v in base.items()}
