"""`ivl-data`: one dispatcher; each command lives in its own ``internvl_data.cli.<name>`` module.

A command module is listed in ``COMMANDS`` and defines ``HELP`` (a string, or a dict by command name when one
module serves several), ``add_arguments(parser)`` (or ``add_arguments(parser, name)``) and ``run(args) -> int``.
Exit codes (internvl_data.cli.common): 0 clean, 1 errors found, 2 nothing could be checked, 130 Ctrl-C. No torch here.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

from internvl_data.cli.common import DISTRIBUTION, _extra_of, run_command  # noqa: F401  (_extra_of: tests)

COMMANDS = {
    "validate": "internvl_data.cli.validate",
    "rules": "internvl_data.cli.rules",
    "explain": "internvl_data.cli.rules",
    "schema": "internvl_data.cli.schema",
    "render": "internvl_data.cli.render",
    "stats": "internvl_data.cli.stats",
    "lengths": "internvl_data.cli.lengths",
    "pre-commit": "internvl_data.cli.precommit",
    "import": "internvl_data.cli.importer",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors exit 2 with one line, never a traceback
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or (``only``) one with just that command: start-up then imports one command module."""
    from internvl_data.cli.completion import CompletionAction
    from internvl_data.cli.examples import decorate
    from internvl_data.version import __version__

    parser = _Parser(prog="ivl-data", description="Check and inspect InternVL2 fine-tuning data.")
    parser.add_argument("--version", action="version", version=f"ivl-data {__version__}")
    parser.add_argument("--completion", action=CompletionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, modname in COMMANDS.items():
        if only is not None and name != only:
            continue
        mod = importlib.import_module(modname)
        p = sub.add_parser(name, help=mod.HELP.get(name, "") if isinstance(mod.HELP, dict) else mod.HELP)
        mod.add_arguments(p, name) if _takes_name(mod.add_arguments) else mod.add_arguments(p)
        decorate(p, "ivl-data", name, mod.HELP.get(name, "") if isinstance(mod.HELP, dict) else mod.HELP)
        p.set_defaults(_run=mod.run, _name=name)
    return parser


def _takes_name(fn) -> bool:
    return fn.__code__.co_argcount >= 2


def dispatch(prog: str, parser: argparse.ArgumentParser, argv: list[str]) -> int:
    """Parse ``argv`` and run the chosen command (help and exit 2 without one); every error, Ctrl-C and SIGTERM
    become an exit code and one line in :func:`internvl_data.cli.common.run_command`. Shared by ``ivl-data`` and
    ``ivl-train``."""
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return 2
    return run_command(prog, args.command, args._run, args)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:  # Ctrl-C while the command modules load (before run_command takes over) is still one line and 130
        parser = build_parser(argv[0] if argv and argv[0] in COMMANDS else None)
    except KeyboardInterrupt:
        print("ivl-data: interrupted", file=sys.stderr)
        return 130
    return dispatch("ivl-data", parser, argv)


if __name__ == "__main__":
    sys.exit(main())
