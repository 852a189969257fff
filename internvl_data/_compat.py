"""Old flat module paths of internvl_data (before the 0.2 restructuring) as deprecated aliases of the new ones.

``import internvl_data.<old>`` still works for one release: it warns (DeprecationWarning) and returns the module at its
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
    "cache": "internvl_data.validator.cache",
    "checks_lines": "internvl_data.checks.lines",
    "checks_media": "internvl_data.checks.media",
    "checks_meta": "internvl_data.checks.meta",
    "checks_records": "internvl_data.checks.records",
    "checks_tokens": "internvl_data.checks.tokens",
    "cli_lengths": "internvl_data.cli.lengths",
    "cli_render": "internvl_data.cli.render",
    "cli_rules": "internvl_data.cli.rules",
    "cli_schema": "internvl_data.cli.schema",
    "cli_stats": "internvl_data.cli.stats",
    "cli_validate": "internvl_data.cli.validate",
    "collate": "internvl_data.pipeline.collate",
    "engine": "internvl_data.validator.driver",
    "findings": "internvl_data.checks.findings",
    "jsonutil": "internvl_data.formats.jsonutil",
    "labels": "internvl_data.pipeline.labels",
    "lengths": "internvl_data.stats.lengths",
    "lines": "internvl_data.formats.lines",
    "manifest": "internvl_data.validator.manifest",
    "meta": "internvl_data.formats.meta",
    "mixture": "internvl_data.pipeline.mixture",
    "modelinfo": "internvl_data.pipeline.modelinfo",
    "models": "internvl_data.formats.models",
    "options": "internvl_data.validator.options",
    "render": "internvl_data.pipeline.render",
    "report": "internvl_data.validator.report",
    "report.github": "internvl_data.validator.report.github",
    "report.json": "internvl_data.validator.report.json",
    "report.sarif": "internvl_data.validator.report.sarif",
    "report.text": "internvl_data.validator.report.text",
    "rules": "internvl_data.checks.registry",  # the old module's all_rules/get live there, rule/emit re-exported
    "sample": "internvl_data.pipeline.sample",
    "scan": "internvl_data.validator.worker",
    "schema": "internvl_data.formats.schema",
    "stats_hist": "internvl_data.stats.hist",
    "stats_media": "internvl_data.media.sizes",
    "stats_output": "internvl_data.stats.output",
    "stats_pieces": "internvl_data.stats.piece_cache",
    "stats_plan": "internvl_data.stats.plan",
    "stats_scan": "internvl_data.stats.worker",
    "stats_tokens": "internvl_data.stats.tokens",
    "templates": "internvl_data.pipeline.templates",
    "tiling": "internvl_data.pipeline.tiling",
    "tokenizer": "internvl_data.pipeline.tokenizer",
    "transforms": "internvl_data.pipeline.transforms",
    "video": "internvl_data.pipeline.video",
}


class Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``<package>.<old>`` and loads it as the module at its new path (``moved``: old -> new name)."""

    def __init__(self, package: str, moved: dict[str, str]):
        self.package, self.moved = package, moved

    def find_spec(self, fullname, path=None, target=None):
        prefix, _, old = fullname.partition(".")
        if prefix != self.package or old not in self.moved:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new = self.moved[spec.name.partition(".")[2]]
        warnings.warn(
            f"{spec.name} moved to {new}; the old path goes away in the next release", DeprecationWarning, stacklevel=2
        )
        return importlib.import_module(new)

    def exec_module(self, module):  # the new module is already executed
        pass


def install(package: str = "internvl_data", moved: dict[str, str] = MOVED) -> None:
    if not any(isinstance(f, Alias) and f.package == package for f in sys.meta_path):
        sys.meta_path.insert(0, Alias(package, moved))  # before the path finder, which would load a second copy
