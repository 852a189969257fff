"""JSON Schemas (Draft 2020-12) generated from ``models.py``; the checked-in copies must not drift.

``schemas/*.schema.json`` (for users and editors) and ``internvl_data/_schemas/*.schema.json`` (shipped in the
wheel) are byte-identical outputs of :func:`write_schemas`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .jsonutil import write_atomic
from .models import Meta, Record

DRAFT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "https://github.com/ivl-kit/ivl-kit/schemas/"
PACKAGE_DIR = Path(__file__).resolve().parent
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


def write_schemas(check: bool = False) -> list[str]:
    """Write the schemas; with ``check`` write nothing. Returns the paths that were (or would be) changed."""
    changed: list[str] = []
    for name, text in schema_texts().items():
        for path in target_paths(name):
            try:
                current = path.read_text(encoding="utf-8")
            except OSError:
                current = None
            if current == text:
                continue
            changed.append(os.fspath(path))
            if not check:
                write_atomic(path, text)
    return changed
