"""Milliseconds per optimizer step and peak RSS: `ivl-train`'s Trainer path vs a plain PyTorch loop, on CPU.

    python benchmarks/train_step.py [--steps 5] [--warmup 2] [--sizes tiny,100m]

For each model size (a tiny checkpoint, and a ~100M-parameter one: hidden 768, 12 layers), the same 2 records of
fixtures/valid (one single-image, one text-only: batch 2) are built once; then, each in a fresh process:

- plain: ``TrainModel`` (the same native model and forward) in a hand-written loop: collate, forward, backward,
  clip to 1.0, AdamW step, zero_grad, scheduler step;
- ours:  the recipe's HF Trainer subclass (``IvlTrainer``) over the same samples, with the metrics callback.

Both run ``warmup + steps`` optimizer steps; the wall and process-CPU time of the last ``steps`` is reported (ms/step), and the peak
RSS of the process (ru_maxrss). The ratio ours / plain is the Trainer's overhead (target <= 1.10).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = {
    "tiny": {},
    "100m": dict(hidden=768, layers=12, heads=12, kv_heads=12, intermediate=3072, vision_hidden=64, vision_layers=2),
}


def _samples(ckpt: Path, meta: Path) -> list:
    from internvl_data.pipeline.dataset import build_data

    bundle = build_data(ckpt, meta, overrides={"max_seq_length": 1024, "seed": 0})
    ds = bundle.dataset()
    return [ds.build(i) for i in range(len(ds))], bundle.collator


def child(mode: str, ckpt: str, meta: str, steps: int, warmup: int) -> dict:
    import torch

    from internvl_train.recipe.model import ModelSpec, build_model

    torch.manual_seed(0)
    samples, collator = _samples(Path(ckpt), Path(meta))
    model, tok = build_model(ModelSpec(ckpt, freeze_backbone=False, grad_checkpoint=False))
    total = warmup + steps
    stamps: list[float] = []
    cpu: list[float] = []  # process CPU time (all threads): steadier than wall time on a shared machine
    if mode == "plain":
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, weight_decay=0.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        model.train()
        for _ in range(total):
            loss = model(**collator(samples))["loss"]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            sched.step()
            stamps.append(time.perf_counter())
            cpu.append(time.process_time())
    else:
        from transformers import TrainerCallback, TrainingArguments

        from internvl_train.recipe.callbacks import MetricsCallback
        from internvl_train.recipe.train import _trainer_class

        class Stamp(TrainerCallback):
            def on_step_end(self, *a, **k):
                stamps.append(time.perf_counter())
                cpu.append(time.process_time())

        class Fixed(torch.utils.data.Dataset):
            def __len__(self):
                return len(samples) * total

            def __getitem__(self, i):
                return samples[i % len(samples)]

        out = tempfile.mkdtemp(prefix="ivl-bench-")
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=len(samples),
            max_steps=total,
            learning_rate=1e-5,
            weight_decay=0.0,
            lr_scheduler_type="constant",
            save_strategy="no",
            logging_steps=1,
            report_to="none",
            disable_tqdm=True,
            dataloader_num_workers=0,
            remove_unused_columns=False,
            train_sampling_strategy="sequential",
            bf16=False,
        )
        trainer = _trainer_class()(
            model=model,
            args=args,
            train_dataset=Fixed(),
            data_collator=collator,
            callbacks=[MetricsCallback(Path(out) / "metrics.jsonl"), Stamp()],
        )
        trainer.train()
    ms = (stamps[-1] - stamps[warmup - 1]) / steps * 1000
    cpu_ms = (cpu[-1] - cpu[warmup - 1]) / steps * 1000
    n_params = sum(p.numel() for p in model.parameters())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"ms": ms, "cpu_ms": cpu_ms, "rss_mb": rss, "params": n_params}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--sizes", default="tiny,100m")
    ap.add_argument("--child", nargs=3, metavar=("MODE", "CKPT", "META"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(*a.child, a.steps, a.warmup)))
        return
    from internvl_train.tiny import write_tiny_checkpoint

    work = Path(tempfile.mkdtemp(prefix="ivl-train-step-"))
    fixtures = ROOT / "fixtures" / "valid"
    meta = work / "meta.json"
    lines = [
        (fixtures / "single.jsonl").read_text().splitlines()[0],
        (fixtures / "text.jsonl").read_text().splitlines()[0],
    ]
    (work / "two.jsonl").write_text("\n".join(lines) + "\n")
    meta.write_text(
        json.dumps(
            {
                "two": {
                    "root": str(fixtures),
                    "annotation": str(work / "two.jsonl"),
                    "repeat_time": 1,
                    "data_augment": False,
                }
            }
        )
    )
    rows = []
    for size in a.sizes.split(","):
        ckpt = write_tiny_checkpoint(work / size, "qwen2", "300m", max_position_embeddings=1024, **SIZES[size])
        res = {}
        for mode in ("plain", "ours"):
            cmd = [sys.executable, __file__, "--child", mode, str(ckpt), str(meta)]
            cmd += ["--steps", str(a.steps), "--warmup", str(a.warmup)]
            env = dict(os.environ, PYTHONPATH=str(ROOT))
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600, check=False)
            if proc.returncode != 0:
                sys.exit(proc.stderr[-3000:])
            res[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{size} {mode}: {res[mode]}", file=sys.stderr, flush=True)
        rows.append((size, res))
    head = ["model", "params", "plain ms", "ours ms", "ratio", "plain CPU ms", "ours CPU ms", "ratio"]
    head += ["plain RSS MB", "ours RSS MB", "ratio"]
    print(" | ".join(head))
    for size, r in rows:
        p, o = r["plain"], r["ours"]
        cells = [size, f"{o['params']:,}", f"{p['ms']:.0f}", f"{o['ms']:.0f}", f"{o['ms'] / p['ms']:.3f}"]
        cells += [f"{p['cpu_ms']:.0f}", f"{o['cpu_ms']:.0f}", f"{o['cpu_ms'] / p['cpu_ms']:.3f}"]
        cells += [f"{p['rss_mb']:.0f}", f"{o['rss_mb']:.0f}", f"{o['rss_mb'] / p['rss_mb']:.3f}"]
        print(" | ".join(cells))


if __name__ == "__main__":
    main()
