"""`ivl-data validate META... | --jsonl FILE...`: flags -> ValidateOptions -> validate -> report -> exit code."""

from __future__ import annotations

import argparse
import os
import sys

from internvl_data.checks.findings import Report
from internvl_data.validator.options import FORMATS, MEDIA_MODES, OptionError, ValidateOptions

HELP = "check a meta file and its annotation/media files (or JSONL files with --jsonl)"
FORMAT_ENV = "IVL_DATA_FORMAT"  # default for --format (e.g. `github` in CI)


def _codes(text: str) -> list[str]:
    return [c.strip().upper() for c in text.split(",") if c.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="META",
        help="meta JSON file(s), `-` for standard input; JSONL files with --jsonl (default: `meta` of the settings)",
    )
    parser.add_argument(
        "--jsonl", action="store_true", help="the paths are JSONL annotation files (no meta; media off)"
    )
    parser.add_argument(
        "--media",
        choices=MEDIA_MODES,
        default="header",
        help="media checks: off, exists, header (read image/video headers; default), decode",
    )
    parser.add_argument("--allow-outside-root", action="store_true", help="media paths may escape the dataset root")
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=ValidateOptions.max_pixels,
        metavar="N",
        help="report images with more pixels and never decode them (default %(default)s)",
    )
    parser.add_argument(
        "--min-frames",
        type=int,
        default=ValidateOptions.min_frames,
        metavar="N",
        help="report videos with fewer frames (default %(default)s)",
    )
    parser.add_argument(
        "--select",
        type=_codes,
        action="extend",
        default=[],
        metavar="CODES",
        help="only these codes or prefixes, comma-separated (IVL2,IVL301)",
    )
    parser.add_argument(
        "--ignore",
        type=_codes,
        action="extend",
        default=[],
        metavar="CODES",
        help="drop these codes or prefixes, comma-separated",
    )
    parser.add_argument(
        "--max-per-rule",
        type=int,
        default=None,
        metavar="N",
        help="show the first N findings of each code; the rest are counted",
    )
    parser.add_argument("--strict", action="store_true", help="warnings count as errors (exit 1)")
    parser.add_argument("--exit-zero", action="store_true", help="exit 0 even when errors are found (report only)")
    parser.add_argument(
        "-j", "--jobs", type=int, default=0, metavar="N", help="worker processes (0, the default: all cores)"
    )
    parser.add_argument("--cache", metavar="DIR", help="reuse results for unchanged annotation files")
    parser.add_argument("--manifest", metavar="PATH", help="manifest path (default: <meta stem>.ivl-manifest.json)")
    parser.add_argument("--no-manifest", action="store_true", help="do not write a manifest")
    parser.add_argument(
        "--format",
        "--output-format",
        choices=FORMATS,
        default=os.environ.get(FORMAT_ENV) or "text",
        help=f"output format (default text, or ${FORMAT_ENV})",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE (atomically)")
    parser.add_argument("--template", metavar="NAME", help="chat template (internvl2_5 allows a first `system` turn)")
    parser.add_argument("--model", metavar="DIR", help="checkpoint folder for token-budget rules (IVL4xx)")
    parser.add_argument(
        "--max-seq-length",
        type=int,
        default=ValidateOptions.max_seq_length,
        metavar="N",
        help="with --model: the trainer's max_seq_length (default %(default)s)",
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="with --model: allow the checkpoint's own tokenizer code (off by default)",
    )
    parser.add_argument(
        "--long-line",
        type=int,
        default=ValidateOptions.long_line,
        metavar="BYTES",
        help="report longer lines (default %(default)s)",
    )
    parser.add_argument(
        "--slow-record",
        type=float,
        default=ValidateOptions.slow_record,
        metavar="SECONDS",
        help="report records whose checks (media, tokens) take longer (default %(default)s; 0: off)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: on a terminal outside CI)",
    )
    add_config_arguments(parser)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config`` and ``--isolated`` (:mod:`internvl_data.config_file`)."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="settings file (.ivl-data.toml or a pyproject.toml with [tool.ivl-data]); default: found walking up "
        "from the meta file",
    )
    parser.add_argument("--isolated", action="store_true", help="ignore every settings file")


