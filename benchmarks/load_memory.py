"""Peak host memory while loading a sharded original-layout InternVL2 checkpoint (~1 GB in bfloat16).

    python benchmarks/load_memory.py [--dir DIR] [--keep]

Writes a synthetic InternLM2-family checkpoint (8 safetensors shards + index), then loads it in fresh
processes, reads every parameter page once (memory-mapped weights count), and prints, for each way of loading,
the peak resident memory above the process's memory just before loading, as a ratio of the model's size in bfloat16:

- ours:     internvl_train.load_pretrained (model on the meta device, shards streamed tensor by tensor);
- baseline: the whole state dict read first (safetensors load_file per shard), converted, then a regular
            InternVLForConditionalGeneration built and load_state_dict'ed (how conversion scripts usually work);
- ours, native layout: the same checkpoint converted to the native layout first (`ivl-train convert --to hf`),
            loaded by load_pretrained (transformers' own from_pretrained underneath).

The target is ours <= 1.3x.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SIZES = dict(
    hidden=2048,
    layers=8,
    heads=16,
    kv_heads=8,
    intermediate=5632,
    vocab_size=32000,
    vision_hidden=256,
    vision_layers=2,
    vision_heads=4,
    image_size=448,
)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _PeakSampler(threading.Thread):
    """Samples this process's RSS every millisecond until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = _rss_bytes()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(0.001)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return max(self.peak, _rss_bytes())


def _load_ours(path: Path):
    from internvl_train import load_pretrained

    return load_pretrained(path, dtype="bfloat16")[0]


def _load_baseline(path: Path):
    import torch
    from safetensors.torch import load_file
    from transformers import InternVLForConditionalGeneration

    from internvl_train.checkpoint import configmap
    from internvl_train.checkpoint.loading import image_token_id_of, keymap_for, load_tokenizer
    from internvl_train.checkpoint.shards import weight_files

    state: dict = {}
    for f in weight_files(path):
        state.update(load_file(str(f)))
    cfg = json.loads((path / "config.json").read_text())
    config = configmap.to_native(cfg, image_token_id_of(load_tokenizer(path)), str(path))
    keymap = keymap_for(config)
    converted = dict(pair for key, tensor in state.items() for pair in keymap.to_native(key, tensor))
    config.dtype = torch.bfloat16
    torch.set_default_dtype(torch.bfloat16)
    model = InternVLForConditionalGeneration(config)
    model.load_state_dict(converted, strict=True)
    return model


def _touch(model) -> None:
    """Read one value per memory page of every parameter, so weights that are still memory-mapped count too."""
    for p in model.parameters():
        flat = p.detach().reshape(-1)
        flat[:: max(1, 4096 // flat.element_size())].float().sum()


def child(mode: str, path: Path) -> None:
    """Run in a fresh process: import everything, then measure one load."""
    import torch  # noqa: F401
    import transformers  # noqa: F401

    import internvl_train.checkpoint.loading  # noqa: F401

    before = _rss_bytes()
    sampler = _PeakSampler()
    sampler.start()
    t0 = time.perf_counter()
    model = (_load_baseline if mode == "baseline" else _load_ours)(path)
    seconds = time.perf_counter() - t0
    _touch(model)
    peak = sampler.stop()
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps({"mode": mode, "before": before, "peak": peak, "maxrss": maxrss, "size": size, "seconds": seconds})
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="where to write the synthetic checkpoint (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the checkpoint")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return 0
    import torch

    from internvl_train.tiny import write_tiny_checkpoint

    root = Path(args.dir or tempfile.mkdtemp(prefix="ivl-loadmem-"))
    path = root / "internvl2-synthetic"
    t0 = time.perf_counter()
    if not (path / "model.safetensors.index.json").exists():
        write_tiny_checkpoint(path, "internlm2", "300m", sharded=True, num_shards=8, dtype=torch.bfloat16, **SIZES)
    on_disk = sum(f.stat().st_size for f in path.glob("*.safetensors"))
    print(f"checkpoint: {path} ({on_disk / 2**30:.2f} GiB in 8 shards, written in {time.perf_counter() - t0:.0f} s)")
    native = root / "internvl2-synthetic-hf"
    if not (native / "config.json").exists():
        subprocess.run(
            [sys.executable, "-m", "internvl_train", "convert", str(path), str(native), "--to", "hf"],
            capture_output=True,
            check=True,
        )
    rows = []
    for mode, src in (("ours", path), ("baseline", path), ("ours, native layout", native)):
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode, str(src)], capture_output=True, text=True, check=True
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    gib = 2**30
    print("\n| loader | model size (GiB) | peak RSS above start (GiB) | ratio | load time (s) |")
    print("|---|---|---|---|---|")
    for r in rows:
        extra = r["peak"] - r["before"]
        print(
            f"| {r['mode']} | {r['size'] / gib:.2f} | {extra / gib:.2f} | {extra / r['size']:.2f}x "
            f"| {r['seconds']:.1f} |"
        )
    ours, base = rows[:2]
    print(
        f"\nours / baseline peak: {(ours['peak'] - ours['before']) / (base['peak'] - base['before']):.2f}"
        f"  (target: ours <= 1.30x the model size)"
    )
    if not args.keep and not args.dir:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
