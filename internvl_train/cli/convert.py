"""`ivl-train convert IN OUT --to original|hf`: InternVL2 checkpoints between the original and native layouts."""

from __future__ import annotations

import argparse
import contextlib
import sys

HELP = "convert an InternVL2 checkpoint between the original (remote-code) layout and the native transformers one"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", metavar="IN", help="checkpoint directory (original or native layout)")
    parser.add_argument("dst", metavar="OUT", help="output directory (written atomically; replaced if it exists)")
    parser.add_argument("--to", required=True, choices=("original", "hf"), help="layout to write")
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), help="cast weights (default: keep)")
    parser.add_argument(
        "--base", metavar="DIR", help="checkpoint to copy *.py remote code and generation_config.json from"
    )
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the tokenizer's own code to run")
    parser.add_argument("--max-shard-size", type=int, default=5, metavar="GB", help="shard size in GiB (default 5)")


def run(args: argparse.Namespace) -> int:
    from internvl_train.errors import CheckpointError

    try:
        with contextlib.redirect_stdout(sys.stderr):  # library chatter (DeepSpeed's accelerator notice) off stdout
            _quiet_transformers()
            from internvl_train.checkpoint.loading import load_pretrained
            from internvl_train.checkpoint.saving import save_pretrained

            model, tokenizer = load_pretrained(args.src, dtype=args.dtype, trust_remote_code=args.trust_remote_code)
            save_pretrained(
                model,
                tokenizer,
                args.dst,
                layout=args.to,
                base=args.base,
                max_shard_bytes=args.max_shard_size * 1024**3,
            )
    except CheckpointError as exc:
        print(f"ivl-train convert: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.dst} ({args.to} layout)")
    return 0


def _quiet_transformers() -> None:
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