def settings_for(args: argparse.Namespace, start: str):
    """Read the settings that apply (``--config``, ``--isolated``, else found from ``start``) and fill in every
    option the command line left at its default; returns them (for :func:`config_file.apply_to_report`)."""
    from internvl_data import config_file

    settings = config_file.resolve(start, args.config, args.isolated)
    probe = argparse.ArgumentParser(add_help=False)
    add_arguments(probe)
    config_file.apply_to_args(settings, args, {a.dest: a.default for a in probe._actions})
    return settings


def checked_options(command: str, args: argparse.Namespace) -> ValidateOptions | None:
    """:func:`options_from_args`, or None after a one-line message when a value is out of its bounds."""
    try:
        return options_from_args(args)
    except OptionError as exc:  # the bounds live in options.LIMITS
        print(
            f"ivl-data {command}: --{exc.name.replace('_', '-')} must be >= {exc.bound}, not {exc.shown}",
            file=sys.stderr,
        )
        return None


def options_from_args(args: argparse.Namespace) -> ValidateOptions:
    return ValidateOptions(
        media="off" if args.jsonl else args.media,
        allow_outside_root=args.allow_outside_root,
        max_pixels=args.max_pixels,
        min_frames=args.min_frames,
        select=tuple(args.select),
        ignore=tuple(args.ignore),
        max_per_rule=args.max_per_rule,
        strict=args.strict,
        jobs=args.jobs,
        cache_dir=args.cache,
        manifest=args.manifest,
        write_manifest=not args.no_manifest and not args.jsonl,
        format=args.format,
        output=args.output,
        template=args.template,
        model_dir=args.model,
        long_line=args.long_line,
        slow_record=args.slow_record,
        max_seq_length=args.max_seq_length,
        trust_remote_code=args.trust_remote_code,
        progress=args.progress,
    )


def execute(
    paths: list[str], opts: ValidateOptions, jsonl: bool = False, exit_zero: bool = False, settings=None
) -> int:
    """Validate, print or write the report, return the exit code (0 clean, 1 errors, 2 unusable input)."""
    from internvl_data.validator.driver import validate, validate_jsonl

    if opts.manifest and len(paths) > 1:
        print("ivl-data validate: --manifest names one file; give one META or drop --manifest", file=sys.stderr)
        return 2
    opts = check_outputs(paths, opts, jsonl)  # before the work: a bad -o fails now, not after the whole run
    import contextlib
    from dataclasses import replace

    from internvl_data.stdin_meta import STDIN, materialized

    try:
        with contextlib.ExitStack() as stack:  # `-`: the meta JSON from standard input, no manifest
            real = paths if jsonl else [stack.enter_context(materialized(p)) for p in paths]
            if STDIN in paths and not jsonl:
                opts = replace(opts, write_manifest=False)
            reports = [validate_jsonl(paths, opts)] if jsonl else [validate(path, opts) for path in real]
    except OSError as exc:  # a manifest folder not writable (a file that vanishes mid-run is a finding: driver)
        return access_error("validate", exc)
    joined = join(reports)
    stdin_copies = {r: p for p, r in zip(paths, real) if r != p}
    if stdin_copies:
        joined.findings = [replace(f, path=stdin_copies.get(f.path, f.path)) for f in joined.findings]
    return finish("validate", joined, opts, settings, exit_zero)


def access_error(command: str, exc: OSError) -> int:
    """Exit code 2 and its one-line message for a file that could not be read (or written) during validation."""
    where = f" {exc.filename}" if exc.filename else ""
    print(f"ivl-data {command}: cannot access{where}: {exc.strerror or exc}", file=sys.stderr)
    return 2


