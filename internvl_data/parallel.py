"""The one process pool and progress bar of the package, used by ``validate`` (4 MiB blocks), ``stats`` and
``lengths`` (newline-aligned chunks).

:func:`run_pool` runs ``fn`` over work items in-process (one job or one item) or in a process pool. With the
fork start method the parent runs ``init`` once before the pool starts and the workers inherit its state (one
tokenizer load instead of one per worker); with spawn, ``init`` is each worker's initializer. The progress bar
(:class:`ProgressBar`, stderr only: stdout carries the report) starts after the workers exist, so that no rich
refresh thread is running when the pool forks. :func:`show_progress` is the one rule for drawing it.

Stdlib only at import time (rich is imported when a bar is drawn): ``validate`` imports this module.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")
PAUSE_ENV = "IVL_TEST_PAUSE_BEFORE_READ"  # tests: "DATASET@OFFSET:FLAG", see :func:`pause_before_reading`
_PAUSE_AT = os.environ.get(PAUSE_ENV, "").partition(":")  # read once: a block or chunk costs one comparison


def pause_before_reading(dataset: str, offset: int) -> None:
    """Tests only: with ``$IVL_TEST_PAUSE_BEFORE_READ`` set to ``DATASET@OFFSET:FLAG``, the worker about to read the
    piece of ``dataset``'s annotation file that starts at byte ``offset`` (validate's block, a stats or lengths
    chunk) creates the file FLAG and waits until the test writes something into it (or removes it; at most 120 s),
    so that a test can change the file at that moment. Only the first reader pauses: FLAG exists afterwards.
    The variable is read when this module is imported (the process's environment, which the workers inherit)."""
    where, _, flag = _PAUSE_AT
    if not where or where != f"{dataset}@{offset}":
        return
    import time

    try:
        os.close(os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except OSError:
        return
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if os.path.getsize(flag):
                return
        except OSError:
            return
        time.sleep(0.02)


def show_progress(requested: bool | None) -> bool:
    """Whether to draw a progress bar (validate, stats, lengths): as asked, else only on a terminal outside CI."""
    if requested is not None:
        return requested
    return sys.stderr.isatty() and not os.environ.get("CI")


def eta_seconds(elapsed: float | None, completed: float, total: float | None) -> float | None:
    """Time remaining at the run's average rate so far (None before the first progress). Work arrives in bursts
    (a finished chunk, a whole file), so rich's default, the rate over the last 30 s, swings widely (1 min ->
    21 min -> 2 min); the whole-run average moves smoothly."""
    if not elapsed or not completed or not total:
        return None
    return max(0.0, elapsed * (total - completed) / completed)


class ProgressBar:
    """A transient rich progress bar on stderr: ``label``, bar, percentage, time remaining (:func:`eta_seconds`)."""

    def __init__(self, label: str, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, ProgressColumn, TaskProgressColumn, TextColumn
        from rich.text import Text

        class Remaining(ProgressColumn):
            def render(self, task):
                left = eta_seconds(task.elapsed, task.completed, task.total)
                if left is None:
                    return Text("-:--:--", style="progress.remaining")
                minutes, seconds = divmod(int(left + 0.5), 60)
                hours, minutes = divmod(minutes, 60)
                return Text(f"{hours}:{minutes:02d}:{seconds:02d}", style="progress.remaining")

        self.progress = Progress(
            TextColumn(label),
            BarColumn(),
            TaskProgressColumn(),
            Remaining(),
            transient=True,
            console=Console(stderr=True),
        )
        self.task = self.progress.add_task(label, total=total)
        self.progress.start()

    @property
    def total(self) -> float | None:
        return self.progress.tasks[0].total

    def advance(self, n: int = 1) -> None:
        self.progress.advance(self.task, n)

    def close(self) -> None:
        self.progress.stop()


def run_pool(
    fn: Callable[[T], R],
    items: Sequence[T],
    init: Callable[..., None],
    init_args: tuple = (),
    *,
    jobs: int,
    ordered: bool = True,
    progress: bool = False,
    label: str = "",
    weight: Callable[[T], int] | None = None,
) -> Generator[tuple[T, R], None, None]:
    """Yield ``(item, fn(item))``: in item order when ``ordered``, else as they complete.

    In this process when ``jobs`` is 1 or there is at most one item, else in ``min(jobs, len(items))`` worker
    processes. ``progress`` draws a bar advanced by ``weight(item)`` (default 1) per finished item. Closing the
    generator early terminates the workers.
    """
    total = sum(map(weight, items)) if weight else len(items)
    bar: ProgressBar | None = None
    try:
        if jobs <= 1 or len(items) <= 1:
            init(*init_args)
            bar = ProgressBar(label, total) if progress else None
            for item in items:
                out = fn(item)
                if bar:
                    bar.advance(weight(item) if weight else 1)
                yield item, out
            return
        fork = "fork" in mp.get_all_start_methods()
        if fork:
            init(*init_args)
        ctx = mp.get_context("fork" if fork else "spawn")
        # leaving the `with` (normally, on an error, Ctrl-C or SIGTERM) terminates the workers before the caller's
        # own clean-up runs: nothing is left running or writing
        with _default_signals():  # forked workers must not inherit the parent's Python SIGTERM handler
            pool = ctx.Pool(
                min(jobs, len(items)),
                initializer=_worker_start,
                initargs=(os.getpid(), None, ()) if fork else (os.getpid(), init, init_args),
            )
        with pool:
            bar = ProgressBar(label, total) if progress else None
            mapper = pool.imap if ordered else pool.imap_unordered
            for i, out in mapper(_Indexed(fn), enumerate(items)):
                item = items[i]
                if bar:
                    bar.advance(weight(item) if weight else 1)
                yield item, out
    finally:
        if bar:
            bar.close()


@contextmanager
def _default_signals() -> Iterator[None]:
    """SIGTERM at its default action while the pool forks: a worker stuck before its initializer (or anywhere) still
    dies on ``Pool.terminate`` instead of running a handler that raises in a thread that never wakes."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _worker_start(parent: int, init: Callable[..., None] | None, init_args: tuple) -> None:
    """In each worker: Ctrl-C is the parent's to handle (the terminal sends SIGINT to the whole group, so workers
    would print tracebacks); SIGTERM (what ``Pool.terminate`` sends) ends the worker at once; and on Linux the
    worker gets SIGTERM when the parent dies, even by SIGKILL, instead of running on orphaned."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
            if os.getppid() != parent:  # the parent died before prctl: go now
                os._exit(1)
        except (OSError, AttributeError):
            pass
    if init is not None:
        init(*init_args)


class _Indexed:
    """Picklable wrapper keeping the item's position across the pool."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, pair: tuple[int, Any]) -> tuple[int, Any]:
        return pair[0], self.fn(pair[1])
