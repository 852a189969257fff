"""Batch assembly (docs/official-behaviour.md §3.12): pad text to the longest sample, concatenate tiles in sample order.

Differs from the official ``concat_pad_data_collator`` on purpose: ``input_ids`` are padded with the
tokenizer's pad id (not 0) and ``attention_mask`` comes from the real lengths (not ``input_ids != 0``, which
masks genuine id-0 tokens such as ``!`` in Qwen2 vocabularies). See docs/decisions.md. torch is imported
here only, lazily, so the rest of ``internvl_data`` installs without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

__all__ = ["Collator"]


class SampleLike(Protocol):
    """What the collator reads from ``sample.Sample``."""

    input_ids: Any  # 1-D ints
    labels: Any  # 1-D ints, -100 = ignored
    pixel_values: np.ndarray  # float32 (T, 3, S, S)
    image_flags: Any  # 1-D ints, length T


class Collator:
    """``Collator(pad_token_id)(samples)`` -> dict of torch tensors.

    Keys: ``input_ids``, ``labels``, ``attention_mask`` (long, shape ``(B, L)``), ``position_ids`` (0..n-1 on
    real tokens, 0 on padding), ``pixel_values`` (``(sum T, 3, S, S)`` float32) and ``image_flags``
    (``(sum T,)`` long), both concatenated in sample order, as the model's IMG_CONTEXT replacement expects.
    """

    def __init__(self, pad_token_id: int, ignore_index: int = -100):
        if pad_token_id is None:
            raise ValueError("pad_token_id is None: the tokenizer has no pad token; set one before collating")
        self.pad_token_id = int(pad_token_id)
        self.ignore_index = int(ignore_index)

    def __call__(self, samples: Sequence[SampleLike]) -> dict[str, Any]:
        import torch

        if not samples:
            raise ValueError("cannot collate an empty batch")
        lengths = [len(s.input_ids) for s in samples]
        for k, s in enumerate(samples):
            if len(s.labels) != lengths[k]:
                raise ValueError(f"sample {k}: {len(s.labels)} labels for {lengths[k]} input_ids")
            if len(s.image_flags) != len(s.pixel_values):
                raise ValueError(f"sample {k}: {len(s.image_flags)} image_flags for {len(s.pixel_values)} tiles")
        batch, width = len(samples), max(lengths)
        input_ids = np.full((batch, width), self.pad_token_id, dtype=np.int64)
        labels = np.full((batch, width), self.ignore_index, dtype=np.int64)
        attention_mask = np.zeros((batch, width), dtype=np.int64)
        position_ids = np.zeros((batch, width), dtype=np.int64)
        for k, (s, n) in enumerate(zip(samples, lengths)):
            input_ids[k, :n] = s.input_ids
            labels[k, :n] = s.labels
            attention_mask[k, :n] = 1
            position_ids[k, :n] = np.arange(n)
        pixel_values = np.concatenate([np.asarray(s.pixel_values, dtype=np.float32) for s in samples])
        image_flags = np.concatenate([np.asarray(s.image_flags, dtype=np.int64).reshape(-1) for s in samples])
        return {
            "input_ids": torch.from_numpy(input_ids),
            "labels": torch.from_numpy(labels),
            "attention_mask": torch.from_numpy(attention_mask),
            "position_ids": torch.from_numpy(position_ids),
            "pixel_values": torch.from_numpy(pixel_values),
            "image_flags": torch.from_numpy(image_flags),
        }
