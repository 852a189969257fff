"""Adding a template touches one registry: every difference between templates is a field of
``templates.Template``; no other module branches on a template name or a preprocess style."""

from __future__ import annotations

import ast
from pathlib import Path

from internvl_data.pipeline.labels import ARITHMETIC
from internvl_data.pipeline.templates import TEMPLATES

ROOT = Path(__file__).resolve().parents[2]
NAMES = set(TEMPLATES) | {t.preprocess for t in TEMPLATES.values()}


def _comparisons_with_names(path: Path) -> list[str]:
    """``x == "Hermes-2"``, ``x in ("mpt", ...)``, ``{"phi3": ...}[x]``-style uses of template names or styles."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        strings: list[ast.AST] = []
        if isinstance(node, ast.Compare):
            strings = [node.left, *node.comparators]
            strings += [e for c in node.comparators if isinstance(c, (ast.Tuple, ast.List, ast.Set)) for e in c.elts]
        elif isinstance(node, ast.Dict):
            strings = [k for k in node.keys if k is not None]
        for s in strings:
            if isinstance(s, ast.Constant) and s.value in NAMES:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {s.value!r}")
    return found


def test_no_module_outside_the_registry_branches_on_a_template() -> None:
    """internvl_data only: internvl_train branches on LLM families ("phi3" is also a family name)."""
    allowed = {
        ROOT / "internvl_data" / "pipeline" / "templates.py",  # the registry
        ROOT / "internvl_data" / "pipeline" / "labels.py",  # ARITHMETIC: the implementation of each style
    }
    found = []
    for path in sorted((ROOT / "internvl_data").rglob("*.py")):
        if path not in allowed:
            found += _comparisons_with_names(path)
    assert found == []


def test_the_scanner_sees_a_branch(tmp_path: Path) -> None:
    bad = ROOT / "tests" / "pipeline" / "_branch_sample.py"
    try:
        bad.write_text('def f(t):\n    return t.preprocess == "internvl2_5" or {"mpt": 1}.get(t)\n')
        assert _comparisons_with_names(bad) == [
            "tests/pipeline/_branch_sample.py:2: 'internvl2_5'",
            "tests/pipeline/_branch_sample.py:2: 'mpt'",
        ]
    finally:
        bad.unlink()


def test_every_preprocess_style_has_labels() -> None:
    """A string-wise style needs its length arithmetic in labels.ARITHMETIC; a block-wise one has none."""
    assert {name: (t.block_labels, t.preprocess in ARITHMETIC) for name, t in TEMPLATES.items()} == {
        "Hermes-2": (False, True),
        "internlm2-chat": (False, True),
        "phi3-chat": (False, True),
        "internvl2_5": (True, False),
    }
