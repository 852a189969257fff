"""Per-tile transform (docs/official-behaviour.md §3.5): RGB, optional seeded JPEG re-encoding, bicubic resize, normalisation.

Outputs are float32 numpy arrays bit-identical to the official torchvision chain
``Resize(BICUBIC) -> ToTensor -> Normalize``: the same float32 operations in the same order
(``x / 255``, ``- mean``, ``/ std``), done in place over all tiles of an image at once.
"""

from __future__ import annotations

import functools
import io
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from internvl_data.pipeline.tiling import grid

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = [
    "JPEG_QUALITIES",
    "NORMALIZE",
    "TileTransform",
    "load_rgb",
    "map_threads",
    "retain_freed_memory",
    "set_num_threads",
]

T = TypeVar("T")
R = TypeVar("R")

NORMALIZE: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "clip": ((0.4814546, 0.4578275, 0.40821073), (0.2686295, 0.2613025, 0.2757711)),
    "siglip": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}
JPEG_QUALITIES = range(75, 101)  # the official augmentation draws one of these per tile
DUMMY_SIZE = 224  # the white image the official code tiles for pure-text samples (§3.10)

_threads = 1
_PREFIX = "ivl-tiles"
_pool: tuple[int, ThreadPoolExecutor] | None = None  # (pid, pool): a forked DataLoader worker makes its own
_local = threading.local()  # .mapping: this thread is running map_threads items (no nested helper work)


def set_num_threads(n: int) -> None:
    """Threads ``TileTransform.image`` may use (like ``torch.set_num_threads``); default 1.

    With 2 or more, an image's thumbnail is resized and normalised on a helper thread while the grid canvas
    is resized on the calling one (PIL and numpy release the GIL there). Values are the same either way.
    """
    global _threads
    _threads = max(1, int(n))


def _helper() -> ThreadPoolExecutor | None:
    """The per-process helper pool, or None with 1 thread or when called on a helper (no nested waits)."""
    global _pool
    if _threads < 2 or threading.current_thread().name.startswith(_PREFIX) or getattr(_local, "mapping", False):
        return None
    if _pool is None or _pool[0] != os.getpid():
        _pool = (os.getpid(), ThreadPoolExecutor(max_workers=_threads - 1, thread_name_prefix=_PREFIX))
    return _pool[1]


def retain_freed_memory() -> bool:
    """Keep freed memory in the process for reuse (glibc ``mallopt``); True when it took effect.

    Every sample allocates tens of MB (canvas, tiles) and glibc hands blocks that large back to the kernel on
    free, so the next sample page-faults them in again: about 10 % of a multi-image sample's time. For data
    loading processes (DataLoader workers, benchmarks) it is better to keep the memory, at the cost of RSS
    staying at its high-water mark. A no-op on other C libraries.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 1 << 30)) and bool(mallopt(m_trim_threshold, (1 << 31) - 1))


def map_threads(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[fn(x) for x in items]``, spread over the ``set_num_threads`` threads (e.g. decoding a record's images).

    The calling thread and the helpers take the next item whenever they are free. Results come back in order;
    if calls fail, the exception of the first failing item (in item order) is raised, as the loop would.
    """
    if _helper() is None or len(items) < 2:
        return [fn(x) for x in items]
    results: list[Any] = [None] * len(items)

    def item(k: int) -> list:
        results[k] = fn(items[k])
        return []

    errors = _run_tasks([(k, functools.partial(item, k)) for k in range(len(items))])
    if errors:
        raise errors[min(errors)]
    return results


def _run_tasks(first: list[tuple[int, Callable[[], list]]]) -> dict[int, Exception]:
    """Run ``(key, task)`` pairs, where a task returns follow-up tasks of the same key, on the helper threads.

    Follow-ups go to the front of the queue (finish what is loaded before loading more). Returns the first
    exception per key; the other tasks of a failed key are not run.
    """
    from collections import deque

    queue: deque = deque(first)
    errors: dict[int, Exception] = {}
    helper = _helper()
    if helper is None or len(first) == 0:
        while queue:
            key, task = queue.popleft()
            if key in errors:
                continue
            try:
                queue.extendleft((key, t) for t in reversed(task()))
            except Exception as exc:  # re-raised by the caller in key order
                errors[key] = exc
        return errors
    cond = threading.Condition()
    running = 0

    def work() -> None:
        nonlocal running
        while True:
            with cond:
                while not queue and running:
                    cond.wait()
                if not queue:
                    return
                key, task = queue.popleft()
                running += 1
            follow: list = []
            if key not in errors:
                try:
                    follow = task()
                except Exception as exc:
                    errors.setdefault(key, exc)
            with cond:
                queue.extendleft((key, t) for t in reversed(follow))
                running -= 1
                cond.notify_all()

    jobs = [helper.submit(work) for _ in range(_threads - 1)]
    _local.mapping = True
    try:
        work()
    finally:
        _local.mapping = False
    for job in jobs:
        job.result()
    return errors


