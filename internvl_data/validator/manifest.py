"""The manifest of a clean validation run, and the staleness check the trainer runs before using the data.

Default location: ``<meta stem>.ivl-manifest.json`` beside the meta file. It records the tool version, the
options that affect findings, the meta file's content hash and, per dataset, the annotation file's size, line
count and content hash, the root and the media mode. Written atomically, never after a run with errors (such a
run deletes an existing one, so that it cannot vouch for data that now fails).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from internvl_data.validator.cache import HASH_NAME, content_hash, write_atomic
from internvl_data.version import __version__

FORMAT = 1


def default_path(meta_path: str | os.PathLike) -> Path:
    meta = Path(meta_path)
    return meta.with_name(f"{meta.stem}.ivl-manifest.json")


def build(meta_path: str | os.PathLike, options: Any, datasets: list[tuple[Any, Any]]) -> dict:
    """The manifest document; ``datasets``: (meta.MetaEntry, validate.FileResult) pairs in meta order."""
    return {
        "format": FORMAT,
        "tool": "ivl-data",
        "version": __version__,
        "meta": {"path": os.path.abspath(meta_path), "content_hash": content_hash(meta_path)},
        "options": options.key_fields(),
        "datasets": {
            me.name: {
                "annotation": os.path.abspath(me.annotation_path),
                "size": os.path.getsize(me.annotation_path),
                "lines": r.lines,
                "records": r.records,
                "content_hash": r.content_hash,
                "root": os.path.abspath(me.root_path) if me.root_path and "://" not in me.root_path else me.root_path,
                "media": options.media,
            }
            for me, r in datasets
        },
    }


def write(meta_path: str | os.PathLike, options: Any, datasets: list[tuple[Any, Any]]) -> Path:
    """Write the manifest (``options.manifest`` or the default path) atomically; returns its path."""
    path = Path(options.manifest) if options.manifest else default_path(meta_path)
    write_atomic(path, orjson.dumps(build(meta_path, options, datasets), option=orjson.OPT_INDENT_2) + b"\n")
    return path


def remove(meta_path: str | os.PathLike, options: Any) -> None:
    """Delete the manifest a run would write (after a run with errors)."""
    Path(options.manifest or default_path(meta_path)).unlink(missing_ok=True)


def check(meta_path: str | os.PathLike, manifest_path: str | os.PathLike | None = None) -> list[str]:
    """Why the manifest does not vouch for the data as it is now (empty list: up to date).

    Compares the tool version, the meta file and every dataset's annotation size, content hash and root.
    """
    from internvl_data.formats.meta import load_meta

    path = Path(manifest_path) if manifest_path else default_path(meta_path)
    run = f"run `ivl-data validate {meta_path}`"
    try:
        doc = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return [f"no manifest at {path}: {run}"]
    except (OSError, orjson.JSONDecodeError) as exc:
        return [f"manifest {path} is unreadable ({exc}): {run}"]
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("datasets"), dict):
        return [f"manifest {path} is not an ivl-data manifest of format {FORMAT}: {run}"]
    reasons = []
    if doc.get("version") != __version__:
        reasons.append(f"manifest written by ivl-data {doc.get('version')}, this is {__version__}: {run}")
    try:
        meta_hash = content_hash(meta_path)
    except OSError as exc:
        return [f"cannot read the meta file {meta_path}: {exc.strerror or exc}"]
    if doc.get("meta", {}).get("content_hash") != meta_hash:
        reasons.append(f"the meta file {meta_path} changed since it was validated: {run}")
    entries = {me.name: me for me in load_meta(meta_path).entries}
    recorded: dict[str, dict] = doc["datasets"]
    for name in entries.keys() - recorded.keys():
        reasons.append(f"dataset {name!r} is not in the manifest: {run}")
    for name in recorded.keys() - entries.keys():
        reasons.append(f"dataset {name!r} is in the manifest but no longer in the meta file: {run}")
    for name, rec in recorded.items():
        if name in entries:
            reasons += _dataset_reasons(name, rec, entries[name], run)
    return reasons


def _dataset_reasons(name: str, rec: dict, me: Any, run: str) -> list[str]:
    ann = me.annotation_path
    if os.path.abspath(ann) != rec.get("annotation"):
        return [f"dataset {name!r}: annotation is now {ann}, the manifest has {rec.get('annotation')}: {run}"]
    try:
        size = os.path.getsize(ann)
    except OSError as exc:
        return [f"dataset {name!r}: cannot read {ann}: {exc.strerror or exc}"]
    if size != rec.get("size"):
        return [f"dataset {name!r}: {ann} is {size} bytes, the manifest has {rec.get('size')}: {run}"]
    algorithm = str(rec.get("content_hash", "")).split(":")[0]
    if algorithm != HASH_NAME:
        return [f"dataset {name!r}: the manifest's hash is {algorithm!r}, this install computes {HASH_NAME}: {run}"]
    if content_hash(ann) != rec.get("content_hash"):
        return [f"dataset {name!r}: the content of {ann} changed since it was validated: {run}"]
    return []
