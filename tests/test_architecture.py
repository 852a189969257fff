"""The import graph of internvl_data and internvl_train, read with ``ast`` (module-level and in-function imports,
``TYPE_CHECKING`` blocks left out): no cycle, no import from internvl_data into internvl_train, no import of a
deprecated flat path, and no import that points up the declared layer order (docs/architecture.md)."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("internvl_data", "internvl_train")

# Lowest layer first; a module may import its own layer and the layers below. A module belongs to the layer of
# its longest matching prefix ("=name": that module only). Keep in step with "Layers" in docs/architecture.md.
LAYERS: dict[str, list[tuple[str, ...]]] = {
    "internvl_data": [
        (
            "internvl_data.version",
            "internvl_data.errors",
            "internvl_data.fsio",
            "internvl_data.parallel",
            "internvl_data.stdin_meta",
        ),
        (
            "internvl_data.formats",
            "internvl_data.checks.findings",
            "internvl_data.checks.catalogue",
            "internvl_data.checks.meta",
            "internvl_data.checks.lines",
            "internvl_data.importers",  # record converters; checks.records names them in its hints
        ),
        ("internvl_data.media",),
        ("internvl_data.pipeline",),
        ("internvl_data.stats",),
        # the trainer-facing dataset (counts lengths with stats.tokens) and render, which builds through its factory
        ("internvl_data.pipeline.dataset", "internvl_data.pipeline.render"),
        ("internvl_data.checks",),
        ("internvl_data.validator", "internvl_data.config_file", "internvl_data.hooks"),
        ("internvl_data.cli", "internvl_data.__main__"),
        ("=internvl_data", "internvl_data._compat"),
    ],
    "internvl_train": [
        ("internvl_train.version", "internvl_train.errors"),
        ("internvl_train.checkpoint", "internvl_train.tiny"),
        ("internvl_train",),  # the trainer: config, presets, launch, ... (every module not named elsewhere)
        # plan.summary is the text `ivl-train run` prints: it formats through cli.plan
        ("internvl_train.cli", "internvl_train.__main__", "internvl_train.plan.summary"),
        ("=internvl_train", "internvl_train._compat"),
    ],
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks (imports for annotations only)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def imports_of(name: str, path: Path, known: set[str]) -> dict[str, int]:
    """``{imported module: line}`` for the package modules that ``name`` imports (a ``from pkg import mod``
    names the submodule ``pkg.mod`` when that is a module)."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_nodes(tree)
    is_pkg = path.name == "__init__.py"
    out: dict[str, int] = {}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        for t in targets:
            if t.split(".")[0] in PACKAGES and t != name:
                out.setdefault(t, node.lineno)
    return out


@functools.cache  # parsed once for all the tests (read-only)
def _graph() -> dict[str, dict[str, int]]:
    mods = _modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def _layer(module: str) -> int:
    """Index of the layer whose prefix matches ``module`` best (an exact "=name" beats a prefix); -1: none."""
    best, at = -1, -1
    for i, prefixes in enumerate(LAYERS[module.split(".")[0]]):
        for p in prefixes:
            name = p.lstrip("=")
            if module == name or (not p.startswith("=") and module.startswith(name + ".")):
                score = len(name) + p.startswith("=")
                if score > best:
                    best, at = score, i
    return at


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _deprecated_paths() -> set[str]:
    from internvl_data._compat import MOVED as data_moved
    from internvl_train._compat import MOVED as train_moved

    return {f"internvl_data.{k}" for k in data_moved} | {f"internvl_train.{k}" for k in train_moved}


def test_no_import_cycles() -> None:
    assert find_cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}
    assert find_cycles(graph) == [["a", "b", "c"]]


def test_internvl_data_never_imports_internvl_train() -> None:
    bad = [f"{m}:{line} imports {t}" for m, ts in _graph().items() for t, line in ts.items()]
    bad = [b for b in bad if b.startswith("internvl_data") and " imports internvl_train" in b]
    assert bad == []


def test_no_import_of_a_deprecated_flat_path() -> None:
    """An old flat module, or a name of an old flat module that is now a package (``internvl_data.media``,
    ``internvl_data.stats``: their ``__getattr__`` forwards with a warning) that is not a submodule."""
    old = _deprecated_paths()
    mods = _modules()
    bad = []
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                bad += [f"{name}:{node.lineno} {a.name}" for a in node.names if a.name in old and a.name not in mods]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module in old:
                for a in node.names:
                    if node.module not in mods or f"{node.module}.{a.name}" not in mods:
                        bad.append(f"{name}:{node.lineno} from {node.module} import {a.name}")
    assert bad == []


def test_every_module_has_a_layer() -> None:
    assert [m for m in _graph() if _layer(m) < 0] == []


def test_no_upward_imports() -> None:
    bad = [
        f"{m}:{line} imports {t}"
        for m, ts in _graph().items()
        for t, line in ts.items()
        if t.split(".")[0] == m.split(".")[0] and _layer(t) > _layer(m)
    ]
    assert bad == []


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("internvl_data.checks.media", 6),
        ("internvl_data.checks.lines", 1),
        ("internvl_data.checks.records", 6),
        ("internvl_data.cli.dispatch", 8),
        ("internvl_data", 9),
        ("internvl_data.stats.worker", 4),
        ("internvl_train", 4),
        ("internvl_train.presets", 2),
        ("internvl_train.checkpoint.loading", 1),
    ],
)
def test_layers_place_modules_by_longest_prefix(module: str, layer: int) -> None:
    assert _layer(module) == layer
