"""The trainer-facing data seam: one factory for the mixture, the sample builder and the collator, and the dataset.

:func:`build_data` reads a checkpoint folder (config.json and tokenizer, never weights) and a meta file and
returns a :class:`DataBundle`; ``ivl-data render`` and ``ivl-train`` both build their data through it, so what
render shows is what the trainer feeds the model. :class:`TrainDataset` is the map-style dataset the trainer's
DataLoader reads: index -> ``Sample`` exactly as ``SampleBuilder.build`` makes it, augmentation (the meta's
``data_augment``) and video frame sampling seeded by ``(seed, epoch, index)`` alone, so every worker and every
rank draws the same pixels for the same sample.

A record that cannot be built at run time (an image that no longer decodes) is skipped: it is logged with its
file and line to ``skipped.jsonl`` and counted, and its slot in the batch is filled by the next index that
builds (deterministic, logged, unlike the official silent retry of a random record: a batch keeps its size, so
no rank ever waits on a shorter one). More skips in an epoch than ``max_skip_ratio`` of its records stop the
run with :class:`SkipRatioError`.

torch is not imported here: the dataset is a plain map-style dataset (``__len__`` + ``__getitem__``), which is
all ``torch.utils.data.DataLoader`` needs, so ``ivl-data render`` keeps working without torch.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from internvl_data.errors import DataError
from internvl_data.pipeline.collate import Collator
from internvl_data.pipeline.mixture import Mixture, MixtureError
from internvl_data.pipeline.modelinfo import ModelInfo
from internvl_data.pipeline.sample import Sample, SampleBuilder, SampleError

__all__ = [
    "DATA_KEYS",
    "DataBundle",
    "SkipLog",
    "SkipRatioError",
    "TrainDataset",
    "build_data",
    "mixture_lengths",
]

# The training-config keys the data side reads (the official flag names); others in ``overrides`` are ignored.
DATA_KEYS = (
    "conv_style",
    "max_seq_length",
    "force_image_size",
    "min_dynamic_patch",
    "max_dynamic_patch",
    "use_thumbnail",
    "dynamic_image_size",
    "down_sample_ratio",
    "min_num_frame",
    "max_num_frame",
    "trust_remote_code",
    "seed",
)
# config key -> ModelInfo field: the checkpoint's value unless the config sets one
_INFO_FIELDS = {
    "force_image_size": "tile_size",
    "min_dynamic_patch": "min_dynamic_patch",
    "max_dynamic_patch": "max_dynamic_patch",
    "use_thumbnail": "use_thumbnail",
    "dynamic_image_size": "dynamic_image_size",
    "down_sample_ratio": "downsample_ratio",
}


@dataclass
class DataBundle:
    """Everything the data side of one run needs, built once from a checkpoint folder and a meta file."""

    meta_path: str
    model_info: ModelInfo  # the checkpoint's settings with the overrides applied
    tokenizer: Any
    builder: SampleBuilder
    mixture: Mixture
    seed: int = 0
    build_args: tuple = ()  # build_data's arguments: a pickled bundle (DataLoader workers under spawn) rebuilds

    def __reduce__(self) -> tuple:
        if not self.build_args:
            raise TypeError("a DataBundle made without build_data cannot be pickled")
        return _rebuild, self.build_args

    @property
    def collator(self) -> Collator:
        """The batch collator (padding with the tokenizer's pad id; an error when the tokenizer has none)."""
        return Collator(self.builder.codec.pad_id)

    def dataset(
        self, *, skipped_path: str | None = None, max_skip_ratio: float = 0.001, rank: int | None = None
    ) -> TrainDataset:
        """The training dataset over this bundle's mixture."""
        return TrainDataset(self, skipped_path=skipped_path, max_skip_ratio=max_skip_ratio, rank=rank)


def build_data(
    model_dir: str | os.PathLike,
    meta_path: str | os.PathLike,
    *,
    overrides: Mapping[str, Any] | None = None,
    num_frames: int | None = None,
    sampling: str = "rand",
    cache_dir: str | None = None,
) -> DataBundle:
    """The mixture, sample builder and collator for ``model_dir`` (config.json + tokenizer) and ``meta_path``.

    ``overrides`` uses the training-config names (:data:`DATA_KEYS`; ``None`` values mean "the checkpoint's"):
    ``conv_style`` picks the template, ``max_seq_length`` the truncation, the image keys replace the
    checkpoint's tiling settings (a dataset's own ``max_dynamic_patch`` in the meta file still wins, as in the
    official loader), ``min_num_frame``/``max_num_frame`` bound the frames drawn per video, ``seed`` seeds
    augmentation. ``num_frames`` fixes the frame count and ``sampling`` the frame choice (render: ``middle``).
    Errors (a checkpoint without config.json, no template, a broken meta file) are ``ValueError`` subclasses
    whose message names the file and the fix.
    """
    from internvl_data.pipeline.tokenizer import load_tokenizer

    o = {k: v for k, v in (overrides or {}).items() if k in DATA_KEYS and v is not None}
    info = ModelInfo.from_dir(model_dir, o.get("conv_style"))
    info = dataclasses.replace(info, **{f: o[k] for k, f in _INFO_FIELDS.items() if k in o})
    template = info.require_template()
    tokenizer = load_tokenizer(model_dir, trust_remote_code=bool(o.get("trust_remote_code", False)))
    builder = SampleBuilder(
        tokenizer,
        info,
        template,
        int(o.get("max_seq_length", 4096)),
        min_num_frame=int(o.get("min_num_frame", 8)),
        max_num_frame=int(o.get("max_num_frame", 32)),
        num_frames=num_frames,
        sampling=sampling,
    )
    seed = int(o.get("seed", 0))
    mixture = Mixture(os.fspath(meta_path), seed=seed, cache_dir=cache_dir)
    args = (os.fspath(model_dir), os.fspath(meta_path), dict(o), num_frames, sampling, cache_dir)
    return DataBundle(os.fspath(meta_path), info, tokenizer, builder, mixture, seed, args)


def _rebuild(
    model_dir: str, meta_path: str, overrides: dict, num_frames: int | None, sampling: str, cache_dir: str | None
) -> DataBundle:
    return build_data(
        model_dir, meta_path, overrides=overrides, num_frames=num_frames, sampling=sampling, cache_dir=cache_dir
    )


# -- run-time skips -------------------------------------------------------------------------------------------------


class SkipRatioError(DataError):
    """More records of an epoch failed at run time than ``max_skip_ratio`` allows.

    A DataLoader worker's exception is re-raised in the main process with the worker's traceback as its message;
    this class keeps only its own one-line message from it, so the user sees one line, not a traceback.
    """

    def __init__(self, message: str = "", **kwargs: Any):
        marker = f"{type(self).__name__}: "
        if "Original Traceback" in message and marker in message:
            message = message[message.rindex(marker) + len(marker) :].strip()
        super().__init__(message, **kwargs)


class SkipLog:
    """Appends one JSON line per skipped record to ``path`` and enforces ``max_skip_ratio`` per epoch.

    Several DataLoader workers (and ranks) append to the same file; each line is one ``O_APPEND`` write, and the
    count for the ratio is read back from the file, so it covers every process that shares it. Without a
    path the count is this process's own.
    """

    def __init__(self, path: str | None, total: int, max_ratio: float, rank: int | None = None):
        self.path, self.total, self.max_ratio = path, total, max_ratio
        self.rank = rank if rank is not None else int(os.environ.get("RANK", "0") or 0)
        self.counts: dict[int, int] = {}  # epoch -> skips seen by this process
        self._in_file: dict[int, int] = {}  # epoch -> skips in the file, up to byte _read_to
        self._read_to = 0

    def allowed(self) -> int:
        """Skips an epoch may have before the run stops (``floor(max_ratio x records)``)."""
        return int(self.max_ratio * self.total + 1e-9)

    def record(self, epoch: int, index: int, entry: Any, line: int, error: Exception) -> None:
        """Log one skipped record; raise :class:`SkipRatioError` when the epoch's skips exceed the ratio."""
        code = getattr(error, "code", None) or ("IVL001" if isinstance(error, MixtureError) else "runtime")
        message = str(error)
        item = {
            "epoch": epoch,
            "index": index,
            "dataset": getattr(entry, "name", None),
            "file": getattr(entry, "annotation_path", None),
            "line": line,
            "code": code,
            "message": message,
            "rank": self.rank,
        }
        self.counts[epoch] = self.counts.get(epoch, 0) + 1
        n = self.counts[epoch]
        if self.path:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, orjson.dumps(item) + b"\n")
            finally:
                os.close(fd)
            n = max(n, self.epoch_count(epoch))
        if n > self.allowed():
            raise SkipRatioError(
                f"{n} of {self.total} records could not be built in epoch {epoch}, more than max_skip_ratio "
                f"{self.max_ratio} allows ({self.allowed()}); the last one: {item['file']}:{line}: {code} {message}. "
                f"Every skipped record is listed in {self.path or 'the log'}; fix or remove them (`ivl-data "
                "validate --media decode META` finds unreadable media), or raise max_skip_ratio"
            )

    def epoch_count(self, epoch: int) -> int:
        """Skips of ``epoch`` recorded in the file by every process (only the bytes added since the last call are
        read; a torn last line is read again next time)."""
        try:
            with open(self.path, "rb") as f:  # type: ignore[arg-type]
                f.seek(self._read_to)
                data = f.read()
        except OSError:
            return self.counts.get(epoch, 0)
        end = data.rfind(b"\n") + 1
        for raw in data[:end].splitlines():
            try:
                e = orjson.loads(raw).get("epoch") if raw.strip() else None
            except (orjson.JSONDecodeError, AttributeError):
                continue
            if isinstance(e, int):
                self._in_file[e] = self._in_file.get(e, 0) + 1
        self._read_to += end
        return self._in_file.get(epoch, 0)


