"""Trainer callbacks: metrics.jsonl, progress (rich on a terminal, a line per log otherwise), loss.png, and the
completion marker written last into every checkpoint-N."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from internvl_train.recipe.output import write_complete_marker

METRIC_FIELDS = (
    "step",
    "epoch",
    "loss",
    "learning_rate",
    "grad_norm",
    "tokens",
    "supervised_tokens",
    "samples_per_second",
    "tokens_per_second",
)


class MetricsCallback(TrainerCallback):
    """One JSON line per logging step in ``metrics.jsonl`` (rank 0): :data:`METRIC_FIELDS`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        row = {"step": state.global_step, **{k: logs.get(k) for k in METRIC_FIELDS[1:]}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


class ProgressCallback(TrainerCallback):
    """A rich progress bar with ETA on a terminal; elsewhere one plain line per log (rank 0)."""

    def __init__(self, stream: Any = None):
        self.stream = stream or sys.stderr
        self.progress = None
        self.task = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if not state.is_world_process_zero or not self.stream.isatty():
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=Console(file=self.stream),
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=state.max_steps, info="")

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        info = f"loss {logs['loss']:.4f} lr {logs.get('learning_rate', 0):.3g}"
        if self.progress is not None:
            self.progress.update(self.task, info=info)
        else:
            print(f"step {state.global_step}/{state.max_steps} {info}", file=self.stream, flush=True)

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class CompletionCallback(TrainerCallback):
    """After every rank has written its part of checkpoint-N, rank 0 writes ``ivl-complete.json`` into it."""

    def __init__(self, manifest_hash: str | None):
        self.manifest_hash = manifest_hash

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()
        if state.is_world_process_zero:
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if ckpt.is_dir():
                write_complete_marker(ckpt, state.global_step, self.manifest_hash)
            # only now may older checkpoints go (the trainer defers save_total_limit to here): a kill before the
            # marker must leave the previous complete checkpoint for resume
            from transformers.trainer_utils import rotate_checkpoints

            rotate_checkpoints(
                args.output_dir,
                args.save_total_limit,
                best_model_checkpoint=state.best_model_checkpoint,
                use_mtime=True,
            )


class LossPlotCallback(TrainerCallback):
    """``loss.png`` (loss and learning rate per step, from metrics.jsonl) at the end of training (rank 0)."""

    def __init__(self, metrics: str | os.PathLike, out: str | os.PathLike):
        self.metrics, self.out = Path(metrics), Path(out)

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if state.is_world_process_zero:
            plot_loss(self.metrics, self.out)


def plot_loss(metrics: Path, out: Path) -> Path | None:
    """Loss (left axis) and learning rate (right axis) against the step; None when there is nothing logged."""
    if not metrics.is_file():
        return None
    rows = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if r.get("loss") is not None]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    steps = [r["step"] for r in rows]
    ax.plot(steps, [r["loss"] for r in rows], color="tab:blue", label="loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss", color="tab:blue")
    lr = ax.twinx()
    lr.plot(steps, [r.get("learning_rate") or 0.0 for r in rows], color="tab:orange", label="learning rate")
    lr.set_ylabel("learning rate", color="tab:orange")
    fig.tight_layout()
    from internvl_data.fsio import atomic_file

    try:
        with atomic_file(out) as fh:  # temp beside it, fsync, rename; removed on any failure
            fig.savefig(fh, format="png", dpi=100)
    finally:
        plt.close(fig)
    return out


__all__ = [
    "METRIC_FIELDS",
    "CompletionCallback",
    "LossPlotCallback",
    "MetricsCallback",
    "ProgressCallback",
    "plot_loss",
]
