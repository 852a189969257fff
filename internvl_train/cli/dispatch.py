"""`ivl-train`: one dispatcher; each command lives in its own ``cli_<name>`` module.

A command module defines ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int`` and is listed once in
``COMMANDS`` (``run`` and ``validate`` join later). Exit codes: 0 success, 1 failure found, 2 usage or bad input
or internal error. No traceback reaches the user (set ``IVL_DEBUG=1`` to see one).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from internvl_data.cli.dispatch import _Parser, dispatch  # usage errors and internal errors as in ivl-data

COMMANDS = {
    "check": "internvl_train.cli.check",
    "convert": "internvl_train.cli.convert",
    "presets": "internvl_train.cli.presets",
    "run": "internvl_train.cli.run",
    "merge-lora": "internvl_train.cli.merge_lora",
    "plan": "internvl_train.cli.plan",
}


def build_parser() -> argparse.ArgumentParser:
    from internvl_data.cli.completion import CompletionAction
    from internvl_data.cli.examples import decorate
    from internvl_train.version import __version__

    parser = _Parser(prog="ivl-train", description="Fine-tune InternVL2 and convert its checkpoints.")
    parser.add_argument("--version", action="version", version=f"ivl-train {__version__}")
    parser.add_argument("--completion", action=CompletionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, modname in COMMANDS.items():
        mod = importlib.import_module(modname)
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        decorate(p, "ivl-train", name, mod.HELP)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    return dispatch("ivl-train", build_parser(), sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
