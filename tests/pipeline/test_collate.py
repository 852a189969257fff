"""Collator: exact padded text tensors and tiles concatenated in sample order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from internvl_data.pipeline.collate import Collator

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


def test_meta_to_batch_end_to_end(tmp_path, builder_factory, media, meta_writer):
    """meta -> Mixture -> SampleBuilder -> Collator: tiles, flags and image tokens line up in sample order."""
    from internvl_data.pipeline.mixture import Mixture
    from internvl_data.pipeline.tokenizer import IMG_CONTEXT
    from internvl_data.pipeline.transforms import TileTransform, load_rgb

    builder, tok = builder_factory("internlm2-chat", "internlm2", image_size=28, max_dynamic_patch=6)
    assert builder.tokens_per_tile == 1  # (28 // 14)^2 * 0.5^2
    chat = [{"from": "human", "value": "What is it?"}, {"from": "gpt", "value": "A box."}]
    records = {
        "a": [{"conversations": chat}, {"image": "img_800x600.png", "conversations": chat}],
        "b": [
            {
                "image": ["img_448x448.png", "img_57x31.png"],
                "conversations": [{"from": "human", "value": "<image>\n<image>\nSame?"}, chat[1]],
            }
        ],
    }
    mix = Mixture(str(meta_writer(tmp_path, records, media)))
    samples = [builder.build(mix.read(i), mix.locate(i)[0], rng=mix.rng_for(0, i)) for i in range(len(mix))]
    # text: 1 dummy tile; 800x600 at tile 28, max 6: 3x2 grid + thumbnail; multi budget 6 // 2 = 3 per image:
    # 448x448 -> 1x1 (no thumbnail), 57x31 -> 2x1 + thumbnail
    assert [s.num_tiles for s in samples] == [[], [7], [1, 3]]
    batch = Collator(pad_token_id=tok.pad_token_id)(samples)
    assert batch["image_flags"].tolist() == [0] + [1] * 7 + [1] * 4
    assert np.array_equal(batch["pixel_values"].numpy(), np.concatenate([s.pixel_values for s in samples]))
    single = TileTransform(28).image(load_rgb(str(media / "img_800x600.png")), 1, 6, True)
    assert np.array_equal(batch["pixel_values"][1:8].numpy(), single)
    context = tok.convert_tokens_to_ids(IMG_CONTEXT)
    width = max(len(s.input_ids) for s in samples)
    assert tuple(batch["input_ids"].shape) == (3, width)
    for row, s in enumerate(samples):
        n = len(s.input_ids)
        assert batch["input_ids"][row, :n].tolist() == s.input_ids.tolist()
        assert set(batch["input_ids"][row, n:].tolist()) <= {tok.pad_token_id}
        assert batch["labels"][row, :n].tolist() == s.labels.tolist()
        assert set(batch["labels"][row, n:].tolist()) <= {-100}
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (width - n)
    assert [int((batch["input_ids"][r] == context).sum()) for r in range(3)] == [0, 7, 4]
