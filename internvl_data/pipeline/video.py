"""Video frames (docs/official-behaviour.md §3.9): frame-count choice, frame indices (`rand`, `middle`, `fpsN`), readers.

Readers: a path ending in ``/`` is a folder of frame images, ``.gif`` goes through PIL, anything else through
decord (imported lazily, so the core install does not need it). Randomness always comes from a numpy
Generator passed in by the caller, so a sample is reproducible from (seed, epoch, index).
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

import numpy as np

from internvl_data.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = ["VideoError", "choose_num_frames", "read_frames", "sample_frame_indices"]

_FRAME_NUMBER = re.compile(r"_(\d+).jpg$")  # the official pattern, unescaped dot included


class VideoError(DataError, ValueError):
    """A video that cannot give the requested frames (empty, unreadable, clip outside the video)."""


def choose_num_frames(min_num_frame: int, max_num_frame: int, rng: np.random.Generator | None = None) -> int:
    """Frames for one sample: uniform in ``[min_num_frame, max_num_frame]`` (official ``np.random.randint``)."""
    if min_num_frame > max_num_frame:
        raise ValueError(f"min_num_frame {min_num_frame} > max_num_frame {max_num_frame}")
    return int((rng or np.random.default_rng()).integers(min_num_frame, max_num_frame + 1))


def sample_frame_indices(
    num_frames: int,
    vlen: int,
    method: str,
    fps: float | None = None,
    max_num_frames: int = -1,
    rng: np.random.Generator | None = None,
) -> list[int]:
    """Frame indices as the official ``get_frame_indices`` picks them.

    ``rand``/``middle``: ``min(num_frames, vlen)`` equal intervals ``[lo, hi]`` from ``linspace(0, vlen)``;
    ``middle`` takes ``(lo + hi) // 2``; ``rand`` takes one of ``lo .. hi - 1`` per interval and, when any
    interval is empty, a sorted random subset of all frames instead. A video shorter than ``num_frames`` is
    padded by repeating its last index. ``fpsN``: frames at times ``delta/2, 3*delta/2, ...`` with
    ``delta = 1/N``, rounded half-to-even, kept below ``vlen``, at most ``max_num_frames`` when > 0.
    """
    if vlen <= 0:
        raise VideoError("the video has no frames")
    if method in ("rand", "middle"):
        acc = min(num_frames, vlen)
        edges = np.linspace(start=0, stop=vlen, num=acc + 1).astype(int)
        ranges = [(int(edges[k]), int(edges[k + 1]) - 1) for k in range(acc)]
        if method == "middle":
            indices = [(lo + hi) // 2 for lo, hi in ranges]
        else:
            rng = rng or np.random.default_rng()
            if all(hi > lo for lo, hi in ranges):
                indices = [int(rng.integers(lo, hi)) for lo, hi in ranges]
            else:
                indices = sorted(int(i) for i in rng.permutation(vlen)[:acc])
        if len(indices) < num_frames:
            indices += [indices[-1]] * (num_frames - len(indices))
        return indices
    if method.startswith("fps"):
        try:
            output_fps = float(method[3:])
        except ValueError:
            raise ValueError(f"bad sampling method {method!r}: expected fpsN with a number N, e.g. fps1") from None
        if fps is None or fps <= 0 or output_fps <= 0:
            raise ValueError(f"{method} needs a positive video fps and N (got fps={fps})")
        delta = 1 / output_fps
        times = np.arange(0 + delta / 2, vlen / float(fps) + delta / 2, delta)
        indices = [int(i) for i in np.around(times * fps).astype(int) if i < vlen]
        if max_num_frames > 0:
            indices = indices[:max_num_frames]
        return indices
    raise ValueError(f"unknown sampling method {method!r}: expected rand, middle or fpsN")


def read_frames(
    path: str,
    num_frames: int,
    method: str,
    clip: tuple[float, float] | None = None,
    rng: np.random.Generator | None = None,
) -> list[Image.Image]:
    """Read ``num_frames`` sampled frames of a video (decord), a GIF or a frame folder as RGB PIL images.

    ``clip=(start, end)`` in seconds restricts sampling to that window (decord only): ``vlen = int((end -
    start) * fps)`` frames starting at ``int(start * fps)``, as the official reader does. A frame folder with
    at most ``num_frames`` frames is returned whole (official behaviour: no sampling, no padding).
    """
    if path.endswith("/"):
        return _read_folder(path, num_frames, method, rng)
    if path.lower().endswith(".gif"):
        return _read_gif(path, num_frames, method, rng)
    return _read_decord(path, num_frames, method, clip, rng)


def _read_decord(
    path: str, num_frames: int, method: str, clip: tuple[float, float] | None, rng: np.random.Generator | None
) -> list[Image.Image]:
    from PIL import Image

    try:
        from decord import VideoReader
    except ImportError:
        raise VideoError("reading videos needs decord: pip install 'ivl-kit[video]'") from None
    try:
        reader = VideoReader(path, num_threads=1)
    except Exception as exc:  # decord raises its own DECORDError for unreadable files
        raise VideoError(f"{path}: cannot open video: {exc}") from None
    total, fps = len(reader), float(reader.get_avg_fps())
    vlen, start_index = total, 0
    if clip:
        if len(clip) != 2 or not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in clip):
            raise VideoError(f"{path}: clip must be [start, end] in seconds, got {list(clip)!r}")
        start, end = clip
        vlen, start_index = int((end - start) * fps), int(start * fps)
        if start < 0 or vlen <= 0 or start_index + vlen > total:
            raise VideoError(
                f"{path}: clip {list(clip)} is outside the video ({total} frames at {fps:g} fps = {total / fps:.3f}s)"
            )
    indices = [i + start_index for i in sample_frame_indices(num_frames, vlen, method, fps=fps, rng=rng)]
    frames = reader.get_batch(indices).asnumpy()
    return [Image.fromarray(frame) for frame in frames]


def _read_gif(path: str, num_frames: int, method: str, rng: np.random.Generator | None) -> list[Image.Image]:
    """GIF frames whose index is sampled, each once, in order (the official reader tests ``index in list``)."""
    from PIL import Image, ImageSequence

    with Image.open(path) as gif:
        vlen = getattr(gif, "n_frames", 1)
        wanted = set(sample_frame_indices(num_frames, vlen, method, fps=1.0, rng=rng))  # official input_fps=1
        return [frame.convert("RGB") for k, frame in enumerate(ImageSequence.Iterator(gif)) if k in wanted]


def _frame_key(name: str) -> int:
    match = _FRAME_NUMBER.search(name)
    return int(match.group(1)) if match else -1


def _read_folder(path: str, num_frames: int, method: str, rng: np.random.Generator | None) -> list[Image.Image]:
    from internvl_data.pipeline.transforms import load_rgb

    names = sorted(sorted(os.listdir(path)), key=_frame_key)  # name order breaks ties deterministically
    if not names:
        raise VideoError(f"{path}: the frame folder is empty")
    if len(names) > num_frames:
        names = [names[i] for i in sample_frame_indices(num_frames, len(names), method, fps=1.0, rng=rng)]
    return [load_rgb(os.path.join(path, name)) for name in names]
