"""`ivl-data`: one dispatcher; each command lives in its own ``cli_<name>`` module.

A command module is listed in ``COMMANDS`` and defines ``HELP`` (a string, or a dict by command name when one
module serves several), ``add_arguments(parser)`` (or ``add_arguments(parser, name)``) and ``run(args) -> int``.
Exit codes: 0 clean, 1 errors found, 2 usage error, missing extra or internal error. Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

DISTRIBUTION = "ivl-kit"  # what `pip install` names (the extras come from its metadata)
COMMANDS = {
    "validate": "internvl_data.cli.validate",
    "rules": "internvl_data.cli.rules",
    "explain": "internvl_data.cli.rules",
    "schema": "internvl_data.cli.schema",
    "render": "internvl_data.cli.render",
    "stats": "internvl_data.cli.stats",
    "lengths": "internvl_data.cli.lengths",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors exit 2 with one line, never a traceback
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or (``only``) one with just that command: start-up then imports one command module."""
    from internvl_data import __version__

    parser = _Parser(prog="ivl-data", description="Check and inspect InternVL2 fine-tuning data.")
    parser.add_argument("--version", action="version", version=f"ivl-data {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, modname in COMMANDS.items():
        if only is not None and name != only:
            continue
        mod = importlib.import_module(modname)
        p = sub.add_parser(name, help=mod.HELP.get(name, "") if isinstance(mod.HELP, dict) else mod.HELP)
        mod.add_arguments(p, name) if _takes_name(mod.add_arguments) else mod.add_arguments(p)
        p.set_defaults(_run=mod.run, _name=name)
    return parser


def _takes_name(fn) -> bool:
    return fn.__code__.co_argcount >= 2


def dispatch(prog: str, parser: argparse.ArgumentParser, argv: list[str]) -> int:
    """Parse ``argv`` and run the chosen command: help and exit 2 without one; a module of a missing extra and an
    internal error are one line and exit 2 (``IVL_DEBUG=1`` shows the traceback); Ctrl-C exits 130. Shared by
    ``ivl-data`` and ``ivl-train``."""
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # an internal error: one line, exit 2, never a traceback unless asked
        import os
        import traceback

        if os.environ.get("IVL_DEBUG"):
            traceback.print_exc()
        extra = _extra_of(exc.name) if isinstance(exc, ModuleNotFoundError) else None
        if extra:
            print(
                f"{prog} {args.command}: {exc.name} is not installed; install the {extra} extra: "
                f"pip install '{DISTRIBUTION}[{extra}]'",
                file=sys.stderr,
            )
        else:
            print(
                f"{prog}: internal error: {type(exc).__name__}: {exc} (set IVL_DEBUG=1 for the traceback)",
                file=sys.stderr,
            )
        return 2


def _extra_of(module: str | None) -> str | None:
    """The extra of this distribution that installs ``module`` (read from its metadata), or None: a module that no
    extra provides is a broken install, reported as an internal error."""
    import re
    from importlib import metadata

    if not module:
        return None
    try:
        requires = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return None
    extras = {}  # normalised requirement name -> extra, 'transformers<6,>=5; extra == "model"'
    for req in requires:
        found = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*).*;\s*extra\s*==\s*[\"'](\w+)[\"']", req)
        if found:
            extras.setdefault(re.sub(r"[-_.]+", "-", found[1]).lower(), found[2])
    top = module.partition(".")[0]
    if (extra := extras.get(re.sub(r"[-_.]+", "-", top).lower())) is not None:
        return extra
    # an import name that is not its distribution's name (google -> protobuf); slow, so only now
    return next(
        (extras[d.lower()] for d in metadata.packages_distributions().get(top, ()) if d.lower() in extras), None
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return dispatch("ivl-data", build_parser(argv[0] if argv and argv[0] in COMMANDS else None), argv)


if __name__ == "__main__":
    sys.exit(main())
