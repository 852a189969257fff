"""Shared builders of the trainer tests (C2): tiny checkpoints, a fixed mixed batch, the reference loss."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from internvl_data.pipeline.dataset import build_data
from tests.train.ckpt_reference import forward as reference_forward

ROOT = Path(__file__).resolve().parents[2]
VALID_META = ROOT / "fixtures" / "valid" / "meta.json"
KINDS = ("text", "single", "multi", "video")  # the fixture datasets of one kind each (first record of each)


def mixed_samples(model_dir: Path, kinds: tuple[str, ...] = KINDS, max_seq_length: int = 4096) -> list:
    """The first record of each of ``kinds`` built as the trainer builds it (2 video frames, middle sampling)."""
    bundle = build_data(
        model_dir, VALID_META, overrides={"max_seq_length": max_seq_length}, num_frames=2, sampling="middle"
    )
    ds = bundle.dataset()
    starts, pos = {}, 0
    for name, size in bundle.mixture.dataset_sizes().items():
        starts[name] = pos
        pos += size
    return [ds.build(starts[k]) for k in kinds], bundle


def reference_loss(model_dir: Path, samples: list, img_context_id: int) -> float:
    """The official loss (token mean over the micro-batch) with the reference forward, one sample at a time."""
    sd = load_file(str(model_dir / "model.safetensors"))
    cfg = json.loads((model_dir / "config.json").read_text())
    total, count = 0.0, 0
    for s in samples:
        ids = torch.as_tensor(s.input_ids)[None]
        flags = torch.as_tensor(s.image_flags)
        pixels = torch.tensor(s.pixel_values)[flags == 1]
        with torch.no_grad():
            logits = reference_forward(sd, cfg, ids, pixels if len(pixels) else None, img_context_id)
        labels = torch.as_tensor(s.labels)[1:]
        ce = F.cross_entropy(logits[0, :-1].double(), labels, ignore_index=-100, reduction="sum")
        total += float(ce)
        count += int((labels != -100).sum())
    return total / count


def write_meta(dir_: Path, parts: dict[str, tuple[str, float]], *, augment: bool = False) -> Path:
    """A meta file over fixtures/valid annotation files: ``{name: (file, repeat_time)}``."""
    meta = {
        name: {"root": str(VALID_META.parent), "annotation": str(VALID_META.parent / f), "repeat_time": r,
               "data_augment": augment}
        for name, (f, r) in parts.items()
    }  # fmt: skip
    path = dir_ / "meta.json"
    path.write_text(json.dumps(meta, indent=2))
    return path


# 8 records: 3 text-only, 2 single-image, 2 multi-image, 1 video
EIGHT = {"text": ("text.jsonl", 1), "single": ("single.jsonl", 0.4), "multi": ("multi.jsonl", 1),
         "video": ("video.jsonl", 0.5)}  # fmt: skip


def write_config(path: Path, **values) -> Path:
    import yaml

    base = {"bf16": False, "dataloader_num_workers": 0, "max_seq_length": 1024, "min_num_frame": 2,
            "max_num_frame": 4, "group_by_length": False, "grad_checkpoint": False, "report_to": "none"}  # fmt: skip
    path.write_text(yaml.safe_dump({**base, **values}))
    return path


def tiny(path: Path, llm: str = "qwen2", vit: str = "300m", **kw) -> Path:
    from internvl_train.tiny import write_tiny_checkpoint

    return write_tiny_checkpoint(path, llm, vit, max_position_embeddings=1024, **kw)


def run_cli(*argv: str) -> int:
    from internvl_train.cli.dispatch import main

    return main(["run", *argv])


def train_eight(d: Path, steps: int, learning_rate: float, **values) -> tuple[Path, Path, list[dict]]:
    """`ivl-train run` on a tiny checkpoint and the :data:`EIGHT` records in one batch of 8, ``steps`` steps at a
    constant ``learning_rate``, one checkpoint at the end (``values``: more config keys); (ckpt, meta, metric rows)."""
    ckpt = tiny(d / "ckpt")
    meta = write_meta(d, EIGHT)
    cfg = write_config(
        d / "cfg.yaml",
        model_name_or_path=str(ckpt),
        meta_path=str(meta),
        output_dir=str(d / "out"),
        per_device_train_batch_size=8,
        max_steps=steps,
        learning_rate=learning_rate,
        warmup_ratio=0,
        lr_scheduler_type="constant",
        save_steps=steps,
        **values,
    )
    assert run_cli(str(cfg)) == 0
    return ckpt, meta, [json.loads(line) for line in (d / "out" / "metrics.jsonl").read_text().splitlines()]
