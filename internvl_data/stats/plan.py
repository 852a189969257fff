"""Work planning for ``stats`` and ``lengths`` (the pool and progress bar are :mod:`internvl_data.parallel`).

A dataset's annotation file is cut into newline-aligned byte chunks with known first line numbers, stopping
after the lines the trainer uses (``repeat_time`` < 1 keeps the first ``floor(n * r)`` lines). Chunks run in
:func:`internvl_data.parallel.run_pool` (unordered, progress weighted by bytes).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from internvl_data.formats.lines import count_lines
from internvl_data.stats.worker import Chunk


@dataclass
class FilePlan:
    """Line counts of one annotation file and the chunks that cover the lines in use."""

    lines: int  # lines in the file (as Python's readlines counts them); -1: not counted (the workers count)
    used_lines: int  # lines the trainer reads before repetition; -1: all of them
    used_bytes: int
    chunks: list[Chunk]


def repeat_factor(repeat_time: float) -> int:
    """How many times the kept lines are used per epoch (1 below or at 1; the integer above).

    ``mixture.kept_lines`` rejects floats above 1 (2.0), which ``cli_stats.load_datasets`` passes here.
    """
    return int(repeat_time) if repeat_time > 1 else 1


def plan_file(index: int, path: str, repeat_time: float, chunk_bytes: int) -> FilePlan:
    """Chunks of about ``chunk_bytes`` over the used lines of ``path``, each starting at a line start."""
    if repeat_time >= 1:  # every line is used: cut by bytes without reading the file (line numbers unknown: 0)
        size = os.path.getsize(path)
        cuts = [0]
        with open(path, "rb") as f:
            for target in range(chunk_bytes, size, chunk_bytes):
                f.seek(max(target, cuts[-1] + 1) - 1)
                f.readline()  # to the start of the next line
                if cuts[-1] < f.tell() < size:
                    cuts.append(f.tell())
        cuts.append(size)
        return FilePlan(-1, -1, size, [Chunk(index, a, b, 0) for a, b in zip(cuts, cuts[1:]) if b > a])
    from internvl_data.pipeline.mixture import kept_lines

    total = count_lines(path)
    used = kept_lines(total, repeat_time)[0]  # below 1: the first int(total * repeat_time) lines
    chunks: list[Chunk] = []
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
            chunks.append(Chunk(index, start, pos, first))
    return FilePlan(total, used, pos, chunks)


def chunk_size(total_bytes: int, jobs: int) -> int:
    """About 32 chunks per worker (little idle time at the end), between 256 KiB and 16 MiB."""
    return max(1 << 18, min(1 << 24, math.ceil(total_bytes / max(1, jobs * 32))))
