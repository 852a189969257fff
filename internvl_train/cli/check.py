"""`ivl-train check CFG [key=value ...]`: a run's config and data checked without loading a single weight.

Prints the resolved values, the launch and batch arithmetic (effective global batch), the samples and optimizer
steps per epoch (the mixture's line counts after repeat_time), the trainable-parameter count from config.json
for the freeze / LoRA flags, and the data gate's verdict, printed as ``ivl-data validate`` prints its findings.
Exit 0 ready to train, 1 the data gate refused the data, 2 the config (or the checkpoint) is unusable.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from typing import Any

HELP = "check a training config and its data without loading weights: resolved values, batch, steps, parameters"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CFG", nargs="?", help="YAML training config (keys: the official flag names)")
    parser.add_argument(  # REMAINDER: options may follow the overrides too (run() sorts them out)
        "overrides",
        metavar="key=value",
        nargs=argparse.REMAINDER,
        help="overrides, as YAML scalars (learning_rate=1e-5)",
    )
    _add_options(parser)


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", metavar="NAME", help="start from this preset (`ivl-train presets` lists them)")
    parser.add_argument("--nproc-per-node", type=int, metavar="N", help="processes per node the run will use")
    parser.add_argument("--nnodes", type=int, metavar="N", help="nodes the run will use")
    parser.add_argument("--no-data", action="store_true", help="skip the data gate (no validation of the mixture)")
    parser.add_argument("--jobs", type=int, default=0, metavar="N", help="validation worker processes (0: all cores)")


def _split(args: argparse.Namespace) -> argparse.Namespace:
    """Options given after CFG or among the overrides (argparse leaves them in the remainder) parsed too."""
    from internvl_data.cli.dispatch import _Parser

    if not any(x.startswith("-") for x in args.overrides):
        return args
    late = _Parser(prog="ivl-train check", add_help=False)
    _add_options(late)
    found, rest = late.parse_known_args(args.overrides)
    for key, value in vars(found).items():
        if value != late.get_default(key):
            setattr(args, key, value)
    args.overrides = rest
    return args


@dataclass(frozen=True)
class Steps:
    samples: int  # per epoch, after repeat_time
    batches_per_rank: int  # micro-batches each process reads per epoch
    per_epoch: int  # optimizer steps per epoch
    total: int  # optimizer steps of the run
    warmup: int


def training_steps(samples: int, cfg: Any, world_size: int) -> Steps:
    """Optimizer steps as the HF Trainer counts them (accelerate shards the batches evenly over the ranks; a
    partial accumulation window at the end of an epoch is one more step); ``warmup = ceil(ratio x total)``."""
    batches = math.ceil(samples / cfg.per_device_train_batch_size)
    per_rank = math.ceil(batches / world_size)
    accum = cfg.gradient_accumulation_steps
    per_epoch = max(per_rank // accum + int(per_rank % accum > 0), 1)
    total = cfg.max_steps if cfg.max_steps > 0 else math.ceil(cfg.num_train_epochs * per_epoch)
    return Steps(samples, per_rank, per_epoch, total, math.ceil(cfg.warmup_ratio * total))


def run(args: argparse.Namespace) -> int:
    from internvl_data.pipeline.mixture import Mixture
    from internvl_train.config import TrainConfig
    from internvl_train.gate import checkpoint_info
    from internvl_train.launch import resolve, split_config
    from internvl_train.params import count_for_config

    args = _split(args)
    args.config, args.overrides = split_config(args.config, args.overrides)  # `check key=value ...`: no file
    resolved = resolve(
        args.config, args.overrides, preset=args.preset, nproc_per_node=args.nproc_per_node, nnodes=args.nnodes
    )
    cfg: TrainConfig = resolved.config
    info = checkpoint_info(cfg)
    full = cfg.with_checkpoint(info)
    out = sys.stdout
    defaults = _defaults()
    out.write(f"config{f' {args.config}' if args.config else ''} (resolved; * = not the default)\n")
    for key, value in full.resolved_dict().items():
        mark = "*" if key in defaults and defaults[key] != getattr(cfg, key) else " "
        note = "  (from the checkpoint)" if getattr(cfg, key) is None and value is not None else ""
        out.write(f" {mark} {key}: {_show(value)}{note}\n")
    tile, ratio = full.force_image_size or info.tile_size, full.down_sample_ratio or info.downsample_ratio
    tokens = int((tile // info.patch_size) ** 2 * ratio**2)
    out.write(
        f"checkpoint: {cfg.model_name_or_path} ({info.layout} layout, {info.llm_architecture or 'unknown LLM'}, "
        f"template {full.conv_style}, {full.force_image_size}px tiles, {tokens} tokens per tile)\n"
    )
    for line in resolved.summary():
        out.write(line + "\n")
    mixture = Mixture(cfg.meta_path, seed=cfg.seed)
    steps = training_steps(len(mixture), cfg, resolved.plan.world_size)
    sizes = ", ".join(f"{name} {n}" for name, n in mixture.dataset_sizes().items())
    out.write(f"samples per epoch: {steps.samples} ({sizes})\n")
    out.write(
        f"steps: {steps.per_epoch} per epoch ({steps.batches_per_rank} micro-batches per process / accumulation "
        f"{cfg.gradient_accumulation_steps}), {steps.total} in total"
        f"{' (max_steps)' if cfg.max_steps > 0 else f' ({_epochs(cfg.num_train_epochs)})'}, warmup {steps.warmup}\n"
    )
    out.write(f"parameters: {count_for_config(cfg).summary()}\n")
    if args.no_data:
        out.write("data gate: skipped (--no-data)\n")
        return 0
    from internvl_train.gate import check_data

    out.flush()
    verdict = check_data(cfg, jobs=args.jobs)
    out.write(f"data gate ({'manifest ' + cfg.data_manifest if cfg.data_manifest else 'validated in-process'}):\n")
    out.write(verdict.text)
    if not verdict.ok:
        out.write("ivl-train check: the data gate refused the mixture; `ivl-train run` would stop before loading\n")
        return 1
    out.write("ready: `ivl-train run` would train with these values\n")
    return 0


def _epochs(n: float) -> str:
    return f"{n:g} epoch{'' if n == 1 else 's'}"


def _defaults() -> dict[str, Any]:
    from internvl_train.config import TrainConfig

    return {
        name: f.get_default(call_default_factory=True)
        for name, f in TrainConfig.model_fields.items()
        if not f.is_required()
    }


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
