"""`ivl-train run CFG [key=value ...]`: fine-tune InternVL2 (full or LoRA) on a validated mixture."""

from __future__ import annotations

import argparse

HELP = "fine-tune InternVL2 on a meta file: data gate, model, HF Trainer, final model in the original layout"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CFG", help="training config (YAML); keys are the official flag names")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="override a config key, e.g. learning_rate=1e-5"
    )


def run(args: argparse.Namespace) -> int:
    from internvl_train.config import load_config
    from internvl_train.recipe.train import run as train

    cfg = load_config(args.config, args.overrides)
    return train(cfg)
