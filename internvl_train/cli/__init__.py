"""`ivl-train`: the dispatcher (:mod:`.dispatch`) and one module per command."""

from internvl_train.cli.dispatch import build_parser, main

__all__ = ["build_parser", "main"]
