"""``ivl-data lengths META --model DIR``: write each line's token length and each dataset's line count."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path

import orjson

from internvl_data.cli.stats import UsageError, add_model_arguments, guarded, load

HELP = "write the per-line `length` (tokens with images) that length-grouped sampling reads"
MAX_SHOWN = 50  # problem lines printed; the rest are counted


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("meta", metavar="META", help="meta JSON file")
    p.add_argument("--model", required=True, metavar="DIR", help="checkpoint folder (config.json + tokenizer)")
    p.add_argument("--in-place", action="store_true", help="replace the annotation files and the meta file")
    p.add_argument("--no-backup", action="store_true", help="with --in-place: do not keep FILE.bak copies")
    p.add_argument(
        "--output-dir", default=None, metavar="DIR", help="write new annotation files and a new meta file here instead"
    )
    add_model_arguments(p)


def run(args: argparse.Namespace) -> int:
    return guarded("lengths", _run, args)


def _run(args: argparse.Namespace) -> int:
    from internvl_data import fsio
    from internvl_data.formats.lines import ends_mid_line
    from internvl_data.stats.lengths import EditError, Inputs, set_dataset_keys, write_lengths, write_replacing

    if bool(args.in_place) == bool(args.output_dir):
        raise UsageError("pass either --in-place (replace the files, keeping .bak copies) or --output-dir DIR")
    if args.no_backup and not args.in_place:
        raise UsageError("--no-backup only applies to --in-place")
    out_dir = Path(args.output_dir) if args.output_dir else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        if out_dir.resolve() == Path(args.meta).resolve().parent:
            raise UsageError(f"--output-dir {out_dir} is the meta file's own folder; use --in-place for that")
    loaded = load(args, model_required=True)
    inputs = Inputs()  # what the run reads, as it is now: a file that vanishes or changes stops it before any write
    inputs.add(args.meta)
    meta_path = Path(args.meta)
    raw_meta_bytes = meta_path.read_bytes()  # the meta file as loaded (checked unchanged before anything is written)
    datasets = [d for d, _r in loaded.datasets]
    backup = not args.no_backup
    folders = {out_dir} if out_dir is not None else {Path(d.annotation).parent for d in datasets}
    folders.add(Path(args.meta).resolve().parent)
    for folder in sorted(folders):  # before the work: a killed run's debris goes, and we can write where we must
        fsio.sweep(folder)  # noted; run_command prints the notes
        if folder != Path(args.meta).resolve().parent or out_dir is None:
            fsio.check_writable(folder / "x", folder=False)
    try:
        outcome = write_lengths(
            args.meta, datasets, loaded.settings, loaded.jobs, loaded.progress, out_dir, backup, inputs
        )
        updates = {name: {"length": str(n).encode()} for name, n in outcome.meta_lengths.items()}
        if out_dir is not None:
            raw_meta = orjson.loads(raw_meta_bytes)
            for d in datasets:
                updates[d.name]["annotation"] = orjson.dumps(Path(d.annotation).name)
                root = raw_meta[d.name].get("root", "")
                if isinstance(root, str) and not os.path.isabs(root) and not root.startswith("s3://"):
                    updates[d.name]["root"] = orjson.dumps(os.path.abspath(d.root))
        new_meta = set_dataset_keys(raw_meta_bytes, updates)
        target = out_dir / meta_path.name if out_dir else meta_path
        check = functools.partial(inputs.check, args.meta)
        if not write_replacing(target, lambda fh: fh.write(new_meta), backup and out_dir is None, check):
            outcome.old_backups.append(target.with_name(target.name + ".bak"))
    except (EditError, OSError) as exc:
        raise UsageError(f"{exc}", code=2) from None
    n = len(outcome.problems)
    for line in outcome.problems[:MAX_SHOWN]:
        print(line, file=sys.stderr)
    if n > MAX_SHOWN:
        print(f"... and {n - MAX_SHOWN} more lines left unchanged", file=sys.stderr)
    where = f"into {out_dir}" if out_dir else "in place"
    if backup and out_dir is None:
        old = outcome.old_backups
        if not old:
            where += " (originals kept as .bak)"
        else:  # never overwrite the true original of an earlier run with that run's output
            kept = ", ".join(map(str, old))
            where += f" (originals kept as .bak, except where a .bak of an earlier run existed and was left: {kept})"
            for bak in old:
                if bak.is_file() and ends_mid_line(bak):
                    fsio.note(
                        f"{bak} ends in the middle of a line: it looks like the partial copy of a killed run of an "
                        "older ivl-kit, not a full original; check it before you restore from it"
                    )
    print(
        f"ivl-data lengths: wrote {len(outcome.written)} annotation file(s) and {target} {where}; "
        f"{n} line(s) left without a length",
        file=sys.stderr,
    )
    return 1 if n else 0
