"""Old flat module paths of internvl_train (before the 0.2 restructuring) as deprecated aliases of the new ones.

``import internvl_train.<old>`` still works for one release: it warns (DeprecationWarning) and returns the module at its
new place, the same module object, so private names and monkeypatching keep working. Nothing inside the package
imports an old path. ``docs/architecture.md`` lists the new tree.
"""

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
