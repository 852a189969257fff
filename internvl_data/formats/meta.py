"""Meta file -> dataset entries with resolved paths, plus the IVL1xx findings.

Relative ``annotation`` and ``root`` paths resolve against the meta file's folder first and, when nothing
exists there, against the current directory (the official launch scripts run from ``internvl_chat/``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from internvl_data.checks.catalogue import emit
from internvl_data.checks.findings import Finding
from internvl_data.checks.meta import check_entry, check_paths
from internvl_data.formats.jsonutil import JObject, JSONDecodeError, duplicate_keys, line_finder, parse, plain
from internvl_data.formats.models import DatasetEntry


@dataclass(slots=True)
class MetaEntry:
    """One dataset of the meta file, as written (``raw``) and as resolved (``*_path``)."""

    name: str
    entry: DatasetEntry | None  # the validated model; None when the entry has errors
    raw: dict[str, Any]  # the values as written (last duplicate wins)
    annotation_path: str  # resolved JSONL path ("" when the key is missing or not a string)
    root_path: str  # resolved media root ("" when missing; s3:// roots unchanged)
    line: int  # line of the dataset name in the meta file
    meta_path: str = ""
    key_lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, key: str) -> int:
        """Line of ``key`` inside this entry (the dataset name's line when absent)."""
        return self.key_lines.get(key, self.line)


@dataclass(slots=True)
class MetaResult:
    entries: list[MetaEntry] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def resolve(path: str, meta_dir: str) -> str:
    """A path from the meta file: absolute as is; else meta folder first, then the current directory."""
    if os.path.isabs(path) or path.startswith("s3://"):
        return path
    beside = os.path.normpath(os.path.join(meta_dir, path)) if meta_dir else os.path.normpath(path)
    if os.path.exists(beside) or not os.path.exists(path):
        return beside
    return os.path.normpath(path)


def load_meta(path: str | os.PathLike[str]) -> MetaResult:
    """Read and check the meta file. Never raises for bad input: problems come back as findings."""
    meta_path = os.fspath(path)
    result = MetaResult()
    text = _read(meta_path, result)
    if text is None:
        return result
    try:
        tree = parse(text)
    except JSONDecodeError as exc:
        result.findings.append(emit("IVL101", meta_path, exc.lineno, f"invalid JSON: {exc.msg}", col=exc.colno))
        return result
    if not isinstance(tree, JObject) or not tree:
        what = "an empty object" if isinstance(tree, JObject) else f"a JSON {type(plain(tree)).__name__}"
        result.findings.append(emit("IVL102", meta_path, 1, f"the meta file is {what}, not an object of datasets"))
        return result
    meta_dir = os.path.dirname(meta_path)
    line_at = line_finder(text)
    seen: set[str] = set()
    for name, value, pos in tree:
        line = line_at(pos)
        if name in seen:
            result.findings.append(
                emit(
                    "IVL103",
                    meta_path,
                    line,
                    f"dataset name {name!r} is used twice; the first definition would be silently dropped",
                    dataset=name,
                )
            )
            result.entries = [e for e in result.entries if e.name != name]
        seen.add(name)
        if not isinstance(value, JObject):
            result.findings.append(
                emit(
                    "IVL102",
                    meta_path,
                    line,
                    f"dataset {name!r} is a {type(plain(value)).__name__}, not an object of settings",
                    dataset=name,
                )
            )
            continue
        result.entries.append(_entry(name, value, line, line_at, meta_path, meta_dir, result.findings))
    return result


def _read(meta_path: str, result: MetaResult) -> str | None:
    try:
        with open(meta_path, "rb") as f:
            data = f.read()
    except OSError as exc:
        result.findings.append(emit("IVL101", meta_path, 0, f"cannot read the meta file: {exc.strerror or exc}"))
        return None
    if data.startswith(b"\xef\xbb\xbf"):
        result.findings.append(
            emit(
                "IVL101",
                meta_path,
                1,
                "the meta file starts with a UTF-8 byte order mark, which json.loads rejects",
                col=1,
                hint="Save it as UTF-8 without BOM.",
            )
        )
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        result.findings.append(
            emit(
                "IVL101",
                meta_path,
                line,
                f"invalid UTF-8 byte 0x{data[exc.start]:02x}",
                hint="Re-encode the meta file as UTF-8.",
            )
        )
        return None


def _entry(
    name: str,
    value: JObject,
    line: int,
    line_at: Callable[[int], int],
    meta_path: str,
    meta_dir: str,
    findings: list[Finding],
) -> MetaEntry:
    key_lines = {k: line_at(pos) for k, pos in value.positions().items()}
    raw = plain(value)
    for _, key, pos in duplicate_keys(value):
        findings.append(
            emit(
                "IVL117",
                meta_path,
                line_at(pos),
                f"dataset {name!r}: key {key!r} appears twice; the last value wins",
                json_path=f"$.{name}.{key}",
                dataset=name,
            )
        )
    ann, root = raw.get("annotation"), raw.get("root")
    entry = MetaEntry(
        name,
        None,
        raw,
        resolve(ann, meta_dir) if type(ann) is str else "",
        resolve(root, meta_dir) if type(root) is str and root else "",
        line,
        meta_path,
        key_lines,
    )
    own = check_entry(name, raw, meta_path, entry.line_of)
    own += check_paths(name, raw, entry.annotation_path, entry.root_path, meta_path, entry.line_of)
    findings.extend(own)
    if not any(f.severity.value == "error" for f in own):
        usable = {k: v for k, v in raw.items() if k != "length" or (type(v) is int and v >= 0)}  # IVL112: a warning
        try:
            entry.entry = DatasetEntry.model_validate(usable)
        except ValidationError:  # the raw checks above are stricter; keep None rather than fail
            entry.entry = None
    return entry
