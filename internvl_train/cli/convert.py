"""`ivl-train convert IN OUT --to original|hf`: InternVL2 checkpoints between the original and native layouts."""

from __future__ import annotations

import argparse
import contextlib
import sys

HELP = "convert an InternVL2 checkpoint between the original (remote-code) layout and the native transformers one"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", metavar="IN", help="checkpoint directory (original or native layout)")
    parser.add_argument(
        "dst",
        metavar="OUT",
        help="output directory, written atomically; an existing checkpoint folder is replaced, any other existing "
        "file or non-empty folder is refused unless --force",
    )
    parser.add_argument("--to", required=True, choices=("original", "hf"), help="layout to write")
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), help="cast weights (default: keep)")
    parser.add_argument(
        "--base",
        metavar="DIR",
        help="checkpoint to copy *.py remote code and generation_config.json from (default: IN's "
        "generation_config.json is kept)",
    )
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the tokenizer's own code to run")
    parser.add_argument("--max-shard-size", type=int, default=5, metavar="GiB", help="shard size in GiB (default 5)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace OUT even when it is a file, a non-empty folder that is not a checkpoint, the current folder or "
        "IN itself (never a folder that contains IN)",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from internvl_data import fsio
    from internvl_train.errors import CheckpointError

    if args.max_shard_size < 1:
        raise CheckpointError(f"--max-shard-size must be >= 1 (GiB), got {args.max_shard_size}")
    with contextlib.redirect_stdout(sys.stderr):  # library chatter off stdout
        _quiet_deepspeed()
        _quiet_transformers()
        from internvl_train.checkpoint.loading import load_pretrained
        from internvl_train.checkpoint.saving import check_destination, save_pretrained

        dst = Path(args.dst).absolute()
        check_destination(args.dst, src=args.src, force=args.force)  # before the work: nothing is loaded yet
        fsio.check_writable(dst.parent, folder=True)
        fsio.sweep(dst.parent)  # noted; run_command prints the notes
        model, tokenizer = load_pretrained(args.src, dtype=args.dtype, trust_remote_code=args.trust_remote_code)
        save_pretrained(
            model,
            tokenizer,
            dst,
            layout=args.to,
            base=args.base,
            max_shard_bytes=args.max_shard_size * 1024**3,
            force=args.force,
            source=args.src,
        )
    print(f"wrote {args.dst} ({args.to} layout)")
    return 0


def _quiet_deepspeed() -> None:
    """No "Setting accelerator to CPU" warning: saving the native layout imports DeepSpeed (accelerate unwraps the
    model through it), which warns when it finds no GPU. Converting never uses an accelerator, so on a machine
    without CUDA we name the CPU one (an explicit DS_ACCELERATOR is kept)."""
    import os

    import torch

    if "DS_ACCELERATOR" not in os.environ and not torch.cuda.is_available():
        os.environ["DS_ACCELERATOR"] = "cpu"


def _quiet_transformers() -> None:
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
