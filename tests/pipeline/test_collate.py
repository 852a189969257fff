"""Collator: exact padded text tensors and tiles concatenated in sample order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from internvl_data.collate import Collator

torch = pytest.importorskip("torch")


@dataclass
class FakeSample:
    input_ids: list[int]
    labels: list[int]
    pixel_values: np.ndarray
    image_flags: list[int]


def _tiles(n: int, first: float) -> np.ndarray:
    return np.arange(n * 3 * 2 * 2, dtype=np.float32).reshape(n, 3, 2, 2) + first


def test_exact_batch():
    samples = [
        FakeSample([5, 0, 7], [-100, 0, 7], _tiles(2, 100.0), [1, 1]),  # id 0 is a real token here
        FakeSample([9, 8, 7, 6, 5], [-100, -100, 7, 6, 5], _tiles(1, 0.0), [0]),
        FakeSample([4], [4], _tiles(3, 50.0), [1, 1, 1]),
    ]
    batch = Collator(pad_token_id=2)(samples)
    assert set(batch) == {"input_ids", "labels", "attention_mask", "position_ids", "pixel_values", "image_flags"}
    assert batch["input_ids"].tolist() == [[5, 0, 7, 2, 2], [9, 8, 7, 6, 5], [4, 2, 2, 2, 2]]
    assert batch["labels"].tolist() == [[-100, 0, 7, -100, -100], [-100, -100, 7, 6, 5], [4, -100, -100, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 0], [0, 1, 2, 3, 4], [0, 0, 0, 0, 0]]
    assert batch["image_flags"].tolist() == [1, 1, 0, 1, 1, 1]
    for key in ("input_ids", "labels", "attention_mask", "position_ids", "image_flags"):
        assert batch[key].dtype == torch.int64
    pv = batch["pixel_values"]
    assert pv.dtype == torch.float32 and tuple(pv.shape) == (6, 3, 2, 2)
    expected = np.concatenate([_tiles(2, 100.0), _tiles(1, 0.0), _tiles(3, 50.0)])
    assert np.array_equal(pv.numpy(), expected)


def test_custom_ignore_index_and_single_sample():
    batch = Collator(pad_token_id=0, ignore_index=-1)([FakeSample([3, 4], [-1, 4], _tiles(1, 0.0), [1])])
    assert batch["input_ids"].tolist() == [[3, 4]]
    assert batch["labels"].tolist() == [[-1, 4]]
    assert batch["attention_mask"].tolist() == [[1, 1]]


def test_inconsistent_samples_are_rejected():
    collate = Collator(pad_token_id=0)
    with pytest.raises(ValueError, match="sample 0: 1 labels for 2 input_ids"):
        collate([FakeSample([1, 2], [1], _tiles(1, 0.0), [1])])
    with pytest.raises(ValueError, match="sample 0: 2 image_flags for 1 tiles"):
        collate([FakeSample([1], [1], _tiles(1, 0.0), [1, 1])])
    with pytest.raises(ValueError, match="empty batch"):
        collate([])
    with pytest.raises(ValueError, match="pad_token_id is None"):
        Collator(pad_token_id=None)