def load_rgb(path: str, max_pixels: int | None = None) -> Image.Image:
    """Open an image as the official loader does (``Image.open(path).convert('RGB')``), decoded once.

    An image that is already RGB is loaded in place instead of copied: same pixels, one copy less. One over
    ``max_pixels`` raises ``DecompressionBombError`` from its header, before anything is decoded.
    """
    from PIL import Image

    with Image.open(path) as img:  # closes the file even when decoding fails
        if max_pixels is not None and img.size[0] * img.size[1] > max_pixels:
            raise Image.DecompressionBombError(f"{img.size[0] * img.size[1]:,} pixels")
        if img.mode != "RGB":
            return img.convert("RGB")
        img.load()
        return img


def _jpeg_roundtrip(img: Image.Image, quality: int) -> Image.Image:
    """Save as JPEG at ``quality`` in memory and decode again (the official ``jpeg_degrade``)."""
    from PIL import Image

    with io.BytesIO() as buf:
        img.save(buf, format="JPEG", quality=quality)  # _prepare passes RGB tiles only
        buf.seek(0)
        return Image.open(buf).copy()


class TileTransform:
    """Tile -> float32 ``(3, S, S)`` array; ``image`` / ``stack`` give ``(T, 3, S, S)`` for many tiles.

    With ``augment`` every tile is JPEG re-encoded at a quality drawn from 75..100 by a numpy Generator:
    the one passed to the call, else the transform's own (seeded by ``seed``).
    """

    def __init__(self, tile: int, normalize: str = "imagenet", augment: bool = False, seed: int | None = None):
        if normalize not in NORMALIZE:
            raise ValueError(f"unknown normalize {normalize!r}; expected one of {sorted(NORMALIZE)}")
        self.tile = tile
        self.augment = augment
        self._rng = np.random.default_rng(seed)
        mean, std = NORMALIZE[normalize]
        self._mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        self._std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
        self._dummy: np.ndarray | None = None

    # -- public API -------------------------------------------------------------------------------------

    def __call__(self, pil_tile: Image.Image, rng: np.random.Generator | None = None) -> np.ndarray:
        """One tile as float32 ``(3, S, S)``."""
        return self.stack([pil_tile], rng)[0]

    def stack(self, tiles: list[Image.Image], rng: np.random.Generator | None = None) -> np.ndarray:
        """Transform tiles (e.g. ``dynamic_preprocess`` output or video frames) into ``(T, 3, S, S)``."""
        out = np.empty((len(tiles), 3, self.tile, self.tile), dtype=np.float32)
        for k, tile in enumerate(tiles):
            np.copyto(out[k], self._prepare(tile, rng).transpose(2, 0, 1), casting="unsafe")
        return self._normalize(out)

    def image(
        self,
        img: Image.Image,
        min_num: int,
        max_num: int,
        use_thumbnail: bool,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """``stack(dynamic_preprocess(img, ...))`` without cropping PIL tiles: same values, fewer copies.

        The grid canvas is resized once and its tiles are read as strided views straight into the output;
        the thumbnail runs on a helper thread when ``set_num_threads(n >= 2)``. With augmentation each tile
        must go through JPEG on its own, so that path uses ``stack``.
        """
        from internvl_data.pipeline.tiling import dynamic_preprocess

        if self.augment:
            return self.stack(dynamic_preprocess(img, min_num, max_num, self.tile, use_thumbnail), rng)
        return self.images([lambda: img], min_num, [max_num], use_thumbnail)[0][0]

    def images(
        self, loaders: Sequence[Callable[[], Image.Image]], min_num: int, budgets: Sequence[int], use_thumbnail: bool
    ) -> list[tuple[np.ndarray, tuple[int, int], tuple[int, int, bool]]]:
        """Load and tile several images: ``[(tiles, (width, height), (cols, rows, thumbnail))]`` in image order.

        Each image is three tasks: load (``loaders[k]()``, e.g. decode a file), resize the grid canvas into its
        tiles, resize the thumbnail. With ``set_num_threads(n >= 2)`` whichever thread is free takes the next
        task, the tasks of an image already loaded first; values do not depend on the schedule. Without
        augmentation only (augmented tiles draw from one RNG in order: use ``stack``). If images fail, the
        exception of the first failing image (in image order) is raised.
        """
        results: list[Any] = [None] * len(loaders)

        def load(k: int) -> list[Callable[[], list]]:
            img = loaders[k]()
            s = self.tile
            cols, rows, thumb = grid(img.width, img.height, min_num, budgets[k], s, use_thumbnail)
            n = cols * rows
            out = np.empty((n + thumb, 3, s, s), dtype=np.float32)
            results[k] = (out, img.size, (cols, rows, thumb))
            tasks = [lambda: self._canvas_into(img, out[:n], cols, rows)]  # the longer task first
            if thumb:
                tasks.append(lambda: self._thumbnail_into(img, out[n:]))
            return tasks

        errors = _run_tasks([(k, functools.partial(load, k)) for k in range(len(loaders))])
        if errors:
            raise errors[min(errors)]
        return results

    def _canvas_into(self, img: Image.Image, out: np.ndarray, cols: int, rows: int) -> list:
        """The image resized to the ``cols x rows`` grid canvas, its tiles normalised into ``out`` (row-major)."""
        from PIL import Image

        s = self.tile
        canvas = _rgb_array(img.resize((s * cols, s * rows), Image.Resampling.BICUBIC))
        grid = canvas.reshape(rows, s, cols, s, 3).transpose(0, 2, 4, 1, 3)
        np.copyto(out.reshape(rows, cols, 3, s, s), grid, casting="unsafe")
        self._normalize(out)
        return []

    def _thumbnail_into(self, img: Image.Image, out: np.ndarray) -> list:
        """Whole image resized to one tile, normalised into ``out`` of shape ``(1, 3, S, S)``."""
        from PIL import Image

        small = _rgb_array(img.resize((self.tile, self.tile), Image.Resampling.BICUBIC))
        np.copyto(out[0], small.transpose(2, 0, 1), casting="unsafe")
        self._normalize(out)
        return []

    def dummy(self) -> np.ndarray:
        """The pure-text sample's tile (white 224x224 image -> one tile), ``(1, 3, S, S)``, read-only, cached.

        Computed without augmentation: JPEG re-encoding leaves a uniform white image unchanged.
        """
        if self._dummy is None:
            from PIL import Image

            white = Image.new("RGB", (DUMMY_SIZE, DUMMY_SIZE), (255, 255, 255))
            out = np.empty((1, 3, self.tile, self.tile), dtype=np.float32)
            resized = white.resize((self.tile, self.tile), Image.Resampling.BICUBIC)
            np.copyto(out[0], _rgb_array(resized).transpose(2, 0, 1), casting="unsafe")
            self._dummy = self._normalize(out)
            self._dummy.flags.writeable = False
        return self._dummy

    # -- internals ---------------------------------------------------------------------------------------

    def _prepare(self, tile: Image.Image, rng: np.random.Generator | None) -> np.ndarray:
        """RGB, optional JPEG re-encoding, resize to SxS: the tile as an ``(S, S, 3)`` uint8 array."""
        from PIL import Image

        if tile.mode != "RGB":
            tile = tile.convert("RGB")
        if self.augment:
            quality = int((rng or self._rng).integers(JPEG_QUALITIES.start, JPEG_QUALITIES.stop))
            tile = _jpeg_roundtrip(tile, quality)
        if tile.size != (self.tile, self.tile):
            tile = tile.resize((self.tile, self.tile), Image.Resampling.BICUBIC)
        return _rgb_array(tile)

    def _normalize(self, out: np.ndarray) -> np.ndarray:
        """In place on float32 ``(T, 3, S, S)`` holding 0..255: ``(x / 255 - mean) / std`` in float32."""
        out /= np.float32(255)
        out -= self._mean
        out /= self._std
        return out


def _rgb_array(img: Image.Image) -> np.ndarray:
    """``(H, W, 3)`` uint8 view of an RGB image."""
    return np.asarray(img, dtype=np.uint8)
