"""Streaming JSONL by byte offset: every line with its 1-based number and byte offset, in bounded memory.

A range ``[start, end)`` always starts at a line start; :func:`split_ranges` cuts a file into such ranges and
tells each range's first line number, so workers can check parts of one file in parallel.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

CHUNK = 1 << 22  # bytes read at a time
MIN_RANGE = 1 << 16  # split_ranges never cuts ranges smaller than this


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


def split_ranges(path: str | os.PathLike[str], n: int) -> list[tuple[int, int, int]]:
    """Cut the file into at most ``n`` ranges ``(start, end, first_lineno)`` whose bounds sit on line starts.

    Ranges are contiguous and cover the whole file; the line numbers come from counting newlines per range.
    """
    size = os.path.getsize(path)
    n = max(1, min(n, size // MIN_RANGE or 1))  # tiny files are one range
    cuts = [0]
    with open(path, "rb") as f:
        for k in range(1, n):
            target = max(size * k // n, cuts[-1])
            f.seek(target)
            if target:
                f.readline()  # move to the start of the next line
            pos = f.tell()
            if pos > cuts[-1] and pos < size:
                cuts.append(pos)
        cuts.append(size)
        ranges: list[tuple[int, int, int]] = []
        lineno = 1
        for start, end in zip(cuts, cuts[1:]):
            ranges.append((start, end, lineno))
            lineno += _count_newlines(f, start, end)
    return ranges


def _count_newlines(f, start: int, end: int) -> int:  # type: ignore[no-untyped-def]
    f.seek(start)
    count, left = 0, end - start
    while left > 0:
        data = f.read(min(CHUNK, left))
        if not data:
            break
        count += data.count(b"\n")
        left -= len(data)
    return count


def count_lines(path: str | os.PathLike[str]) -> int:
    """Number of lines as :func:`iter_lines` yields them (a final line without newline counts)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        n = _count_newlines(f, 0, size)
        if size:
            f.seek(size - 1)
            n += f.read(1) != b"\n"
    return n