# -- the dataset ------------------------------------------------------------------------------------------------------


class TrainDataset:
    """Map-style dataset: global mixture index -> :class:`Sample` (what ``SampleBuilder.build`` returns).

    ``set_epoch(e)`` (the Trainer calls it through accelerate before each epoch) changes the augmentation and
    frame draws; the draws of ``(seed, epoch, index)`` never depend on the worker, the rank or the order of
    access. ``lengths`` (computed on first use) feeds length-grouped sampling.
    """

    def __init__(
        self,
        bundle: DataBundle,
        *,
        skipped_path: str | None = None,
        max_skip_ratio: float = 0.001,
        rank: int | None = None,
    ):
        self.bundle = bundle
        self.epoch = 0
        self.skips = SkipLog(skipped_path, len(self.mixture), max_skip_ratio, rank)
        self._lengths: np.ndarray | None = None
        self.length_source = ""

    @property
    def mixture(self) -> Mixture:
        return self.bundle.mixture

    @property
    def builder(self) -> SampleBuilder:
        return self.bundle.builder

    def __len__(self) -> int:
        return len(self.bundle.mixture)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def build(self, index: int) -> Sample:
        """The sample of ``index`` in the current epoch; raises ``SampleError``/``MixtureError``/``OSError``."""
        entry, _line = self.mixture.locate(index)
        record = self.mixture.read(index)
        return self.builder.build(record, entry, rng=self.mixture.rng_for(self.epoch, index))

    def __getitem__(self, index: int) -> Sample:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} samples")
        index %= n
        for k in range(n):
            i = (index + k) % n
            try:
                return self.build(i)
            except (SampleError, MixtureError, OSError) as exc:
                entry, line = self.mixture.locate(i)
                self.skips.record(self.epoch, i, entry, line, exc)
        raise SkipRatioError(f"no record of the {n} in {self.bundle.meta_path} can be built")

    # -- lengths for group_by_length ----------------------------------------------------------------------------

    @property
    def lengths(self) -> np.ndarray:
        """Token length per index (int64): the lines' own ``length`` when every line has one, else measured."""
        if self._lengths is None:
            self._lengths, self.length_source = mixture_lengths(self.bundle)
        return self._lengths


