"""Opening media files for validation: path resolution, image headers, bounded decoding, video facts.

This is the only module that opens images and videos for validation. Every helper either returns facts
(:class:`ImageInfo`, :class:`VideoInfo`) or raises :class:`MediaError` with a ``kind`` the checks map to a
rule code; nothing here prints, caches or knows about findings.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from internvl_data.errors import DataError

VIDEO_EXTRA = "pip install 'ivl-kit[video]'"
# The one pixel limit (docs/decisions.md): validate's --max-pixels default, and what render, stats and lengths refuse
# to decode (IVL307). Pillow's own default MAX_IMAGE_PIXELS, above which it warns (and at twice which it raises).
MAX_PIXELS = 89_478_485
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_ORIENTATION_TAG = 0x0112


class MediaError(DataError):
    """A media file that cannot be used as the official loader would use it.

    ``kind``: ``missing``, ``unreadable``, ``truncated``, ``too-large``, ``video`` (not decodable) or
    ``no-decoder`` (decord is not installed). ``str(err)`` says what is wrong, without the path.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the file header says (``transparent``: an alpha channel or a transparency key; after a full
    decode, only when some pixel is actually not opaque). ``exif_orientation`` is 1 when absent."""

    width: int
    height: int
    format: str
    mode: str
    exif_orientation: int = 1
    transparent: bool = False

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """Frame count, average fps and duration in seconds (fps and duration are 0 for frame folders)."""

    frames: int
    fps: float
    duration: float


def resolve(root: str, rel: str, allow_outside_root: bool = False) -> tuple[str, str | None]:
    """Join ``rel`` to ``root`` as the official loader does and say what is wrong with the result.

    Returns ``(path, problem)`` with ``problem`` one of ``None``, ``"s3"`` (not checkable), ``"absolute"``
    (``rel`` is absolute and overrides ``root``: a warning) or ``"escape"`` (``..``, an absolute path or a
    symlink that resolves outside ``root``; reported only when ``allow_outside_root`` is false).
    """
    if rel.startswith("s3://"):
        return root + rel, "s3"  # the loader concatenates for s3 paths
    path = os.path.join(root, rel)
    if path.startswith("s3://"):
        return path, "s3"
    if not allow_outside_root and not _inside(path, root):
        return path, "escape"
    return path, "absolute" if os.path.isabs(rel) else None


def loader_path(root: str, rel: str) -> str:
    """The path the official loader opens for media path ``rel`` of a dataset with media root ``root``, wherever
    it points (the one place media paths are joined: render, the trainer and stats use it, validate uses
    :func:`resolve` for the containment check)."""
    return resolve(root, rel, allow_outside_root=True)[0]


def _inside(path: str, root: str) -> bool:
    """Whether ``path`` resolves (symlinks and ``..`` followed, as the kernel does) to ``root`` or below it."""
    try:
        real, base = os.path.realpath(path), _realpath(root)
    except (OSError, ValueError):  # e.g. a NUL byte in the path: opening it reports the problem
        return True
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


@functools.lru_cache(maxsize=64)
def _realpath(root: str) -> str:
    return os.path.realpath(root)


def stat_media(path: str, folder: bool = False) -> None:
    """``--media exists``: the file (or, for a frame folder, the directory) is there; raises otherwise."""
    try:
        is_dir = stat.S_ISDIR(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        raise MediaError("missing", "does not exist") from None
    except (OSError, ValueError) as exc:  # ValueError: embedded NUL in the path
        raise MediaError("unreadable", f"cannot be checked: {exc}") from None
    if is_dir != folder:
        raise MediaError("unreadable", "is a directory" if is_dir else "is not a directory")


@contextlib.contextmanager
def _pil_settings() -> Iterator[Any]:
    """Our own pixel bound replaces PIL's global one; truncated files must fail, whatever others set."""
    from PIL import Image, ImageFile

    old = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = None, False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield Image
    finally:
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = old


def _open(image_mod: Any, path: str) -> Any:
    try:
        return image_mod.open(path, formats=_formats(image_mod))
    except FileNotFoundError:
        raise MediaError("missing", "does not exist") from None
    except IsADirectoryError:
        raise MediaError("unreadable", "is a directory") from None
    except image_mod.UnidentifiedImageError:
        if _is_postscript(path):
            why = "is PostScript, which Pillow renders by running Ghostscript: not opened"
            raise MediaError("unreadable", why) from None
        raise MediaError("unreadable", "is not an image Pillow can identify") from None
    except Exception as exc:  # untrusted bytes: Pillow's parsers raise OSError, SyntaxError, struct.error...
        raise MediaError(_kind(exc), f"cannot be opened: {exc}") from None


