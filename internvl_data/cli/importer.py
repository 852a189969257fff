"""``ivl-data import --from FORMAT SRC OUT_DIR``: convert another tool's records, write JSONL + meta, validate."""

from __future__ import annotations

import argparse
import os
import re
import sys

from internvl_data.importers import FORMATS
from internvl_data.validator.options import MEDIA_MODES

HELP = "convert sharegpt / openai-messages / llava records into a meta file + JSONL, then validate them"
MAX_SHOWN = 50  # unconvertible records listed; the rest are counted


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="fmt", required=True, choices=tuple(FORMATS), help="the source format")
    parser.add_argument("src", metavar="SRC", help="source records: a JSON array or a JSONL file")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder for <name>.jsonl and meta.json (created)")
    parser.add_argument(
        "--media-root",
        metavar="DIR",
        help="folder relative media paths resolve against; it becomes the meta's root (default: SRC's folder)",
    )
    parser.add_argument("--name", help="dataset name and JSONL stem (default: SRC's stem)")
    parser.add_argument(
        "--template",
        metavar="NAME",
        help="chat template: internvl2_5 keeps system prompts as a first `system` turn; the InternVL2 templates "
        "have none, so they are merged into the first user turn (default)",
    )
    parser.add_argument(
        "--media",
        choices=MEDIA_MODES,
        default="header",
        help="media checks of the validation that follows (default header)",
    )
    parser.add_argument("--force", action="store_true", help="replace <name>.jsonl and meta.json in OUT_DIR")


def run(args: argparse.Namespace) -> int:
    from internvl_data import fsio
    from internvl_data.errors import UsageError
    from internvl_data.importers import Context, convert_file
    from internvl_data.pipeline.templates import TEMPLATES
    from internvl_data.validator.driver import exit_code, validate
    from internvl_data.validator.options import ValidateOptions
    from internvl_data.validator.report import render

    if not os.path.isfile(args.src):
        raise UsageError(f"SRC {args.src}: no such file; give a JSON array or JSONL file of records")
    root = os.path.abspath(args.media_root or os.path.dirname(args.src) or ".")
    if not os.path.isdir(root):
        raise UsageError(f"--media-root {args.media_root}: no such folder")
    name = args.name or re.sub(r"[^\w.-]+", "_", os.path.splitext(os.path.basename(args.src))[0]) or "data"
    jsonl, meta = os.path.join(args.out_dir, f"{name}.jsonl"), os.path.join(args.out_dir, "meta.json")
    for path in (jsonl, meta):
        if os.path.exists(path) and not args.force:
            raise UsageError(f"{path} exists; pass --force to replace it, or choose another OUT_DIR or --name")
    template = TEMPLATES.get(args.template or "")
    system_turn = template is not None and template.system_turn
    outcome = convert_file(args.src, args.fmt, Context(root, system_turn=system_turn))
    for line in outcome.errors[:MAX_SHOWN]:
        print(line, file=sys.stderr)
    if len(outcome.errors) > MAX_SHOWN:
        print(f"... and {len(outcome.errors) - MAX_SHOWN} more records that could not be converted", file=sys.stderr)
    if not outcome.records:
        print(
            f"ivl-data import: no record of {args.src} could be converted as {args.fmt}; nothing written",
            file=sys.stderr,
        )
        return 1
    import orjson

    os.makedirs(args.out_dir, exist_ok=True)
    fsio.write_atomic(jsonl, b"".join(orjson.dumps(r) + b"\n" for r in outcome.records))
    entry = {
        "root": root,  # absolute: the official loader joins it with the current folder of the training run
        "annotation": f"{name}.jsonl",
        "data_augment": False,
        "repeat_time": 1,
        "length": len(outcome.records),
    }
    fsio.write_atomic(meta, orjson.dumps({name: entry}, option=orjson.OPT_INDENT_2) + b"\n")
    why = (
        "single-image and video records: the official loader expects their placeholder in the first turn"
        if system_turn
        else "--template internvl2_5 keeps them as system turns"
    )
    note = f"; {outcome.merged_systems} system prompt(s) merged into the first user turn ({why})"
    note = note if outcome.merged_systems else ""
    print(
        f"ivl-data import: wrote {len(outcome.records)} record(s) to {jsonl} and {meta} (root {root}); "
        f"{len(outcome.errors)} could not be converted{note}; validating:",
        file=sys.stderr,
    )
    opts = ValidateOptions(media=args.media, template=args.template, write_manifest=False, progress=False)
    report = validate(meta, opts)
    sys.stdout.write(render(report, "text"))
    return max(1 if outcome.errors else 0, exit_code(report))
