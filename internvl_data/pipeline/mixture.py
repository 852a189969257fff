"""Map-style mixture of the meta file's datasets (docs/official-behaviour.md §2.2, §2.4): what the official ConcatDataset sees.

Datasets come in meta order; each one's line list is cut or repeated by ``repeat_time`` exactly as the
official loader does. A global index maps to (dataset, line number, byte offset); records are read by byte
offset from a compact per-file offsets index built in one streaming pass (no line is kept in memory).
"""

from __future__ import annotations

import hashlib
import io
import os
from typing import Any

import numpy as np
import orjson

from internvl_data.checks.findings import Severity
from internvl_data.errors import IvlDataError
from internvl_data.formats.lines import line_offsets
from internvl_data.formats.meta import MetaEntry, load_meta
from internvl_data.fsio import write_atomic

__all__ = ["Mixture", "MixtureError", "kept_lines", "line_offsets"]


class MixtureError(IvlDataError, ValueError):
    """The mixture cannot be built or a record cannot be read (message names file, line and fix)."""


def kept_lines(n_lines: int, repeat_time: float) -> tuple[int, int]:
    """``(lines kept, repeats)`` for a ``repeat_time`` that passed the meta checks (IVL109: a number above 0,
    an integer above 1), as the official loader does: below 1 the first ``int(n * r)`` lines once, else all
    lines ``int(r)`` times."""
    if repeat_time < 1:
        return int(n_lines * repeat_time), 1
    return n_lines, int(repeat_time)


def _cached_offsets(path: str, cache_dir: str | None) -> np.ndarray:
    """``line_offsets`` memoised on disk under ``cache_dir`` by (absolute path, size, mtime)."""
    if cache_dir is None:
        return line_offsets(path)
    st = os.stat(path)
    key = hashlib.sha256(f"{os.path.abspath(path)}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:32]
    cached = os.path.join(cache_dir, f"offsets-{key}.npy")
    try:
        return np.load(cached, allow_pickle=False)
    except (OSError, ValueError):
        pass
    offsets = line_offsets(path)
    os.makedirs(cache_dir, exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, offsets, allow_pickle=False)
    write_atomic(cached, buf.getvalue())
    return offsets


class Mixture:
    """Global index -> record over all datasets of a meta file, in meta order, after ``repeat_time``.

    ``Mixture(meta_path)`` or ``Mixture(entries)`` (a list of ``meta.MetaEntry``). ``seed`` feeds
    ``rng_for(epoch, index)``, the only source of randomness a sample should use.
    """

    def __init__(self, source: str | list[MetaEntry], seed: int = 0, cache_dir: str | None = None):
        self.seed = seed
        self.entries = _entries(source) if isinstance(source, (str, os.PathLike)) else list(source)
        self._offsets: list[np.ndarray] = []
        self._kept: list[int] = []
        sizes = []
        for e in self.entries:
            if e.entry is None:  # the meta checks found errors in this entry (load_meta keeps them apart)
                raise MixtureError(
                    f"{e.meta_path or 'meta file'}:{e.line}: dataset {e.name!r} has errors in the meta file; "
                    "run `ivl-data validate` and fix what it reports"
                )
            if not os.path.isfile(e.annotation_path):
                raise MixtureError(f"{e.annotation_path}: annotation file of dataset {e.name!r} not found")
            offsets = _cached_offsets(e.annotation_path, cache_dir)
            kept, repeats = kept_lines(len(offsets) - 1, e.entry.repeat_time)
            self._offsets.append(offsets)
            self._kept.append(kept)
            sizes.append(kept * repeats)
        self._ends = np.cumsum(np.asarray(sizes, dtype=np.int64))

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    def dataset_sizes(self) -> dict[str, int]:
        """Samples per dataset after ``repeat_time``, in meta order."""
        starts: Any = np.concatenate([[0], self._ends[:-1]]) if len(self._ends) else []
        return {e.name: int(end - s) for e, s, end in zip(self.entries, starts, self._ends)}

    def _position(self, i: int) -> tuple[int, int]:
        """(dataset position, 0-based line) of global index ``i``."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for a mixture of {n} samples")
        i %= n
        d = int(np.searchsorted(self._ends, i, side="right"))
        local = i - (int(self._ends[d - 1]) if d else 0)
        return d, local % self._kept[d]

    def locate(self, i: int) -> tuple[MetaEntry, int]:
        """``(dataset entry, 1-based line number)`` of global index ``i``."""
        d, line = self._position(i)
        return self.entries[d], line + 1

    def offset(self, i: int) -> int:
        """Byte offset of global index ``i``'s line in its annotation file."""
        d, line = self._position(i)
        return int(self._offsets[d][line])

    def read(self, i: int) -> dict[str, Any]:
        """The parsed record of global index ``i`` (read by byte offset)."""
        d, line = self._position(i)
        entry, offsets = self.entries[d], self._offsets[d]
        start, end = int(offsets[line]), int(offsets[line + 1])
        with open(entry.annotation_path, "rb") as f:
            f.seek(start)
            raw = f.read(end - start)
        where = f"{entry.annotation_path}:{line + 1}"
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise MixtureError(f"{where}: invalid JSON ({exc}); run `ivl-data validate` on the meta file") from None
        if not isinstance(obj, dict):
            raise MixtureError(f"{where}: a record must be a JSON object, got {type(obj).__name__}")
        return obj

    __getitem__ = read

    def rng_for(self, epoch: int, index: int) -> np.random.Generator:
        """A numpy Generator determined by (seed, epoch, index) alone."""
        return np.random.default_rng([self.seed, epoch, index])


def _entries(meta_path: str) -> list[MetaEntry]:
    """Dataset entries of a meta file through ``meta.load_meta``; its error findings stop the mixture."""
    result = load_meta(os.fspath(meta_path))
    errors = [f for f in result.findings if f.severity is Severity.ERROR]
    if errors:
        first = errors[0]
        raise MixtureError(
            f"{first.path}:{first.line}: {first.code} {first.message} ({len(errors)} meta error(s); "
            "run `ivl-data validate` for all of them)"
        )
    return list(result.entries)
