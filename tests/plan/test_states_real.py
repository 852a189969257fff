"""Model states: the planner's bytes equal what a real torchrun + HF Trainer run holds, rank by rank.

Two CPU processes (gloo), the tiny native model with images in every sample, AdamW; DDP and DeepSpeed ZeRO-1/2/3
(bf16), full fine-tune (ViT frozen) and LLM LoRA. The worker (states_worker.py) sums every storage reachable from
the parameters, .grad / ds_tensor, the optimizer state and DeepSpeed's partitions just before the second step.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from internvl_train.plan.shapes import read_config, shapes_from_config
from internvl_train.plan.states import Training, Zero, plan_states
from internvl_train.tiny import write_tiny_checkpoint

pytestmark = pytest.mark.slow  # ~50 s: one 2-process torchrun for all six cases; CI runs it (issue 12's proof)

WORKER = Path(__file__).with_name("states_worker.py")
STAGE = {"ddp": 0, "zero1": 1, "zero2": 2, "zero3": 3}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("states") / "ck", "qwen2", "300m", hidden=64, layers=2)


CASES = [("ddp", 0), ("ddp", 8), ("zero1", 0), ("zero2", 0), ("zero2", 8), ("zero3", 0)]


@pytest.fixture(scope="module")
def runs(ckpt, tmp_path_factory):
    """One torchrun (2 processes) runs every case in turn (process start-up dominates the cost)."""
    out = tmp_path_factory.mktemp("runs")
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port())]
    cases = [f"{m}:{r}" for m, r in CASES]
    proc = subprocess.run(
        [*cmd, str(WORKER), str(ckpt), str(out), *cases], check=False, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.parametrize("mode,lora", CASES)
def test_states_equal_real_run(ckpt, runs, mode, lora):
    tmp_path = runs
    shapes = shapes_from_config(read_config(ckpt))
    # the worker's DeepSpeed settings: small buckets, persistence threshold 1000 (some tensors stay whole)
    zero = Zero(stage=STAGE[mode], reduce_bucket_size=50000, persistence_threshold=1000)
    train = Training(freeze_llm=bool(lora), freeze_mlp=bool(lora), use_llm_lora=lora)
    for rank in (0, 1):
        held = json.loads((tmp_path / f"{mode}-{lora}.{rank}.json").read_text())["totals"]
        plan = plan_states(shapes, train, zero, world=2, rank=rank)
        assert held["weights"] == plan.weights_trainable + plan.weights_frozen
        assert held["gradients"] == plan.gradients
        assert held["optimizer"] == plan.master_weights + plan.optimizer_moments + plan.optimizer_steps
        assert set(held) <= {"weights", "gradients", "optimizer", "buffer"}, held
