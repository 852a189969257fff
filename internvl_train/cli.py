"""`ivl-train`: one dispatcher; each command lives in its own ``cli_<name>`` module.

A command module defines ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int`` and is listed once in
``COMMANDS`` (``run`` and ``validate`` join later). Exit codes: 0 success, 1 failure found, 2 usage or bad input
or internal error. No traceback reaches the user (set ``IVL_DEBUG=1`` to see one).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from internvl_data.cli import _Parser  # usage errors: one line and exit 2, as in ivl-data

COMMANDS = {
    "convert": "internvl_train.cli_convert",
}


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="ivl-train", description="Fine-tune InternVL2 and convert its checkpoints.")
    parser.add_argument("--version", action="version", version=f"ivl-train {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, modname in COMMANDS.items():
        mod = importlib.import_module(modname)
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        print("ivl-train: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal error: one line, exit 2, never a traceback unless asked
        if os.environ.get("IVL_DEBUG"):
            import traceback

            traceback.print_exc()
        print(
            f"ivl-train: internal error: {type(exc).__name__}: {exc} (set IVL_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
