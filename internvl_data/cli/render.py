"""`ivl-data render`: show the exact model inputs the official trainer would build for some records."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from internvl_data.parallel import ProgressBar
    from internvl_data.pipeline.render import Renderer

HELP = "Show the input_ids, labels and pixel tensors of records, exactly as the trainer builds them."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("meta", metavar="META", help="meta JSON file (official format)")
    parser.add_argument(
        "--model",
        required=True,
        metavar="DIR",
        help="checkpoint directory: its config.json and tokenizer (no weights are loaded)",
    )
    parser.add_argument("--dataset", metavar="NAME", help="only this dataset of the meta file")
    pick = parser.add_mutually_exclusive_group()
    pick.add_argument(
        "--index",
        type=int,
        metavar="I",
        help="the I-th sample (0-based) of --dataset, or of the whole mixture without --dataset",
    )
    pick.add_argument("--limit", type=int, default=1, metavar="N", help="the first N samples (default 1; 0: all)")
    parser.add_argument(
        "--max-seq-length",
        type=int,
        default=4096,
        metavar="N",
        help="truncate at N tokens as the trainer does (default 4096, the official scripts)",
    )
    parser.add_argument(
        "--num-frames",
        type=int,
        default=32,
        metavar="N",
        help="frames per video, sampled 'middle' (default 32, the most the trainer draws, as stats and lengths count)",
    )
    parser.add_argument("--format", choices=("text", "jsonl"), default="text", help="output format (default text)")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: on a terminal outside CI, for 100+ records written to a file or pipe)",
    )
    parser.add_argument("--dump-pixels", metavar="DIR", help="write <dataset>-<index>.npy (float32 pixel_values)")
    parser.add_argument(
        "--template",
        metavar="NAME",
        help="template when the checkpoint config has none (native -hf checkpoints), or to override it",
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow the checkpoint's own tokenizer code to run (off by default)",
    )


def run(args: argparse.Namespace) -> int:
    import orjson

    from internvl_data.pipeline.render import Renderer, RenderOptions, dump_pixels, to_json
    from internvl_data.pipeline.tokenizer import TokenizerLoadError

    if args.max_seq_length < 1 or args.num_frames < 1:
        print("ivl-data render: error: --max-seq-length and --num-frames must be at least 1", file=sys.stderr)
        return 2
    if args.limit < 0 or args.index is not None and args.index < 0:  # --limit has a default (1)
        which = f"--limit {args.limit}" if args.limit < 0 else f"--index {args.index}"
        print(f"ivl-data render: error: {which} must be >= 0 (--limit 0 renders everything)", file=sys.stderr)
        return 2
    if args.dump_pixels:  # before the work: a folder we cannot write fails now, not after the first record
        from internvl_data import fsio

        fsio.check_writable(args.dump_pixels, folder=True)
    opts = RenderOptions(
        meta=args.meta,
        model=args.model,
        dataset=args.dataset,
        index=args.index,
        limit=args.limit,
        max_seq_length=args.max_seq_length,
        num_frames=args.num_frames,
        template=args.template,
        trust_remote_code=args.trust_remote_code,
        dump_pixels=args.dump_pixels,
    )
    failed = shown = 0
    out = sys.stdout
    try:
        renderer = Renderer(opts)
        color = out.isatty() and not os.environ.get("NO_COLOR")
        bar = _progress(renderer, args, out)
        for r in renderer.records():
            out.write(orjson.dumps(to_json(r)).decode() + "\n" if args.format == "jsonl" else renderer.text(r, color))
            if opts.dump_pixels:
                dump_pixels(r, opts.dump_pixels)
            failed += r.error is not None
            shown += 1
            if bar is not None:
                bar.advance()
    except (TokenizerLoadError, ValueError) as exc:  # usage, model, meta and mixture errors are ValueErrors
        print(f"ivl-data render: error: {exc}", file=sys.stderr)
        return 2
    if bar is not None:
        bar.close()
    out.flush()
    if not shown:  # an empty mixture (or --dataset) renders nothing: say so rather than print nothing
        where = f"dataset {args.dataset!r}" if args.dataset else "the mixture"
        print(f"ivl-data render: 0 records ({where} is empty after repeat_time)", file=sys.stderr)
    return 1 if failed else 0


PROGRESS_FROM = 100  # records: a bar on stderr for longer runs whose output goes to a file or a pipe


def _progress(renderer: Renderer, args: argparse.Namespace, out: TextIO) -> ProgressBar | None:
    """A progress bar when many records are rendered to a file or pipe and stderr is a terminal (or --progress)."""
    from internvl_data.parallel import ProgressBar, show_progress

    if out.isatty() or not show_progress(args.progress):
        return None
    sizes = renderer.mixture.dataset_sizes()
    total = sizes.get(args.dataset, 0) if args.dataset else sum(sizes.values())
    count = 1 if args.index is not None else total if args.limit <= 0 else min(args.limit, total)
    return ProgressBar("render", count) if count >= PROGRESS_FROM or args.progress else None
