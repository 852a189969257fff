"""Activation memory of one forward + backward, measured, next to what `ivl-train plan` predicts.

    python benchmarks/plan_activations.py [--models tiny,100m] [--device cpu|cuda] [--json OUT]

Two native InternVL models (the tiny test model and a ~100M-parameter one, both Qwen2 + InternViT-300M layout),
bf16 weights as DeepSpeed holds them, the ViT frozen and the LLM + projector trained (the official full
fine-tune), micro-batch 1, three sequence lengths x three tile counts, with and without gradient checkpointing.

Measured: the peak of live tensor memory during one forward + backward above the memory held before it (the
weights and, after a warm-up step, the gradients): on CPU from the PyTorch profiler's memory events
(``profile_memory=True``: every allocation and free, summed in time order), on CUDA from
``torch.cuda.max_memory_allocated``. Planned: `internvl_train.plan.activations.activation_bytes`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# name -> (write_tiny_checkpoint kwargs, sequence lengths, tile counts)
MODELS = {
    "tiny": (
        dict(hidden=64, layers=2, heads=4, vocab_size=512, vision_hidden=32, vision_layers=2, image_size=56),
        (64, 128, 256),
        (1, 3, 7),
    ),
    "100m": (
        dict(
            hidden=768,
            layers=8,
            heads=12,
            kv_heads=4,
            intermediate=2048,
            vocab_size=32000,
            vision_hidden=256,
            vision_layers=4,
            vision_heads=4,
            image_size=224,
            max_position_embeddings=4096,
        ),
        (512, 1024, 2048),
        (1, 3, 7),
    ),
}


def build(name: str, workdir: Path) -> tuple[torch.nn.Module, Path]:
    """The native model of ``name`` in bf16 with the ViT frozen (weights random, from a tiny checkpoint)."""
    from transformers.utils import logging as hf_logging

    from internvl_train.checkpoint.loading import load_pretrained
    from internvl_train.tiny import write_tiny_checkpoint

    hf_logging.set_verbosity_error()
    ckpt = workdir / name
    if not (ckpt / "config.json").exists():
        write_tiny_checkpoint(ckpt, "qwen2", "300m", **MODELS[name][0])
    model, _ = load_pretrained(ckpt, dtype=torch.bfloat16)
    model.model.vision_tower.requires_grad_(False)
    model.config.text_config.use_cache = False
    model.train()
    return model, ckpt


def batch(model: torch.nn.Module, seq: int, tiles: int, device: str) -> dict[str, torch.Tensor]:
    cfg = model.config
    size = cfg.vision_config.image_size
    size = size[0] if isinstance(size, (list, tuple)) else size
    per_tile = int(cfg.image_seq_length)
    g = torch.Generator().manual_seed(seq * 31 + tiles)
    ids = torch.randint(20, cfg.text_config.vocab_size, (1, seq), generator=g)
    ids[0, 1 : 1 + tiles * per_tile] = cfg.image_token_id
    labels = ids.clone()
    labels[0, : 1 + tiles * per_tile] = -100
    pixels = torch.randn(tiles, 3, size, size, generator=g).to(torch.bfloat16)
    return {"input_ids": ids.to(device), "labels": labels.to(device), "pixel_values": pixels.to(device)}


def step(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> None:
    model(**inputs).loss.backward()


def measure(model: torch.nn.Module, seq: int, tiles: int, checkpointing: bool, device: str = "cpu") -> int:
    """Peak bytes of live tensors in one forward + backward above what was live before it."""
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()
    model.train()
    inputs = batch(model, seq, tiles, device)
    step(model, inputs)  # warm-up: the gradients exist from now on, as they do in training
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step(model, inputs)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step(model, inputs)
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


def planned(ckpt: Path, seq: int, tiles: int, checkpointing: bool) -> int:
    from internvl_train.plan.activations import Workload, activation_bytes
    from internvl_train.plan.shapes import read_config, shapes_from_config

    shapes = shapes_from_config(read_config(ckpt))
    work = Workload(micro_batch=1, seq_len=seq, tiles=tiles, grad_checkpoint=checkpointing)
    return activation_bytes(shapes, work, vit_trainable=False).total


def table(names: list[str], device: str, workdir: Path, cells: list[tuple[int, int]] | None = None) -> list[dict]:
    rows = []
    for name in names:
        model, ckpt = build(name, workdir)
        model.to(device)
        seqs, tile_counts = MODELS[name][1], MODELS[name][2]
        for checkpointing in (False, True):
            for seq in seqs:
                for tiles in tile_counts:
                    if cells is not None and (seq, tiles) not in cells:
                        continue
                    got = measure(model, seq, tiles, checkpointing, device)
                    plan = planned(ckpt, seq, tiles, checkpointing)
                    rows.append(
                        dict(
                            model=name,
                            device=device,
                            grad_checkpoint=checkpointing,
                            seq_len=seq,
                            tiles=tiles,
                            measured=got,
                            planned=plan,
                            ratio=round(plan / got, 3),
                        )
                    )
        del model
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tiny,100m")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda"))
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = table(args.models.split(","), args.device, Path(tmp))
    print("| model | device | grad ckpt | seq | tiles | measured MiB | planned MiB | planned / measured |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['device']} | {'yes' if r['grad_checkpoint'] else 'no'} | {r['seq_len']} | "
            f"{r['tiles']} | {r['measured'] / 2**20:.2f} | {r['planned'] / 2**20:.2f} | {r['ratio']:.3f} |"
        )
    worst = max(abs(r["ratio"] - 1) for r in rows)
    print(f"worst |planned / measured - 1| = {worst:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
