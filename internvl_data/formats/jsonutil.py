"""JSON helpers: a position-keeping parser (duplicate keys, error line/column).

The hot path (one record per JSONL line) uses ``orjson.loads`` directly; :func:`parse` is the slow, exact
parser for small documents (the meta file) and for the rare lines whose duplicate-key pre-check fails. It
accepts exactly what ``json.loads`` accepts (it reuses the standard library's string and number scanners).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from json.decoder import JSONDecodeError, scanstring  # type: ignore[attr-defined]
from json.scanner import NUMBER_RE
from typing import Any

_WS = re.compile(r"[ \t\n\r]*")
_CONSTANTS = {
    "null": None,
    "true": True,
    "false": False,
    "NaN": float("nan"),
    "Infinity": float("inf"),
    "-Infinity": float("-inf"),
}


class JObject(list):
    """A parsed JSON object that keeps every member in order, duplicates included: ``(key, value, pos)``.

    ``pos`` is the character offset of the key's opening quote in the parsed text.
    """

    def positions(self) -> dict[str, int]:
        """Key -> offset of its first occurrence."""
        out: dict[str, int] = {}
        for k, _, pos in self:
            out.setdefault(k, pos)
        return out


def parse(text: str) -> Any:
    """Parse ``text`` keeping objects as :class:`JObject`. Raises ``JSONDecodeError`` (with pos/lineno/colno)."""
    try:
        value, end = _value(text, _WS.match(text, 0).end())  # type: ignore[union-attr]
    except RecursionError:
        raise JSONDecodeError("nesting too deep", text, 0) from None
    end = _WS.match(text, end).end()  # type: ignore[union-attr]
    if end != len(text):
        raise JSONDecodeError("Extra data", text, end)
    return value


def _value(s: str, i: int) -> tuple[Any, int]:
    c = s[i : i + 1]
    if c == '"':
        return scanstring(s, i + 1)
    if c == "{":
        return _object(s, i + 1)
    if c == "[":
        return _array(s, i + 1)
    for word, const in _CONSTANTS.items():
        if s.startswith(word, i):
            return const, i + len(word)
    m = NUMBER_RE.match(s, i)
    if m is None:
        raise JSONDecodeError("Expecting value", s, i)
    integer, frac, exp = m.groups()
    if frac or exp:
        return float(integer + (frac or "") + (exp or "")), m.end()
    return int(integer), m.end()


def _object(s: str, i: int) -> tuple[JObject, int]:
    obj = JObject()
    i = _WS.match(s, i).end()  # type: ignore[union-attr]
    if s[i : i + 1] == "}":
        return obj, i + 1
    while True:
        if s[i : i + 1] != '"':
            raise JSONDecodeError("Expecting property name enclosed in double quotes", s, i)
        key, j = scanstring(s, i + 1)
        j = _WS.match(s, j).end()  # type: ignore[union-attr]
        if s[j : j + 1] != ":":
            raise JSONDecodeError("Expecting ':' delimiter", s, j)
        value, j = _value(s, _WS.match(s, j + 1).end())  # type: ignore[union-attr]
        obj.append((key, value, i))
        j = _WS.match(s, j).end()  # type: ignore[union-attr]
        c = s[j : j + 1]
        if c == "}":
            return obj, j + 1
        if c != ",":
            raise JSONDecodeError("Expecting ',' delimiter", s, j)
        i = _WS.match(s, j + 1).end()  # type: ignore[union-attr]


def _array(s: str, i: int) -> tuple[list[Any], int]:
    out: list[Any] = []
    i = _WS.match(s, i).end()  # type: ignore[union-attr]
    if s[i : i + 1] == "]":
        return out, i + 1
    while True:
        value, i = _value(s, i)
        out.append(value)
        i = _WS.match(s, i).end()  # type: ignore[union-attr]
        c = s[i : i + 1]
        if c == "]":
            return out, i + 1
        if c != ",":
            raise JSONDecodeError("Expecting ',' delimiter", s, i)
        i = _WS.match(s, i + 1).end()  # type: ignore[union-attr]


def plain(value: Any) -> Any:
    """Convert a :func:`parse` result to plain Python values (json.loads semantics)."""
    if isinstance(value, JObject):
        return {k: plain(v) for k, v, _ in value}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def duplicate_keys(value: Any, path: str = "$") -> list[tuple[str, str, int]]:
    """Every repeated key in a :func:`parse` result: ``(json_path_of_object, key, pos_of_repeat)``."""
    found: list[tuple[str, str, int]] = []
    if isinstance(value, JObject):
        seen: set[str] = set()
        for k, v, pos in value:
            if k in seen:
                found.append((path, k, pos))
            seen.add(k)
            found.extend(duplicate_keys(v, f"{path}.{k}" if k.isidentifier() else f"{path}[{k!r}]"))
    elif isinstance(value, list):
        for n, v in enumerate(value):
            found.extend(duplicate_keys(v, f"{path}[{n}]"))
    return found


def line_finder(text: str) -> Callable[[int], int]:
    """A function from character offset to 1-based line number (binary search; for many lookups)."""
    newlines = [m.start() for m in re.finditer("\n", text)]
    return lambda pos: bisect.bisect_left(newlines, pos) + 1