def mixture_lengths(bundle: DataBundle) -> tuple[np.ndarray, str]:
    """``(length per mixture index, source)``; source is ``"per-line length"`` or ``"measured"``.

    The per-line ``length`` (written by ``ivl-data lengths``) is used when every line the mixture reads has a
    positive integer one; otherwise every record is measured with the stats token counter (exact counts with
    the images' tiles, no pixels): a line that cannot be measured gets 0. Lines are streamed (memory: one int
    per line, one batch of records).
    """
    mix = bundle.mixture
    found: list[np.ndarray] = []
    source = "per-line length"
    for e, kept in zip(mix.entries, mix._kept):
        given = _given_lengths(e.annotation_path, kept)
        if given is None:  # the first line without its own length: no more reading, every record is measured
            found, source = _measure(bundle, list(zip(mix.entries, mix._kept))), "measured"
            break
        found.append(given)
    sizes = list(mix.dataset_sizes().values())
    parts = [np.resize(v, size) if size else np.zeros(0, np.int64) for v, size in zip(found, sizes)]
    return (np.concatenate(parts) if parts else np.zeros(0, np.int64)), source


def _records(path: str, kept: int) -> Iterator[tuple[int, Any]]:
    """``(0-based line, parsed record or None)`` for the first ``kept`` lines of ``path``."""
    from internvl_data.formats.lines import iter_lines

    for k, (_lineno, _offset, raw) in enumerate(iter_lines(path)):
        if k >= kept:
            return
        try:
            yield k, orjson.loads(raw)
        except orjson.JSONDecodeError:
            yield k, None


