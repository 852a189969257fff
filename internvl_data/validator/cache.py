"""Content hashes and the `--cache DIR` result store.

Layout under DIR: ``stat/<path hash>.json`` maps a file's (size, mtime_ns, inode) to its content hash, like git's
index (plus ctime), so an unchanged file is not even re-read; ``results/<key>.json`` holds one annotation file's outcome
under key = hash(content hash, dataset entry, options that affect findings, tool version). Results that depend
on media files carry the stat of every referenced media file and are rejected when one of them changed.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import orjson

from internvl_data.fsio import write_atomic  # the one atomic writer (also imported from here elsewhere)

try:  # xxh3 is ~25x faster than blake2b here; blake2b keeps the tool working without the wheel
    from xxhash import xxh3_128_digest as _digest

    HASH_NAME = "xxh3_128-tree4M"
except ImportError:  # pragma: no cover - depends on the environment
    HASH_NAME = "blake2b128-tree4M"

    def _digest(data: bytes | memoryview, seed: int = 0) -> bytes:  # type: ignore[misc]
        return hashlib.blake2b(data, digest_size=16).digest()


BLOCK = 4 << 20  # content-hash block, also the engine's unit of parallel work
_RACY_NS = 2_000_000_000  # a file modified this close to when its stat was recorded is always re-hashed


def block_digest(data: bytes | memoryview) -> bytes:
    """Digest of one :data:`BLOCK`-sized piece of a file (the last piece may be shorter)."""
    return _digest(data)


def combine(digests: list[bytes]) -> str:
    """The content hash from the block digests in file order: ``"<algorithm>:<hex>"``."""
    return f"{HASH_NAME}:{_digest(b''.join(digests)).hex()}"


def content_hash(path: str | os.PathLike) -> str:
    """Content hash of a file: the digest of its 4 MiB block digests, so workers can hash blocks in parallel."""
    digests: list[bytes] = []
    with open(path, "rb") as fh:
        while True:  # an empty file is one empty block, as the engine sees it
            block = fh.read(BLOCK)
            if block or not digests:
                digests.append(block_digest(block))
            if len(block) < BLOCK:
                return combine(digests)


def stat_signature(path: str) -> list[int] | None:
    """(size, mtime_ns, inode, ctime_ns) of a file, or None when it cannot be stat-ed.

    ctime cannot be set back by ``touch -d``/``os.utime``, so an in-place rewrite that keeps size and mtime
    still changes the signature (git's index compares it too).
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def key_of(*parts: object) -> str:
    """A stable hex key for JSON-serialisable parts."""
    return hashlib.blake2b(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS), digest_size=20).hexdigest()


class Cache:
    """The result store of one cache folder (created on first use)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        (self.root / "stat").mkdir(parents=True, exist_ok=True)
        (self.root / "results").mkdir(exist_ok=True)

    def file_hash(self, path: str) -> str:
        """Content hash of ``path``, read from the stat index when the file is unchanged and not racily new."""
        real = os.path.realpath(path)
        index = self.root / "stat" / f"{key_of(real)}.json"
        sig = stat_signature(real)
        rec = self._read(index)
        fresh = sig and rec.get("stat") == sig and rec.get("algorithm") == HASH_NAME
        if sig and fresh and sig[1] + _RACY_NS < rec.get("recorded_ns", 0) and isinstance(rec.get("hash"), str):
            return rec["hash"]
        digest = content_hash(real)
        if sig is not None:
            self._write(index, {"stat": sig, "algorithm": HASH_NAME, "hash": digest, "recorded_ns": time.time_ns()})
        return digest

    def load(self, key: str) -> dict | None:
        """A stored result, unless a media file it depends on changed since."""
        rec = self._read(self.root / "results" / f"{key}.json")
        try:
            if not rec or any(stat_signature(path) != sig for path, sig in rec.get("media_stats", ())):
                return None
        except (TypeError, ValueError):  # a damaged entry
            return None
        return rec

    def store(self, key: str, payload: dict) -> None:
        self._write(self.root / "results" / f"{key}.json", payload)

    @staticmethod
    def _read(path: Path) -> dict:
        try:
            rec = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return {}  # absent or damaged: recompute
        return rec if isinstance(rec, dict) else {}

    @staticmethod
    def _write(path: Path, payload: dict) -> None:
        try:
            write_atomic(path, orjson.dumps(payload))
        except OSError:
            pass  # a read-only or full cache folder only costs speed
