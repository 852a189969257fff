"""Work planning for ``stats`` and ``lengths`` (the pool and progress bar are :mod:`internvl_data.parallel`).

A dataset's annotation file is cut into newline-aligned byte chunks with known first line numbers, stopping
after the lines the trainer uses (``repeat_time`` < 1 keeps the first ``floor(n * r)`` lines). Chunks run in
:func:`internvl_data.parallel.run_pool` (unordered, progress weighted by bytes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from internvl_data.formats.lines import byte_cuts, count_lines, line_chunks
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

    ``repeat_time`` passed the meta checks (an integer above 1; ``cli.stats.load_datasets`` passes it as a float).
    """
    return int(repeat_time) if repeat_time > 1 else 1


def plan_file(index: int, path: str, repeat_time: float, chunk_bytes: int) -> FilePlan:
    """Chunks of about ``chunk_bytes`` over the used lines of ``path``, each starting at a line start."""
    if repeat_time >= 1:  # every line is used: cut by bytes without reading the file (line numbers unknown: 0)
        cuts = byte_cuts(path, chunk_bytes)
        return FilePlan(-1, -1, cuts[-1], [Chunk(index, a, b, 0) for a, b in zip(cuts, cuts[1:]) if b > a])
    from internvl_data.pipeline.mixture import kept_lines

    total = count_lines(path)
    used = kept_lines(total, repeat_time)[0]  # below 1: the first int(total * repeat_time) lines
    pieces, end = line_chunks(path, used, chunk_bytes)
    return FilePlan(total, used, end, [Chunk(index, a, b, first) for a, b, first in pieces])


def chunk_size(total_bytes: int, jobs: int) -> int:
    """About 32 chunks per worker (little idle time at the end), between 256 KiB and 16 MiB."""
    return max(1 << 18, min(1 << 24, math.ceil(total_bytes / max(1, jobs * 32))))
