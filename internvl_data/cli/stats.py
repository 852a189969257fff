"""``ivl-data stats META``: records, kinds, images, tiles (and with ``--model`` exact tokens) per dataset and mixture."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from internvl_data.errors import UsageError
from internvl_data.stats.types import Dataset, Settings

HELP = "what a mixture contains after repeat_time: records, images, tiles, tokens"
FORMATS = ("table", "json", "csv")
NUM_FRAMES = 32  # frames per video by default in stats, lengths and render: the most the official trainer draws


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """Model options shared by ``stats`` and ``lengths``."""
    p.add_argument(
        "--max-seq-length",
        type=int,
        default=4096,
        metavar="N",
        help="sequence budget of the trainer (default 4096, as in the InternVL2 scripts)",
    )
    p.add_argument(
        "--num-frames",
        type=int,
        default=NUM_FRAMES,
        metavar="N",
        help=f"frames counted per video record (default {NUM_FRAMES}, the most the trainer draws)",
    )
    p.add_argument("--template", default=None, metavar="NAME", help="chat template for a native checkpoint without one")
    p.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow the checkpoint's own tokenizer code to run (off by default)",
    )
    p.add_argument("--jobs", type=int, default=0, metavar="N", help="worker processes (0, the default: all cores)")
    p.add_argument("--cache", default=None, metavar="DIR", help="media size cache folder (default ~/.cache/ivl-kit)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the media size cache")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: on a terminal outside CI)",
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("meta", metavar="META", help="meta JSON file (`-`: read it from standard input)")
    p.add_argument(
        "--model",
        default=None,
        metavar="DIR",
        help="checkpoint folder (config.json + tokenizer; no weights) for exact token counts",
    )
    p.add_argument("--global-batch-size", type=int, default=None, metavar="N", help="for optimizer steps per epoch")
    p.add_argument(
        "--max-dynamic-patch",
        type=int,
        default=None,
        metavar="N",
        help="tile budget for datasets without their own (default: the model's, else 6)",
    )
    p.add_argument("--format", choices=FORMATS, default="table", help="table (default), json or csv")
    p.add_argument("--output", "-o", default=None, metavar="FILE", help="write the json/csv/table here")
    p.add_argument("--plots", default=None, metavar="DIR", help="write PNG histograms of tiles (and tokens) here")
    p.add_argument("--html", default=None, metavar="FILE", help="write one self-contained HTML report")
    add_model_arguments(p)


@dataclass
class Loaded:
    datasets: list[tuple[Dataset, float]]
    settings: Settings
    jobs: int
    progress: bool


def load(args: argparse.Namespace, model_required: bool = False) -> Loaded:
    """Meta file and model settings shared by ``stats`` and ``lengths`` (raises :class:`UsageError`)."""
    from internvl_data.parallel import show_progress

    for name in ("max_seq_length", "num_frames", "jobs", "global_batch_size"):
        value = getattr(args, name, None)
        if value is not None and value < (0 if name == "jobs" else 1):
            raise UsageError(f"--{name.replace('_', '-')} must be >= {0 if name == 'jobs' else 1}, got {value}")
    cache = getattr(args, "cache", None)
    if cache and os.path.exists(cache) and not os.path.isdir(cache):
        raise UsageError(f"--cache {cache}: is a file; name a folder (it is created if missing)")
    if model_required and not args.model:
        raise UsageError("--model DIR is required: token lengths need the checkpoint's tokenizer and template")
    datasets = load_datasets(args.meta)
    settings = Settings(
        max_seq_length=args.max_seq_length,
        num_frames=args.num_frames,
        trust_remote_code=args.trust_remote_code,
        cache_dir=None if args.no_cache else (args.cache or str(_default_cache())),
    )
    if args.model:
        from internvl_data.stats.tokens import ModelError, model_settings

        try:
            settings = model_settings(args.model, settings, template=args.template)
        except ModelError as exc:
            raise UsageError(str(exc)) from None
    override = getattr(args, "max_dynamic_patch", None)
    if override is not None:
        if override < 1:
            raise UsageError(f"--max-dynamic-patch must be >= 1, got {override}")
        from dataclasses import replace

        settings = replace(settings, max_dynamic_patch=override)
    jobs = args.jobs or os.cpu_count() or 1
    return Loaded(datasets, settings, jobs, show_progress(args.progress))


def _default_cache() -> str:
    from internvl_data.media.sizes import default_cache_dir

    return str(default_cache_dir())


def load_datasets(meta_path: str) -> list[tuple[Dataset, float]]:
    """Usable datasets of the meta file, in order; unusable ones are errors naming the meta file and line."""
    from internvl_data.formats.meta import load_meta
    from internvl_data.fsio import check_input_file

    check_input_file(meta_path)  # a FIFO, a folder, a device: the same one answer as validate
    result = load_meta(meta_path)
    problems = []
    out = []
    for e in result.entries:
        errors = [f for f in result.findings if f.dataset == e.name and f.severity.value == "error"]
        if e.entry is None or errors:
            problems += [
                f"{f.path}:{f.line}: {f.code} {f.message}" + (f" ({f.hint})" if f.hint else "") for f in errors
            ] or [
                f"{meta_path}:{e.line}: dataset {e.name!r} is unusable; run "
                f"`ivl-data validate {meta_path}` and fix what it reports"
            ]
        else:
            mdp = e.entry.max_dynamic_patch
            out.append((Dataset(e.name, e.annotation_path, e.root_path, mdp), float(e.entry.repeat_time)))
    if not result.entries and not problems:
        fatal = [f"{f.path}:{f.line}: {f.code} {f.message}" for f in result.findings]
        problems = fatal or [f"{meta_path}:1: the meta file lists no datasets"]
    if problems:
        raise UsageError("\n".join(problems), code=1)
    return out


def guarded(command: str, body: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command body with the one error -> exit code mapping (:func:`internvl_data.cli.common.run_command`)."""
    from internvl_data.cli.common import run_command

    return run_command("ivl-data", command, body, args)


