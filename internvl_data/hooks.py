"""Which meta files a set of changed files concerns (the pre-commit hook, ``ivl-data pre-commit FILE...``).

A meta file is any ``*.json`` file of the repository whose top level is an object of objects with at least one
``annotation`` key, whatever its name (``internvl_finetune_custom.json`` as well as ``meta.json``). A changed
file concerns a meta file when it is that meta file, one of its annotation files, or a media file (by suffix)
under one of its dataset roots. Each concerned meta file is validated once, with its media checks; a changed
JSONL file that no meta file lists is checked on its own (lines and records, no media).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

MAX_META_BYTES = 8 * 1024 * 1024  # a larger *.json file is data, not a meta file: not parsed
MEDIA_SUFFIXES = frozenset(
    [
        ".jpg",
        ".jpeg",
        ".png",
        ".webp",
        ".bmp",
        ".gif",
        ".tif",
        ".tiff",
        ".jfif",
        ".heic",
        ".mp4",
        ".avi",
        ".mov",
        ".mkv",
        ".webm",
        ".flv",
        ".m4v",
        ".mpeg",
        ".mpg",
    ]
)


@dataclass
class Plan:
    """``metas``: meta files to validate (repository-relative when found there, in discovery order);
    ``orphans``: changed JSONL files that no meta file lists; ``reasons``: meta file -> the changed files."""

    metas: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    reasons: dict[str, list[str]] = field(default_factory=dict)


def repository_files(top: str = ".") -> list[str]:
    """Tracked and staged files (``git ls-files``), relative to ``top``; outside git, every file under it."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=top,
            capture_output=True,
            check=True,
        ).stdout
        return sorted({p for p in out.decode("utf-8", "surrogateescape").split("\0") if p})
    except (OSError, subprocess.CalledProcessError):
        found = []
        for folder, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [os.path.relpath(os.path.join(folder, f), top) for f in sorted(files)]
        return found


def is_meta_file(path: str) -> bool:
    """A JSON object of objects, one of them with an ``annotation`` key (cheap: size and first byte first)."""
    try:
        if os.path.getsize(path) > MAX_META_BYTES:
            return False
        with open(path, "rb") as fh:
            data = fh.read()
        if data.lstrip()[:1] != b"{":
            return False
        tree = orjson.loads(data)
    except (OSError, orjson.JSONDecodeError):
        return False
    return (
        isinstance(tree, dict)
        and bool(tree)
        and all(isinstance(v, dict) for v in tree.values())
        and any("annotation" in v for v in tree.values())
    )


def find_meta_files(files: Iterable[str], top: str = ".") -> list[str]:
    return [f for f in files if f.endswith(".json") and is_meta_file(os.path.join(top, f))]


def _key(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def plan(changed: Iterable[str], metas: Iterable[str]) -> Plan:
    """Map ``changed`` files to the ``metas`` that list them (paths as given, relative to the current folder)."""
    from internvl_data.formats.meta import load_meta

    changed = list(dict.fromkeys(changed))
    keys = {c: _key(c) for c in changed}
    result = Plan()
    listed: set[str] = set()
    for meta in dict.fromkeys(metas):
        entries = load_meta(meta).entries
        annotations = {_key(e.annotation_path) for e in entries if e.annotation_path}
        roots = [_key(e.root_path) for e in entries if e.root_path and not e.root_path.startswith("s3://")]
        listed |= annotations
        hits = [
            c
            for c in changed
            if keys[c] == _key(meta)
            or keys[c] in annotations
            or (os.path.splitext(c)[1].lower() in MEDIA_SUFFIXES and any(_under(keys[c], r) for r in roots))
        ]
        if hits:
            result.metas.append(meta)
            result.reasons[meta] = hits
    result.orphans = [c for c in changed if c.endswith(".jsonl") and keys[c] not in listed]
    return result
