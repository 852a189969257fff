"""Old flat module paths of internvl_train (before the 0.2 restructuring) as deprecated aliases of the new ones.

``import internvl_train.<old>`` still works for one release: it warns (DeprecationWarning) and returns the module at its
new place, the same module object, so private names and monkeypatching keep working. Nothing inside the package
imports an old path. ``docs/architecture.md`` lists the new tree.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "cli_convert": "internvl_train.cli.convert",
    "configmap": "internvl_train.checkpoint.configmap",
    "families": "internvl_train.checkpoint.families",
    "keymap": "internvl_train.checkpoint.keymap",
    "loading": "internvl_train.checkpoint.loading",
    "saving": "internvl_train.checkpoint.saving",
    "shards": "internvl_train.checkpoint.shards",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``internvl_train.<old>`` and loads it as the module at its new path."""

    def find_spec(self, fullname, path=None, target=None):
        prefix, _, old = fullname.partition(".")
        if prefix != "internvl_train" or old not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new = MOVED[spec.name.partition(".")[2]]
        warnings.warn(
            f"{spec.name} moved to {new}; the old path goes away in the next release", DeprecationWarning, stacklevel=2
        )
        return importlib.import_module(new)

    def exec_module(self, module):  # the new module is already executed
        pass


def install() -> None:
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.insert(0, _Alias())  # before the path finder, which would load a second copy