def _given_lengths(path: str, kept: int) -> np.ndarray | None:
    """Each line's own positive integer ``length``; ``None`` (read no further) at the first line without one."""
    out = np.zeros(kept, dtype=np.int64)
    for k, obj in _records(path, kept):
        value = obj.get("length") if isinstance(obj, dict) else None
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            return None
        out[k] = value
    return out if bool((out > 0).all()) else None  # a file shorter than ``kept``


def _measure(bundle: DataBundle, entries: list[tuple[Any, int]]) -> list[np.ndarray]:
    """Exact total tokens (before truncation) of each of the first ``kept`` records of each ``(entry, kept)``,
    through one stats token counter (``stats.tokens.TokenCounter``: its piece cache serves every file), in
    batches."""
    from internvl_data.media import sizes as media_sizes
    from internvl_data.stats.tokens import TokenCounter
    from internvl_data.stats.worker import Settings

    info, b = bundle.model_info, bundle.builder
    settings = Settings(
        tile=info.tile_size,
        min_dynamic_patch=info.min_dynamic_patch,
        max_dynamic_patch=info.max_dynamic_patch,
        use_thumbnail=info.use_thumbnail,
        dynamic_image_size=info.dynamic_image_size,
        model_dir=info.path,
        max_seq_length=b.max_seq_length,
        num_frames=b.num_frames or b.max_num_frame,
        min_num_frame=b.min_num_frame,
        template=b.template.name,
    )
    counter = TokenCounter(b, settings)
    sizes = media_sizes.MediaSizes(media_sizes.load(None), False)
    return [_measure_file(counter, settings, sizes, entry, kept) for entry, kept in entries]


def _measure_file(counter: Any, settings: Any, sizes: Any, entry: Any, kept: int) -> np.ndarray:
    from internvl_data.stats.hist import Tally
    from internvl_data.stats.worker import Dataset, scan_record

    own = entry.entry.max_dynamic_patch if entry.entry is not None else None  # the validated DatasetEntry
    ds = Dataset(entry.name, entry.annotation_path, entry.root_path, own)
    tally = Tally()
    out = np.zeros(kept, dtype=np.int64)
    batch: list[tuple[int, Any]] = []

    def flush() -> None:
        for (k, _rec), counts in zip(batch, counter.count_batch([r for _, r in batch])):
            out[k] = 0 if counts.error else counts.total
        batch.clear()

    for k, obj in _records(entry.annotation_path, kept):
        rec = scan_record(obj, ds, settings, sizes, tally) if isinstance(obj, dict) else None
        if rec is not None and 0 not in rec.tiles:
            batch.append((k, rec))
            if len(batch) >= 256:
                flush()
    if batch:
        flush()
    return out
