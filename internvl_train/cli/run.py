"""`ivl-train run CFG [key=value ...]`: fine-tune InternVL2 (full or LoRA) on a validated mixture."""

from __future__ import annotations

import argparse

HELP = "fine-tune InternVL2 on a meta file: data gate, model, HF Trainer, final model in the original layout"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from internvl_train import launch

    parser.add_argument(
        "config", nargs="?", metavar="CFG", help="training config (YAML); keys are the official flag names"
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="override a config key, e.g. learning_rate=1e-5"
    )
    launch.add_arguments(parser)  # --preset, --meta, --nproc-per-node, --nnodes, --launcher, --dry-run, --resume


def run(args: argparse.Namespace) -> int:
    from internvl_train import launch

    resolved, code = launch.begin(args, args.config, args.overrides)  # preset < env < file < key=value
    if code is not None:  # a dry run, or the processes torchrun / srun ran: no torch / transformers import
        return code
    from internvl_data.fsio import signals_deferred

    with signals_deferred():  # torch's C++ import aborts on a KeyboardInterrupt raised inside it: act on it after
        from internvl_train.plan.summary import announce
        from internvl_train.recipe.train import run as train

    announce(resolved.config)  # the plan's one line (rank 0), a warning when it will not fit
    return train(resolved.config, resume=args.resume)
