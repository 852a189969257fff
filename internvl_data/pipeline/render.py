"""`ivl-data render`: records of a meta file -> the exact model inputs, as JSON objects or readable text.

Deterministic: no augmentation, video frames sampled ``middle`` with a fixed count. A record that cannot be
built is an output item with ``error`` (code and message), never a traceback.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from internvl_data.errors import UsageError
from internvl_data.fsio import write_atomic
from internvl_data.pipeline.labels import IGNORE
from internvl_data.pipeline.sample import Sample, SampleError

TRAIN_OPEN, TRAIN_CLOSE = "⟦", "⟧"  # marks trained spans in the text format
COLOR_OPEN, COLOR_CLOSE = "\x1b[1;32m", "\x1b[0m"  # the same on a terminal: bold green


@dataclass(frozen=True, slots=True)
class RenderOptions:
    meta: str
    model: str
    dataset: str | None = None
    index: int | None = None
    limit: int = 1
    max_seq_length: int = 4096
    num_frames: int = 8
    template: str | None = None
    trust_remote_code: bool = False
    dump_pixels: str | None = None


class RenderUsageError(UsageError, ValueError):
    """An unusable invocation (unknown dataset, index out of range): exit 2."""


@dataclass(slots=True)
class Rendered:
    dataset: str
    index: int  # 0-based position in the dataset (after repeat_time)
    line: int  # 1-based line of the annotation file
    path: str
    sample: Sample | None
    error: SampleError | None


def select(mixture: Any, dataset: str | None, index: int | None, limit: int) -> Iterator[tuple[int, str, int]]:
    """``(global index, dataset name, index in dataset)`` for the requested records, lazily."""
    sizes = mixture.dataset_sizes()
    if dataset is not None and dataset not in sizes:
        raise RenderUsageError(f"no dataset {dataset!r} in the meta file; datasets: {', '.join(sizes)}")
    ranges, start = [], 0
    for name, size in sizes.items():
        if dataset is None or name == dataset:
            ranges.append((start, name, size))
        start += size
    total = sum(size for _, _, size in ranges)
    if index is not None:
        if not 0 <= index < total:
            where = f"dataset {dataset!r}" if dataset else "the meta file"
            raise RenderUsageError(f"--index {index} is out of range: {where} has {total} samples (0..{total - 1})")
        first, count = index, 1
    else:
        first, count = 0, total if limit <= 0 else min(limit, total)
    return _walk(ranges, first, count)


def _walk(ranges: list[tuple[int, str, int]], first: int, count: int) -> Iterator[tuple[int, str, int]]:
    """``count`` positions from position ``first`` of the concatenated ``ranges``."""
    pos = 0
    for start, name, size in ranges:
        for k in range(max(0, first - pos), size):
            if count <= 0:
                return
            yield start + k, name, k
            count -= 1
        pos += size


class Renderer:
    """Checkpoint (config + tokenizer), builder and mixture for one invocation, built by the trainer's factory
    (``dataset.build_data``), so render shows what the trainer feeds the model."""

    def __init__(self, opts: RenderOptions) -> None:
        from internvl_data.pipeline.dataset import build_data

        self.opts = opts
        overrides = {
            "conv_style": opts.template,
            "max_seq_length": opts.max_seq_length,
            "trust_remote_code": opts.trust_remote_code,
        }
        bundle = build_data(opts.model, opts.meta, overrides=overrides, num_frames=opts.num_frames, sampling="middle")
        self.tokenizer, self.builder, self.mixture = bundle.tokenizer, bundle.builder, bundle.mixture

    def records(self) -> Iterator[Rendered]:
        """Build every selected record; errors are carried in the result."""
        from internvl_data.pipeline.mixture import MixtureError

        o = self.opts
        for gi, name, k in select(self.mixture, o.dataset, o.index, o.limit):
            entry, line = self.mixture.locate(gi)
            sample, error = None, None
            try:
                sample = self.builder.build(self.mixture.read(gi), entry, rng=0, augment=False)
            except MixtureError as exc:
                error = SampleError("IVL001", str(exc))
            except SampleError as exc:
                error = exc
            yield Rendered(name, k, line, entry.annotation_path, sample, error)

    def text(self, r: Rendered, color: bool = False) -> str:
        return to_text(r, self.tokenizer, self.builder.codec.img_context, color)


def to_json(r: Rendered) -> dict[str, Any]:
    """The jsonl object of one record (keys fixed by the issue; ``null`` fields for an error)."""
    s = r.sample
    out: dict[str, Any] = {"dataset": r.dataset, "index": r.index, "line": r.line}
    if s is None:
        out.update(
            dict.fromkeys(
                (
                    "input_ids",
                    "labels",
                    "attention_mask",
                    "num_tiles",
                    "image_flags",
                    "pixel_values_shape",
                    "official_mismatch",
                )
            )
        )
        out["error"] = {"code": r.error.code, "message": str(r.error)} if r.error else None
        return out
    out.update(
        input_ids=s.input_ids.tolist(),
        labels=s.labels.tolist(),
        attention_mask=s.attention_mask.tolist(),
        num_tiles=list(s.num_tiles),
        image_flags=s.image_flags.tolist(),
        pixel_values_shape=list(s.pixel_values.shape),
        official_mismatch=s.official_mismatch,
        truncated=s.truncated,
        warnings=list(s.warnings),
        error=None,
    )
    return out


def dump_pixels(r: Rendered, folder: str) -> str | None:
    """Write ``<dataset>-<index>.npy`` (float32 pixel_values) atomically; returns the path."""
    if r.sample is None:
        return None
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{r.dataset}-{r.index}.npy")
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(r.sample.pixel_values, dtype=np.float32))
    write_atomic(path, buf.getvalue())
    return path


def to_text(r: Rendered, tokenizer: Any, img_context_id: int, color: bool = False) -> str:
    """Readable form: header, one line per image (tile grid), the decoded sequence with trained spans marked."""
    head = f"== {r.dataset}[{r.index}]  {r.path}:{r.line}"
    if r.sample is None:
        return f"{head}\nerror {r.error.code}: {r.error}\n" if r.error else head + "\n"
    s = r.sample
    trained = int((s.labels != IGNORE).sum())
    official = "MISMATCH: the official trainer learns nothing from this record" if s.official_mismatch else "ok"
    lines = [
        head,
        f"kind {s.kind}, {len(s.input_ids)} tokens ({trained} trained)"
        f"{', truncated from ' + str(s.full_length) if s.truncated else ''}, official labels: {official}",
        f"pixel_values {list(s.pixel_values.shape)}, image_flags {s.image_flags.tolist()}",
    ]
    word = "frame" if s.kind == "video" else "image"
    for k, (n, grid) in enumerate(zip(s.num_tiles, s.grids)):
        w, h = s.image_sizes[k] if k < len(s.image_sizes) else (0, 0)
        cols, rows, thumb = grid
        lines.append(f"{word} {k + 1}: {w}x{h} -> grid {cols}x{rows}{' + thumbnail' if thumb else ''} = {n} tile(s)")
    lines.extend(f"warning {w}" for w in s.warnings)
    lines.append(decode_marked(tokenizer, s.input_ids, s.labels, img_context_id, color))
    return "\n".join(lines) + "\n"


def decode_marked(tokenizer: Any, ids: np.ndarray, labels: np.ndarray, img_context_id: int, color: bool = False) -> str:
    """Decode ``ids`` run by run; trained runs in ⟦ ⟧ (or green) and ``<IMG_CONTEXT>`` runs as ``<IMG_CONTEXT>xN``."""
    start, end = (COLOR_OPEN, COLOR_CLOSE) if color else (TRAIN_OPEN, TRAIN_CLOSE)
    out, k, n = [], 0, len(ids)
    while k < n:
        if ids[k] == img_context_id:
            j = k
            while j < n and ids[j] == img_context_id:
                j += 1
            out.append(f"<IMG_CONTEXT>x{j - k}")
            k = j
            continue
        trained = labels[k] != IGNORE
        j = k
        while j < n and (labels[j] != IGNORE) == trained and ids[j] != img_context_id:
            j += 1
        text = tokenizer.decode(ids[k:j].tolist(), skip_special_tokens=False, clean_up_tokenization_spaces=False)
        out.append(f"{start}{text}{end}" if trained else text)
        k = j
    return "".join(out)