def finish(command: str, report: Report, opts: ValidateOptions, settings, exit_zero: bool) -> int:
    """The settings file's severities and ignores applied, the report printed (or written to ``-o``), the exit
    code returned (``validate`` and ``pre-commit``)."""
    from internvl_data.validator.cache import write_atomic
    from internvl_data.validator.driver import exit_code
    from internvl_data.validator.report import render

    if settings is not None:  # per-rule severities and single-finding ignores of the settings file
        from internvl_data.config_file import apply_to_report

        apply_to_report(settings, report)
    code = exit_code(report, opts.strict)
    text = render(report, opts.format)
    if opts.output:
        try:
            write_atomic(opts.output, text)
        except OSError as exc:
            print(f"ivl-data {command}: cannot write {opts.output}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    else:
        sys.stdout.write(text)
    return 0 if exit_zero and code == 1 else code


def check_outputs(paths: list[str], opts: ValidateOptions, jsonl: bool, command: str = "validate") -> ValidateOptions:
    """Options, inputs and outputs checked before any work (raises IvlDataError): --select/--ignore name real
    codes, --cache is not a file, inputs are regular files, outputs can be written.

    The default manifest beside a meta file on a read-only file system (or in a folder we cannot write) is skipped
    with a one-line note: the findings still come; ``--manifest PATH`` that cannot be written is an error.
    """
    from dataclasses import replace

    from internvl_data import fsio
    from internvl_data.checks.registry import all_rules
    from internvl_data.errors import OutputError, UsageError
    from internvl_data.validator import manifest

    codes = all_rules()
    for flag, values in (("--select", opts.select), ("--ignore", opts.ignore)):
        for value in values:  # an unknown code would silently check nothing (in CI: every check off)
            if not any(code.startswith(value) for code in codes):
                raise UsageError(
                    f"{flag} {value}: no rule code starts with it; use codes or prefixes from `ivl-data rules` "
                    "(IVL201, IVL2)"
                )
    if opts.cache_dir and os.path.exists(opts.cache_dir) and not os.path.isdir(opts.cache_dir):
        raise UsageError(f"--cache {opts.cache_dir}: is a file; name a folder (it is created if missing)")
    for path in paths:  # a missing meta file or a folder is an IVL101 finding; a FIFO would block forever
        if path != "-" and os.path.exists(path) and not os.path.isdir(path):
            fsio.check_input_file(path, "the JSONL file" if jsonl else "the meta JSON file")
    if opts.output:
        fsio.check_writable(opts.output)
    if not opts.write_manifest or jsonl:
        return opts
    if opts.manifest:
        fsio.check_writable(opts.manifest)
        return opts
    for path in paths:
        if path == "-":
            continue
        try:
            fsio.check_writable(manifest.default_path(path))
        except OutputError as exc:
            print(
                f"ivl-data {command}: note: no manifest written ({exc}); pass --manifest PATH to write it elsewhere, "
                "or --no-manifest",
                file=sys.stderr,
            )
            return replace(opts, write_manifest=False)
    return opts


def join(reports: list[Report]) -> Report:
    """One report of several (findings, counts and times added up)."""
    if len(reports) == 1:
        return reports[0]
    out = Report()
    for r in reports:
        out.findings += r.findings
        for code, n in r.suppressed.items():
            out.suppressed[code] = out.suppressed.get(code, 0) + n
        left_out = out.left_out if out.left_out is not None else {}
        for sev, n in (r.left_out or {}).items():
            left_out[sev] = left_out.get(sev, 0) + n
        out.files += r.files
        out.records += r.records
        out.seconds += r.seconds
        out.datasets += r.datasets
        out.unreadable = out.unreadable or r.unreadable
    return out


def run(args: argparse.Namespace) -> int:
    if args.format not in FORMATS:  # only possible through the environment variable
        print(f"ivl-data validate: ${FORMAT_ENV}={args.format!r} is not one of {', '.join(FORMATS)}", file=sys.stderr)
        return 2
    first = args.paths[0] if args.paths and args.paths[0] != "-" else "."
    settings = settings_for(args, first)
    if not args.paths:
        args.paths = settings.values.get("meta", [])
        if not args.paths:
            print(
                "ivl-data validate: give a META file (or set `meta` in .ivl-data.toml / [tool.ivl-data])",
                file=sys.stderr,
            )
            return 2
    opts = checked_options("validate", args)
    if opts is None:
        return 2
    return execute(args.paths, opts, jsonl=args.jsonl, exit_zero=args.exit_zero, settings=settings)
