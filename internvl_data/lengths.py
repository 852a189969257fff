"""Byte-exact JSON edits for ``ivl-data lengths``: set one key, leave every other byte alone.

A JSONL line gets its top-level ``length`` set (value replaced where the key exists, appended as the last key
otherwise, in the line's own separator style); a meta file gets ``<dataset>.length`` set the same way. Key
order, spacing, escapes, number formats, other keys and line endings are untouched. Files are replaced
atomically (:func:`replace_atomic`), with an optional ``.bak`` copy of the original.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import orjson

_WS = b" \t\r\n"
PAUSE_ENV = "IVL_LENGTHS_PAUSE_BEFORE_RENAME"  # tests: seconds to sleep between writing the temp file and the rename


class EditError(ValueError):
    """The text is not the JSON object the edit expects."""


def _skip_ws(b: bytes, i: int) -> int:
    while i < len(b) and b[i] in _WS:
        i += 1
    return i


def _string_end(b: bytes, i: int) -> int:
    """Index just past the string that starts with the quote at ``i``."""
    i += 1
    while True:
        j = b.find(b'"', i)
        if j < 0:
            raise EditError("unterminated string")
        k = j - 1
        while b[k] == 0x5C:  # count the backslashes before the quote
            k -= 1
        if (j - 1 - k) % 2 == 0:
            return j + 1
        i = j + 1


def _value_end(b: bytes, i: int) -> int:
    """Index just past the JSON value that starts at ``i`` (no validation beyond nesting and strings)."""
    c = b[i : i + 1]
    if c == b'"':
        return _string_end(b, i)
    if c in (b"{", b"["):
        depth = 0
        while i < len(b):
            ch = b[i]
            if ch == 0x22:
                i = _string_end(b, i)
                continue
            if ch in (0x7B, 0x5B):
                depth += 1
            elif ch in (0x7D, 0x5D):
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        raise EditError("unbalanced brackets")
    j = i
    while j < len(b) and b[j] not in b" \t\r\n,}]":
        j += 1
    if j == i:
        raise EditError(f"no value at byte {i}")
    return j


def members(b: bytes, start: int) -> tuple[list[tuple[str, int, int, int]], int]:
    """Members of the object whose ``{`` is at ``start``: ``[(key, key_start, value_start, value_end)]``, end."""
    if b[start : start + 1] != b"{":
        raise EditError("not a JSON object")
    out = []
    i = _skip_ws(b, start + 1)
    if b[i : i + 1] == b"}":
        return out, i + 1
    while True:
        if b[i : i + 1] != b'"':
            raise EditError(f"expected a key at byte {i}")
        key_end = _string_end(b, i)
        key = orjson.loads(b[i:key_end])
        j = _skip_ws(b, key_end)
        if b[j : j + 1] != b":":
            raise EditError(f"expected ':' at byte {j}")
        vs = _skip_ws(b, j + 1)
        ve = _value_end(b, vs)
        out.append((key, i, vs, ve))
        i = _skip_ws(b, ve)
        if b[i : i + 1] == b"}":
            return out, i + 1
        if b[i : i + 1] != b",":
            raise EditError(f"expected ',' or '}}' at byte {i}")
        i = _skip_ws(b, i + 1)


def set_key(b: bytes, start: int, key: str, value: bytes) -> bytes:
    """Set ``key`` to the raw JSON ``value`` in the object at ``start``; every other byte is kept.

    An existing key (every occurrence, should it be duplicated) has its value bytes replaced; otherwise the
    key is appended after the last member, separated the way the object separates its first two members.
    """
    mems, _end = members(b, start)
    hits = [m for m in mems if m[0] == key]
    if hits:
        out, pos = [], 0
        for _k, _ks, vs, ve in hits:
            out += [b[pos:vs], value]
            pos = ve
        return b"".join(out) + b[pos:]
    name = orjson.dumps(key)
    if not mems:
        i = _skip_ws(b, start + 1)
        return b[: start + 1] + name + b": " + value + b[i:]
    first_key_end = _string_end(b, mems[0][1])
    colon = b[first_key_end : mems[0][2]]  # the object's own ": " or ":" (with its spacing)
    lead = b[start + 1 : mems[0][1]]  # whitespace before the first key (newline + indent in pretty files)
    if lead:
        sep = b"," + lead
    elif len(mems) > 1:
        sep = b[mems[0][3] : mems[1][1]]
    else:
        sep = b", " if colon.endswith(b" ") else b","
    last_end = mems[-1][3]
    return b[:last_end] + sep + name + colon + value + b[last_end:]


def set_line_length(raw: bytes, length: int) -> bytes:
    """The JSONL line ``raw`` (no newline) with its top-level ``length`` set to ``length``."""
    start = _skip_ws(raw, 0)
    return set_key(raw, start, "length", str(int(length)).encode())


def set_meta_lengths(raw: bytes, lengths: dict[str, int]) -> bytes:
    """The meta file with ``<dataset>.length`` set for each dataset in ``lengths``."""
    start = _skip_ws(raw, 0)
    for name, n in lengths.items():
        mems, _ = members(raw, start)
        hit = [m for m in mems if m[0] == name]
        if not hit:
            raise EditError(f"dataset {name!r} is not in the meta file")
        _k, _ks, vs, _ve = hit[-1]  # the entry the loader uses when a name is duplicated
        raw = raw[:vs] + set_key(raw[vs:], 0, "length", str(int(n)).encode())
    return raw


def replace_atomic(path: Path, tmp: Path, backup: bool) -> None:
    """Rename ``tmp`` over ``path`` (same folder); first keep the original as ``path.bak`` when ``backup``."""
    pause = os.environ.get(PAUSE_ENV)
    if pause:
        time.sleep(float(pause))
    if backup:
        bak = path.with_name(path.name + ".bak")
        shutil.copy2(path, bak)
    os.replace(tmp, path)


def temp_beside(path: Path) -> Path:
    """A new empty file in ``path``'s folder (so the final rename stays on one file system)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".ivl-tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)
