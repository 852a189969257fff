"""``ivl-data pre-commit FILE...``: validate, once each, every meta file that the changed FILEs concern.

This is the entry of the ``ivl-data`` pre-commit hook (``.pre-commit-hooks.yaml``): pre-commit passes the staged
files; :mod:`internvl_data.hooks` maps them to the repository's meta files (whatever their names) and each one is
validated with its media checks. With ``--loose`` (the ``ivl-data-check-jsonl`` hook) only the changed JSONL files
that no meta file lists are checked, on their own: the two hooks never check the same file, so using both never
prints a finding twice.
"""

from __future__ import annotations

import argparse
import sys

from internvl_data.cli import validate as validate_cli

HELP = "pre-commit hook: validate every meta file that lists one of the changed files (media included)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    validate_cli.add_arguments(parser)
    for action in parser._actions:  # the same options as `validate`; the positionals are the changed files
        if action.dest == "paths":
            action.metavar, action.help = "FILE", "changed files (pre-commit passes them)"
        elif action.dest == "jsonl":
            action.help = argparse.SUPPRESS
    parser.add_argument(
        "--meta",
        action="append",
        metavar="META",
        help="meta file to consider besides those found in the repository (repeatable)",
    )
    parser.add_argument(
        "--loose", action="store_true", help="check only the changed JSONL files that no meta file lists"
    )


def run(args: argparse.Namespace) -> int:
    from internvl_data import hooks
    from internvl_data.validator.driver import validate, validate_jsonl

    settings = validate_cli.settings_for(args, ".")  # the repository's .ivl-data.toml / [tool.ivl-data]
    opts = validate_cli.checked_options("pre-commit", args)
    if opts is None:
        return 2
    extra = [*(args.meta or []), *settings.values.get("meta", [])]
    metas = list(dict.fromkeys([*extra, *hooks.find_meta_files(hooks.repository_files())]))
    todo = hooks.plan(args.paths, metas)
    if args.loose:
        todo.metas = []
    else:
        todo.orphans = []
    opts = validate_cli.check_outputs(todo.metas, opts, False, "pre-commit")  # --select typos, -o, manifests
    if not todo.metas and not todo.orphans:
        what = "JSONL file that no meta file lists" if args.loose else "file that a meta file lists"
        print(f"ivl-data pre-commit: no changed {what}; nothing to check", file=sys.stderr)
        return 0
    for meta in todo.metas:
        print(
            f"ivl-data pre-commit: {meta} (lists {', '.join(todo.reasons[meta][:3])}"
            + (f" and {len(todo.reasons[meta]) - 3} more" if len(todo.reasons[meta]) > 3 else "")
            + ")",
            file=sys.stderr,
        )
    from dataclasses import replace

    try:
        reports = [validate(m, opts) for m in todo.metas]
        if todo.orphans:
            reports.append(validate_jsonl(todo.orphans, replace(opts, media="off", write_manifest=False)))
    except OSError as exc:
        return validate_cli.access_error("pre-commit", exc)
    joined = validate_cli.join(reports)
    joined.findings = _once(joined.findings)
    return validate_cli.finish("pre-commit", joined, opts, settings, args.exit_zero)


def _once(findings: list) -> list:
    """Each finding once: a JSONL file listed by two meta files is checked for both, but reported once."""
    out, seen = [], set()
    for f in findings:
        key = (f.path, f.line, f.col, f.code, f.message)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out