def run(args: argparse.Namespace) -> int:
    return guarded("stats", _run_meta, args)


def _run_meta(args: argparse.Namespace) -> int:
    """``-``: the meta JSON from standard input (:mod:`internvl_data.stdin_meta`), reported as ``-``."""
    from internvl_data.stdin_meta import materialized

    with materialized(args.meta) as path:
        args.meta, args.meta_shown = path, args.meta
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from internvl_data import fsio
    from internvl_data.stats import compute as stats
    from internvl_data.stats import output as stats_output
    from internvl_data.validator.cache import write_atomic

    loaded = load(args)
    import pandas  # noqa: F401  (fail early, before the scan, when the stats extra is missing)

    for path in (args.output, args.html):  # before the work: a typo in -o fails now, not after the whole scan
        if path:
            fsio.check_writable(path)
    if args.plots:
        fsio.check_writable(args.plots, folder=True)

    result = stats.compute(
        args.meta, loaded.datasets, loaded.settings, loaded.jobs, loaded.progress, args.global_batch_size
    )
    result.meta = getattr(args, "meta_shown", result.meta)  # `-`, not the temporary copy of standard input
    gone = stats_output.left_out(result)  # a file that vanished mid-run: the others are counted, exit 1
    for line in gone + stats_output.not_counted(result):  # on stderr whatever the format (stdout is the report)
        print(line, file=sys.stderr)
    pngs = stats_output.plot_pngs(result) if (args.plots or args.html) else None
    if args.plots:
        stats_output.write_plots(result, args.plots, pngs)
    if args.html:
        write_atomic(args.html, stats_output.to_html(result, pngs))
    if args.format == "json":
        text = stats_output.to_json(result).decode()
    elif args.format == "csv":
        text = stats_output.to_csv(result)
    elif args.output:
        import io

        buf = io.StringIO()
        stats_output.print_tables(result, buf)
        text = buf.getvalue()
    else:
        stats_output.print_tables(result)
        return 1 if gone else 0
    if args.output:
        write_atomic(args.output, text)
    else:
        sys.stdout.write(text)
    return 1 if gone else 0
