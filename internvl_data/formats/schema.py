"""JSON Schemas (Draft 2020-12) generated from ``models.py``; the checked-in copies must not drift.

``schemas/*.schema.json`` (for users and editors) and ``internvl_data/_schemas/*.schema.json`` (shipped in the
wheel) are byte-identical outputs of :func:`write_schemas`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from internvl_data.formats.models import Meta, Record
from internvl_data.fsio import write_atomic

DRAFT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "https://github.com/ivl-kit/ivl-kit/schemas/"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # internvl_data/
REPO_DIR = PACKAGE_DIR.parent
NAMES = ("meta", "record")


def _finish(schema: dict[str, Any], name: str, description: str) -> dict[str, Any]:
    """Add ``$schema``/``$id``, drop pydantic's ``default: null`` noise (absent means absent)."""

    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: clean(v) for k, v in node.items() if not (k == "default" and v is None)}
        if isinstance(node, list):
            return [clean(v) for v in node]
        return node

    body = clean(schema)
    body["description"] = description
    return {"$schema": DRAFT, "$id": f"{ID_BASE}{name}.schema.json", **body}


def meta_schema() -> dict[str, Any]:
    """Schema of the meta file (an object of dataset entries)."""
    return _finish(
        Meta.model_json_schema(by_alias=True),
        "meta",
        "InternVL2 fine-tuning meta file: dataset name -> dataset entry, in training order.",
    )


def record_schema() -> dict[str, Any]:
    """Schema of one JSONL line of an annotation file."""
    return _finish(
        Record.model_json_schema(by_alias=True),
        "record",
        "One line of an InternVL2 annotation JSONL file (pure text, single image, multi-image or video).",
    )


def render(schema: dict[str, Any]) -> str:
    """The exact text written to disk (stable key order from the models, 2-space indent, final newline)."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def schema_texts() -> dict[str, str]:
    return {"meta": render(meta_schema()), "record": render(record_schema())}


def target_paths(name: str) -> list[Path]:
    """Where the schema ``name`` lives: the repository copy (when present) and the packaged copy."""
    paths = [PACKAGE_DIR / "_schemas" / f"{name}.schema.json"]
    if (REPO_DIR / "schemas").is_dir():
        paths.insert(0, REPO_DIR / "schemas" / f"{name}.schema.json")
    return paths


def write_schemas(check: bool = False, rules_doc: str | None = None) -> list[str]:
    """Write the schemas (and ``rules_doc`` as docs/rules.md in a checkout); with ``check`` write nothing.

    Returns the paths that were (or would be) changed. ``rules_doc`` is
    :func:`internvl_data.checks.registry.rules_markdown` (passed in: the complete catalogue sits above formats).
    """
    changed: list[str] = []
    outputs = [(path, text) for name, text in schema_texts().items() for path in target_paths(name)]
    if rules_doc is not None and (REPO_DIR / "docs").is_dir():
        outputs.append((REPO_DIR / "docs" / "rules.md", rules_doc))
    for path, text in outputs:
        try:
            current = path.read_text(encoding="utf-8")
        except OSError:
            current = None
        if current == text:
            continue
        changed.append(os.fspath(path))
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, text.encode("utf-8"))
    return changed
