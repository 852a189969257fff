"""Streaming JSONL by byte offset: every line with its 1-based number and byte offset, in bounded memory.

:func:`iter_lines` reads a whole file or a range ``[start, end)`` that starts at a line start (the chunks of
`ivl-data stats`); :func:`count_lines` counts lines the same way. `ivl-data validate` reads its 4 MiB blocks
through :func:`scan.read_block` instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

CHUNK = 1 << 22  # bytes read at a time


def iter_lines(
    path: str | os.PathLike[str], start: int = 0, end: int | None = None, first_lineno: int = 1
) -> Iterator[tuple[int, int, bytes]]:
    """Yield ``(lineno, offset, raw)`` for each line in ``[start, end)``; ``raw`` excludes the ``\\n``.

    ``first_lineno`` is the number of the line at ``start``. A final line without a newline is yielded; the
    empty string after a final newline is not (it is not a line).
    """
    lineno, offset = first_lineno, start
    remaining = None if end is None else max(0, end - start)
    rest = b""
    with open(path, "rb") as f:
        f.seek(start)
        while True:
            size = CHUNK if remaining is None else min(CHUNK, remaining)
            data = f.read(size) if size else b""
            if not data:
                break
            if remaining is not None:
                remaining -= len(data)
            parts = (rest + data if rest else data).split(b"\n")
            rest = parts.pop()
            for raw in parts:
                yield lineno, offset, raw
                offset += len(raw) + 1
                lineno += 1
    if rest:
        yield lineno, offset, rest


def count_lines(path: str | os.PathLike[str]) -> int:
    """Number of lines as :func:`iter_lines` yields them (a final line without newline counts)."""
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        while data := f.read(CHUNK):
            n += data.count(b"\n")
            last = data[-1:]
    return n + (last != b"\n")
