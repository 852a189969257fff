"""Old flat module paths of internvl_train -> their new places, served by :class:`internvl_data._compat.Alias`."""

from __future__ import annotations

MOVED = {
    "cli_convert": "internvl_train.cli.convert",
    "configmap": "internvl_train.checkpoint.configmap",
    "families": "internvl_train.checkpoint.families",
    "keymap": "internvl_train.checkpoint.keymap",
    "loading": "internvl_train.checkpoint.loading",
    "saving": "internvl_train.checkpoint.saving",
    "shards": "internvl_train.checkpoint.shards",
}


def install() -> None:
    from internvl_data import _compat

    _compat.install("internvl_train", MOVED)
