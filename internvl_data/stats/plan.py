"""Work planning and the process pool shared by ``stats`` and ``lengths``.

A dataset's annotation file is cut into newline-aligned byte chunks with known first line numbers, stopping
after the lines the trainer uses (``repeat_time`` < 1 keeps the first ``floor(n * r)`` lines). Chunks run in
worker processes (fork, initialised once per process) with a progress bar on a terminal only.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

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


def run_chunks(
    chunks: list[Chunk],
    fn: Callable[[Chunk], Any],
    init: Callable[..., None],
    init_args: tuple,
    jobs: int,
    progress: bool,
    label: str,
) -> Iterator[tuple[Chunk, Any]]:
    """Yield ``(chunk, fn(chunk))`` as they complete; in-process when ``jobs`` is 1 or there is one chunk.

    With the fork start method the parent runs ``init`` once before the pool starts and the workers inherit
    its state (one tokenizer load instead of one per worker); the progress bar starts after the fork.
    """
    total = sum(c.end - c.start for c in chunks)
    bar = None
    try:
        if jobs <= 1 or len(chunks) <= 1:
            init(*init_args)
            bar = _Progress(total, label) if progress else None
            for c in chunks:
                out = fn(c)
                if bar:
                    bar.advance(c.end - c.start)
                yield c, out
            return
        fork = "fork" in mp.get_all_start_methods()
        if fork:
            init(*init_args)
        ctx = mp.get_context("fork" if fork else "spawn")
        with ctx.Pool(
            min(jobs, len(chunks)), initializer=None if fork else init, initargs=() if fork else init_args
        ) as pool:
            bar = _Progress(total, label) if progress else None
            by_id = {id(c): c for c in chunks}
            for cid, out in pool.imap_unordered(_Call(fn), ((id(c), c) for c in chunks)):
                c = by_id[cid]
                if bar:
                    bar.advance(c.end - c.start)
                yield c, out
    finally:
        if bar:
            bar.close()


class _Call:
    """Picklable wrapper keeping the chunk's identity across the pool."""

    def __init__(self, fn: Callable[[Chunk], Any]):
        self.fn = fn

    def __call__(self, item: tuple[int, Chunk]) -> tuple[int, Any]:
        return item[0], self.fn(item[1])


class _Progress:
    def __init__(self, total: int, label: str):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        self.p = Progress(
            TextColumn(label),
            BarColumn(),
            TaskProgressColumn(),
            TimeRemainingColumn(),
            transient=True,
            console=Console(stderr=True),
        )  # stdout carries the report
        self.p.start()
        self.task = self.p.add_task(label, total=total)

    def advance(self, n: int) -> None:
        self.p.advance(self.task, n)

    def close(self) -> None:
        self.p.stop()
