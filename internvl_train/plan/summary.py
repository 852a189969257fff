"""The plan's one line that `ivl-train run` prints before training, and its warning when the plan does not fit."""

from __future__ import annotations

import os
import sys
from typing import Any


def plan_for_run(cfg: Any, world: int, gpu_memory: int | None) -> dict[str, Any]:
    """The same dict `ivl-train plan --format json` prints, for a resolved TrainConfig on ``world`` GPUs."""
    from internvl_train.cli import plan as cli

    return cli.build(cli.plan_args(gpus=world, gpu_memory=gpu_memory), cfg=cfg)


def announce(cfg: Any, *, world: int | None = None, gpu_memory: int | None = None, file: Any = None) -> str | None:
    """Print the one-line plan (rank 0 only) and a warning when it will not fit; never stops the run."""
    if os.environ.get("RANK", "0") != "0":
        return None
    out = file or sys.stdout
    world = world or int(os.environ.get("WORLD_SIZE", "1"))
    if gpu_memory is None:
        gpu_memory = _gpu_memory()
    try:
        plan = plan_for_run(cfg, world, gpu_memory)
    except Exception as exc:  # the plan is advice: a failure to make it must not stop training
        line = f"plan: not available ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        print(line, file=out, flush=True)
        return line
    from internvl_train.cli.plan import human, summary_line

    line = summary_line(plan)
    print(line, file=out, flush=True)
    if plan["fits"] is False:
        print(
            f"warning: the plan says this run will not fit: {human(plan['per_gpu_bytes'])} per GPU of "
            f"{human(plan['gpu_memory'])}; `ivl-train plan CFG --gpus {world}` lists the changes that make it fit",
            file=sys.stderr,
            flush=True,
        )
    return line


def _gpu_memory() -> int | None:
    try:
        import torch

        if torch.cuda.is_available():
            return int(torch.cuda.get_device_properties(0).total_memory)
    except Exception:
        return None
    return None
