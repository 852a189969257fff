"""The one owner of splitting a JSONL file into lines (on ``\n``, as Python's ``readlines``: a final line without
a newline counts, the empty tail after a final newline does not), in bounded memory.

- :func:`iter_lines`: every line with its 1-based number and byte offset, over a file or a range ``[start, end)``
  that starts at a line start (the chunks of ``stats`` and ``lengths``); :func:`count_lines` counts the same way.
- :func:`read_block`: the lines that START in a fixed byte block (``validate``'s 4 MiB blocks).
- :func:`line_offsets`: the start offset of every line (the mixture's random access).
- :func:`byte_cuts`, :func:`line_chunks`: newline-aligned chunk boundaries (``stats`` and ``lengths`` planning).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

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


def line_numbers(path: str | os.PathLike[str], offsets: list[int]) -> list[int]:
    """The 1-based number of the line starting at each byte offset (a few offsets: one read up to the last)."""
    out: dict[int, int] = {}
    todo = sorted(set(offsets))
    pos, newlines = 0, 0
    with open(path, "rb") as f:
        for offset in todo:
            while pos < offset:
                data = f.read(min(CHUNK, offset - pos))
                if not data:
                    break
                newlines += data.count(b"\n")
                pos += len(data)
            out[offset] = newlines + 1
    return [out[o] for o in offsets]


def ends_mid_line(path: str | os.PathLike[str], tail: int = 1 << 20) -> bool:
    """True when the file looks cut short: no final newline and its last line (read from the last ``tail`` bytes)
    is not complete JSON (a copy killed half-way; a hand-written file without a final newline is complete)."""
    import orjson

    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return False
        f.seek(max(0, size - tail))
        data = f.read()
    if data.endswith(b"\n"):
        return False
    last = data.rsplit(b"\n", 1)[-1]
    if len(data) == tail and b"\n" not in data:
        return True  # a last line longer than ``tail``: not read whole, and no newline after it
    try:
        orjson.loads(last)
    except orjson.JSONDecodeError:
        return True
    return False


def read_block(path: str | os.PathLike[str], start: int, end: int, size: int) -> tuple[memoryview, list[bytes]]:
    """The bytes ``[start, end)`` of a file of ``size`` bytes and the lines that start in them (without their
    ``\n``; a line that runs past ``end`` is read to its end, the tail of one that started earlier is not
    included)."""
    with open(path, "rb") as fh:
        fh.seek(max(0, start - 1))
        data = fh.read(end - start + (start > 0))  # from the byte before the block: is it a newline?
        block = memoryview(data)[start > 0 :]
        if not data:
            return block, []
        lines = data.split(b"\n")
        if start > 0:
            del lines[0]  # the end of a line that started earlier (b"" when the block starts a line)
        if data.endswith(b"\n"):
            lines.pop()  # b"": the next line starts in the next block
        elif lines and end < size:  # the last line goes on in the next block(s)
            tail = [lines[-1]]
            while chunk := fh.read(1 << 16):
                cut = chunk.find(b"\n")
                tail.append(chunk if cut < 0 else chunk[:cut])
                if cut >= 0:
                    break
            lines[-1] = b"".join(tail)
    return block, lines


def line_offsets(path: str | os.PathLike[str]) -> np.ndarray:
    """Start offset of every line plus the file size at the end (``n + 1`` values), in one streaming pass;
    uint32 when the file is under 4 GiB, else int64."""
    import numpy as np

    size = os.path.getsize(path)
    starts = [np.zeros(1, dtype=np.int64)]
    with open(path, "rb") as f:
        base = 0
        while chunk := f.read(CHUNK):
            newlines = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10)
            starts.append(newlines.astype(np.int64) + (base + 1))
            base += len(chunk)
    offsets = np.concatenate(starts)
    if offsets[-1] != size:  # last line has no newline: close it with the file size
        offsets = np.append(offsets, size)
    return offsets.astype(np.uint32 if size < 1 << 32 else np.int64)


def byte_cuts(path: str | os.PathLike[str], chunk_bytes: int) -> list[int]:
    """Offsets ``[0, ..., size]`` cutting the file into pieces of about ``chunk_bytes``, each starting at a line
    start (without counting lines)."""
    size = os.path.getsize(path)
    cuts = [0]
    with open(path, "rb") as f:
        for target in range(chunk_bytes, size, chunk_bytes):
            f.seek(max(target, cuts[-1] + 1) - 1)
            f.readline()  # to the start of the next line
            if cuts[-1] < f.tell() < size:
                cuts.append(f.tell())
    cuts.append(size)
    return cuts


def line_chunks(path: str | os.PathLike[str], used: int, chunk_bytes: int) -> tuple[list[tuple[int, int, int]], int]:
    """Pieces of about ``chunk_bytes`` covering the first ``used`` lines: ``([(start, end, first line), ...],
    end of the last used line)``."""
    chunks: list[tuple[int, int, int]] = []
    lineno, pos = 0, 0  # lines complete before byte ``pos``
    with open(path, "rb") as f:
        while lineno < used:
            start, first = pos, lineno + 1
            block = f.read(chunk_bytes)
            if not block:
                break
            nl = block.count(b"\n")
            if lineno + nl >= used:  # the last used line ends inside this block
                cut = -1
                for _ in range(used - lineno):
                    cut = block.index(b"\n", cut + 1)
                pos, lineno = pos + cut + 1, used
            else:
                pos, lineno = pos + len(block), lineno + nl
                if not block.endswith(b"\n"):  # finish the line so that chunks end on a line boundary
                    pos += len(f.readline())
                    lineno += 1
            chunks.append((start, pos, first))
    return chunks, pos
