"""Image sizes and video frame counts for stats, read from file headers through ``media.py`` and cached.

Each process remembers every path it has looked up during a run (a path is read once however often records
reference it). Across runs, an on-disk cache (one JSON file) keyed by the resolved path and validated by the
file's size and mtime avoids re-reading headers: a changed file is read again. Workers return their new
entries; the parent merges them into the file and writes it atomically (:func:`save`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

CACHE_NAME = "stats-media-v1.json"
MAX_MEMO = 500_000  # paths remembered per process
Info = tuple[int, ...]  # image: (width, height); video: (frames, fps * 1000)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ivl-kit"


def load(cache_dir: Path | None) -> dict[str, list[int]]:
    """The on-disk cache (path -> [size, mtime_ns, *info]); empty when absent or unreadable."""
    if cache_dir is None:
        return {}
    try:
        data = orjson.loads((cache_dir / CACHE_NAME).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def save(cache_dir: Path | None, new: dict[str, list[int]]) -> None:
    """Merge ``new`` into the on-disk cache and write it atomically (temp file, then rename)."""
    if cache_dir is None or not new:
        return
    entries = load(cache_dir)
    entries.update(new)
    from internvl_data.fsio import write_atomic

    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(cache_dir / CACHE_NAME, orjson.dumps(entries))
    except OSError:
        pass  # a cache that cannot be written only costs time on the next run


class MediaSizes:
    """Per-process lookups: run memo first, then the disk cache (if size and mtime match), then the header.

    With ``record_new`` (stats) every header read is kept for the disk cache until :meth:`take_new`; callers
    that never save the cache (validate, lengths) pass ``record_new=False`` so that nothing accumulates.
    """

    def __init__(self, disk: dict[str, list[int]], record_new: bool = True):
        self.disk = disk
        self.record_new = record_new
        self.memo: dict[str, Info | None] = {}
        self.new: dict[str, list[int]] = {}

    def image(self, path: str) -> Info | None:
        """(width, height) from the image header, or None when the file cannot be read."""
        return self._lookup(path, _read_image)

    def video(self, path: str) -> Info | None:
        """(frames, fps * 1000) of the video, or None when it cannot be read."""
        return self._lookup(path, _read_video)

    def _lookup(self, path: str, reader: Any) -> Info | None:
        try:
            return self.memo[path]
        except KeyError:
            pass
        if len(self.memo) >= MAX_MEMO:  # bounded memory; the disk cache still answers without reading headers
            self.memo.clear()
        info: Info | None = None
        try:
            st = os.stat(path)
        except OSError:
            self.memo[path] = None
            return None
        cached = self.disk.get(path)
        if cached is not None and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
            info = tuple(cached[2:])
        else:
            info = reader(path)
            if info is not None and self.record_new:
                self.new[path] = [st.st_size, st.st_mtime_ns, *info]
        self.memo[path] = info
        return info

    def take_new(self) -> dict[str, list[int]]:
        new, self.new = self.new, {}
        return new


def _read_image(path: str) -> Info | None:
    from internvl_data.media import probe as media

    try:
        info = media.image_header(path)
    except Exception:  # unreadable media is counted by stats and reported by validate
        return None
    if info is None:
        return None
    return (int(info.width), int(info.height))


def _read_video(path: str) -> Info | None:
    from internvl_data.media import probe as media

    try:
        info = media.video_info(path)
    except Exception:
        return None
    if info is None:
        return None
    return (int(info.frames), int(round(float(info.fps) * 1000)))