@functools.lru_cache(maxsize=1)
def _formats(image_mod: Any) -> tuple[str, ...]:
    """Every format Pillow can read except EPS, whose decoder runs an external program (data never runs code)."""
    image_mod.init()
    return tuple(f for f in image_mod.ID if f != "EPS")


def _is_postscript(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) in (b"%!PS", b"\xc5\xd0\xd3\xc6")
    except OSError:
        return False


def _kind(exc: Exception) -> str:
    return "truncated" if "truncated" in str(exc).lower() else "unreadable"


def _info(im: Any, transparent: bool) -> ImageInfo:
    w, h = im.size
    return ImageInfo(w, h, im.format or "", im.mode, _orientation(im), transparent)


def _orientation(im: Any) -> int:
    """EXIF orientation without decoding pixels (PNG's getexif would load the image: use the header chunk)."""
    from PIL import Image

    try:
        raw = im.info.get("exif")
        if raw is None and im.format == "PNG":
            return 1
        exif = im.getexif() if raw is None else Image.Exif()
        if raw is not None:
            exif.load(raw)
        value = exif.get(_ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block is not our finding: the loader ignores EXIF
        return 1
    return value if isinstance(value, int) else 1


def image_header(path: str) -> ImageInfo:
    """Open the header only (size, format, mode, EXIF orientation); never decodes pixel data."""
    with _pil_settings() as image_mod:
        im = _open(image_mod, path)
        with im:
            transparent = im.mode in _ALPHA_MODES or "transparency" in im.info
            return _info(im, transparent)


def decode_image(path: str, max_pixels: int) -> ImageInfo:
    """Decode every pixel, refusing files above ``max_pixels`` before any decoding (decompression bombs)."""
    with _pil_settings() as image_mod:
        im = _open(image_mod, path)
        with im:
            w, h = im.size
            if w * h > max_pixels:
                raise MediaError("too-large", f"is {w}x{h} = {w * h} pixels, over the limit of {max_pixels}")
            try:
                im.load()
            except Exception as exc:  # untrusted bytes, see _open
                raise MediaError(_kind(exc), f"cannot be decoded: {exc}") from None
            return _info(im, _has_transparent_pixels(im))


def _has_transparent_pixels(im: Any) -> bool:
    if im.mode in _ALPHA_MODES:
        return bool(im.getchannel("A").getextrema()[0] < 255)
    if "transparency" in im.info:
        return bool(im.convert("RGBA").getchannel("A").getextrema()[0] < 255)
    return False


def video_info(path: str, decode: bool = False) -> VideoInfo:
    """Frames, fps and duration as the official reader sees them (decord; GIFs and ``dir/`` frame folders
    as the loader reads them). With ``decode``, also decodes up to 16 frames spread evenly from the first to the
    last, so that damage anywhere on the timeline shows without decoding every frame."""
    if path.endswith("/"):
        stat_media(path, folder=True)
        return VideoInfo(len(os.listdir(path)), 0.0, 0.0)
    if path.lower().endswith(".gif"):
        return _gif_info(path)
    stat_media(path)
    decord = _decord()
    try:
        with _native_stderr_silenced():
            reader = decord.VideoReader(path, num_threads=1)
            frames, fps = len(reader), float(reader.get_avg_fps())
            if frames and decode:
                reader.get_batch(sorted({(frames - 1) * k // 15 for k in range(16)})).asnumpy()
    except Exception as exc:  # decord raises its own DECORDError and RuntimeErrors
        why = (str(exc).splitlines() or [type(exc).__name__])[0].replace(path, "the file")[:200]
        raise MediaError("video", f"cannot be decoded by decord: {why}") from None
    if frames <= 0 or fps <= 0:
        raise MediaError("video", f"has no decodable frames (decord reports {frames} frames at {fps} fps)")
    return VideoInfo(frames, fps, frames / fps)


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """decord's C++ side logs every failed open to fd 2 whatever its log level; the finding says it once."""
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (a daemon): nothing to silence
        yield
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _gif_info(path: str) -> VideoInfo:
    with _pil_settings() as image_mod:
        im = _open(image_mod, path)
        with im:
            frames = int(getattr(im, "n_frames", 1))
            ms = im.info.get("duration") or 0
    fps = 1000.0 / ms if ms else 0.0
    return VideoInfo(frames, fps, frames / fps if fps else 0.0)


def _decord() -> Any:
    try:
        import decord
    except ImportError:
        raise MediaError("no-decoder", f"decord is not installed ({VIDEO_EXTRA})") from None
    decord.logging.set_level(decord.logging.QUIET)
    return decord
