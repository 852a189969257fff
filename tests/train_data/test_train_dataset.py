"""The data seam: build_data, TrainDataset (items, seeded augmentation, run-time skips, max_skip_ratio), lengths."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import orjson
import pytest

from internvl_data.pipeline.dataset import SkipRatioError, build_data
from internvl_data.pipeline.modelinfo import ModelInfo
from internvl_data.pipeline.sample import SampleBuilder
from internvl_data.pipeline.tokenizer import load_tokenizer

# fixtures/valid after repeat_time: text 3, single 2 (0.5 of 5 lines), multi 2 x 2, video 2, mixed 5
SIZES = {"text": 3, "single": 2, "multi": 4, "video": 2, "mixed": 5}
FIELDS = ("input_ids", "labels", "attention_mask", "pixel_values", "image_flags", "official_labels")


def same(a, b) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in FIELDS) and a.num_tiles == b.num_tiles


def test_bundle_is_the_checkpoint_with_overrides(tiny_model, valid_copy):
    bundle = build_data(tiny_model, valid_copy, overrides={"max_dynamic_patch": 4, "learning_rate": 1.0, "seed": 5})
    assert bundle.mixture.dataset_sizes() == SIZES and bundle.seed == 5 and bundle.mixture.seed == 5
    assert (bundle.model_info.template, bundle.model_info.tile_size, bundle.model_info.max_dynamic_patch) == (
        "Hermes-2",
        56,
        4,
    )
    assert bundle.builder.max_seq_length == 4096 and bundle.builder.template.name == "Hermes-2"
    assert bundle.collator.pad_token_id == bundle.tokenizer.pad_token_id
    with pytest.raises(ValueError, match="config.json: not found"):
        build_data(valid_copy.parent, valid_copy)


def test_items_equal_the_sample_builder(tiny_model, valid_copy):
    """Each item is SampleBuilder.build of its record, drawn with the (seed, epoch, index) generator."""
    bundle = build_data(tiny_model, valid_copy, overrides={"seed": 7, "max_seq_length": 1024})
    ds = bundle.dataset()
    info = ModelInfo.from_dir(tiny_model)
    builder = SampleBuilder(load_tokenizer(tiny_model), info, "Hermes-2", 1024)
    kinds = []
    assert len(ds) == sum(SIZES.values())
    for i in range(len(ds)):
        entry, line = bundle.mixture.locate(i)
        record = orjson.loads(Path(entry.annotation_path).read_bytes().splitlines()[line - 1])
        expected = builder.build(record, entry, rng=np.random.default_rng([7, 0, i]))
        assert same(ds[i], expected), i
        kinds.append(ds[i].kind)
    assert set(kinds) == {"text", "single", "multi", "video"}


def test_augmentation_is_a_function_of_seed_epoch_index(tiny_model, valid_copy):
    bundle = build_data(tiny_model, valid_copy, overrides={"seed": 1})
    ds = bundle.dataset()
    single = 3  # first record of "single" (data_augment: true)
    first = [ds[i] for i in range(len(ds))]
    backwards = [ds[i] for i in reversed(range(len(ds)))][::-1]
    assert all(same(a, b) for a, b in zip(first, backwards))  # order of access does not matter
    worker_copy = pickle.loads(pickle.dumps(ds))  # what a DataLoader worker gets
    assert same(worker_copy[single], first[single])
    ds.set_epoch(1)
    assert not np.array_equal(ds[single].pixel_values, first[single].pixel_values)  # a new JPEG draw
    assert same(ds[0], first[0])  # text: nothing random
    ds.set_epoch(0)
    assert same(ds[single], first[single])
    other_seed = build_data(tiny_model, valid_copy, overrides={"seed": 2}).dataset()
    assert not np.array_equal(other_seed[single].pixel_values, first[single].pixel_values)
    assert np.array_equal(other_seed[0].input_ids, first[0].input_ids)


def test_unreadable_image_at_run_time_is_skipped_and_logged(tiny_model, valid_copy, tmp_path):
    bundle = build_data(tiny_model, valid_copy)
    log = tmp_path / "out" / "skipped.jsonl"
    ds = bundle.dataset(skipped_path=str(log), max_skip_ratio=0.1, rank=0)  # 16 records: 1 skip allowed
    (valid_copy.parent / "images" / "photo_640x480.jpg").write_bytes(b"not a jpeg any more")
    item = ds[3]  # single.jsonl line 1 uses photo_640x480.jpg; index 4 (line 2) takes its place
    assert same(item, ds.build(4))
    annotation = str(valid_copy.parent / "single.jsonl")
    entries = [orjson.loads(x) for x in log.read_bytes().splitlines()]
    assert entries == [
        {
            "epoch": 0,
            "index": 3,
            "dataset": "single",
            "file": annotation,
            "line": 1,
            "code": "IVL305",
            "message": entries[0]["message"],
            "rank": 0,
        }
    ]
    assert entries[0]["message"].startswith(str(valid_copy.parent / "images" / "photo_640x480.jpg") + ": cannot read")


def test_max_skip_ratio_stops_the_run(tiny_model, valid_copy, tmp_path):
    bundle = build_data(tiny_model, valid_copy)
    log = tmp_path / "skipped.jsonl"
    ds = bundle.dataset(skipped_path=str(log), max_skip_ratio=0.001)  # the default: no skip among 16 records
    (valid_copy.parent / "images" / "photo_640x480.jpg").write_bytes(b"")
    annotation = valid_copy.parent / "single.jsonl"
    with pytest.raises(SkipRatioError) as exc:
        ds[3]
    image = valid_copy.parent / "images" / "photo_640x480.jpg"
    assert str(exc.value).startswith(
        f"1 of 16 records could not be built in epoch 0, more than max_skip_ratio 0.001 allows (0); the last one: "
        f"{annotation}:1: IVL305 {image}: cannot read the image ("
    )
    assert str(exc.value).endswith(
        f"Every skipped record is listed in {log}; fix or remove them (`ivl-data validate --media decode META` "
        "finds unreadable media), or raise max_skip_ratio"
    )
    assert len(log.read_bytes().splitlines()) == 1  # logged before stopping


def test_skips_of_other_processes_count(tiny_model, valid_copy, tmp_path):
    """The ratio is over the shared skipped.jsonl: another worker's skip of this epoch counts, another epoch's not."""
    log = tmp_path / "skipped.jsonl"
    other = {"epoch": 0, "index": 9, "dataset": "video", "file": "v.jsonl", "line": 1, "code": "IVL311"}
    old = dict(other, epoch=3)
    log.write_bytes(orjson.dumps(other) + b"\n" + orjson.dumps(old) + b"\n")
    ds = build_data(tiny_model, valid_copy).dataset(skipped_path=str(log), max_skip_ratio=0.1)
    (valid_copy.parent / "images" / "photo_640x480.jpg").write_bytes(b"")
    with pytest.raises(SkipRatioError, match="^2 of 16 records could not be built in epoch 0"):
        ds[3]


def test_lengths_measured_equal_the_built_lengths(tiny_model, valid_copy):
    bundle = build_data(tiny_model, valid_copy, num_frames=32)
    ds = bundle.dataset()
    assert ds.length_source == ""  # nothing measured before the first use
    lengths = ds.lengths
    assert ds.length_source == "measured"
    assert lengths.dtype == np.int64 and lengths.tolist() == [ds[i].full_length for i in range(len(ds))]


def test_lengths_from_every_line(tiny_model, valid_copy):
    folder = valid_copy.parent
    for name in ("text", "single", "multi", "video", "mixed"):
        path = folder / f"{name}.jsonl"
        rows = [orjson.loads(x) for x in path.read_bytes().splitlines()]
        path.write_bytes(
            b"".join(orjson.dumps({**r, "length": 100 * k + len(name)}) + b"\n" for k, r in enumerate(rows, 1))
        )
    ds = build_data(tiny_model, valid_copy).dataset()
    assert ds.lengths.tolist() == [104, 204, 304, 106, 206, 105, 205, 105, 205, 105, 205, 105, 205, 305, 405, 505]
    assert ds.length_source == "per-line length"
    path = folder / "video.jsonl"
    rows = path.read_bytes().splitlines()
    last = orjson.loads(rows[1])
    del last["length"]
    path.write_bytes(rows[0] + b"\n" + orjson.dumps(last) + b"\n")
    ds = build_data(tiny_model, valid_copy).dataset()
    assert ds.lengths[0] != 104 and ds.length_source == "measured"  # one line without: all measured


def test_dataloader_batches(tiny_model, valid_copy):
    import torch

    bundle = build_data(tiny_model, valid_copy)
    ds = bundle.dataset()
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=bundle.collator)
    batches = list(loader)
    assert [b["input_ids"].shape[0] for b in batches] == [4, 4, 4, 4]
    first = batches[0]
    assert first["pixel_values"].shape[0] == sum(len(ds[i].image_flags) for i in range(4))
    assert first["image_flags"].tolist()[:3] == [0, 0, 0]  # three text records: one dummy tile each
    ds.set_epoch(1)  # worker processes draw what the main process draws, in the new epoch
    in_workers = list(torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=bundle.collator, num_workers=2))
    in_main = list(torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=bundle.collator))
    for x, y in zip(in_workers, in_main, strict=True):
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert not torch.equal(in_main[1]["pixel_values"], batches[1]["pixel_values"])  # epoch 1 differs from epoch 0


def test_skip_ratio_error_from_a_dataloader_worker_is_one_line(tiny_model, valid_copy, tmp_path):
    import torch

    bundle = build_data(tiny_model, valid_copy)
    ds = bundle.dataset(skipped_path=str(tmp_path / "skipped.jsonl"))
    (valid_copy.parent / "images" / "photo_640x480.jpg").write_bytes(b"")
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=1, collate_fn=bundle.collator)
    with pytest.raises(SkipRatioError) as exc:
        list(loader)
    assert str(exc.value).startswith("1 of 16 records could not be built in epoch 0") and "\n" not in str(exc.value)
    assert exc.value.exit_code == 1


def test_epoch_callback_sets_the_dataset_epoch(tiny_model, valid_copy):
    from types import SimpleNamespace

    from internvl_train.datahooks import DatasetEpochCallback

    ds = build_data(tiny_model, valid_copy).dataset()
    hook = DatasetEpochCallback(ds)
    for progress, epoch in ((None, 0), (0.0, 0), (1.0, 1), (1.5, 1), (2.99, 2), (3 - 1e-15, 3)):
        hook.on_epoch_begin(None, SimpleNamespace(epoch=progress), None)
        assert ds.epoch == epoch


def test_render_shows_what_the_dataset_feeds(tiny_model, valid_copy, capsys):
    """`ivl-data render` builds through the same factory: equal ids and labels wherever nothing is random."""
    from internvl_data.cli import main

    assert main(["render", str(valid_copy), "--model", str(tiny_model), "--format", "jsonl", "--limit", "0"]) == 0
    rendered = [orjson.loads(x) for x in capsys.readouterr().out.splitlines()]
    ds = build_data(tiny_model, valid_copy).dataset()
    assert len(rendered) == len(ds)
    fixed = [i for i, r in enumerate(rendered) if r["dataset"] in ("text", "multi")]  # no augmentation, no video
    assert len(fixed) == 7
    for i in fixed:
        assert rendered[i]["input_ids"] == ds[i].input_ids.tolist()
        assert rendered[i]["labels"] == ds[i].labels.tolist()
        assert rendered[i]["pixel_values_shape"] == list(ds[i].pixel_values.shape)


def test_skip_log_counts_every_writer_of_the_epoch(tmp_path):
    from types import SimpleNamespace

    from internvl_data.pipeline.dataset import SkipLog
    from internvl_data.pipeline.sample import SampleError

    path = str(tmp_path / "skipped.jsonl")
    a, b = SkipLog(path, 100, 0.05, rank=0), SkipLog(path, 100, 0.05, rank=1)  # 5 skips allowed per epoch
    entry = SimpleNamespace(name="d", annotation_path="d.jsonl")
    err = SampleError("IVL305", "x.jpg: cannot read the image")
    for k in range(3):
        a.record(0, k, entry, k + 1, err)
    b.record(1, 9, entry, 10, err)  # another epoch: not counted for epoch 0
    b.record(0, 3, entry, 4, err)
    b.record(0, 4, entry, 5, err)
    assert (a.epoch_count(0), b.epoch_count(0), b.epoch_count(1)) == (5, 5, 1)
    with pytest.raises(SkipRatioError, match=r"^6 of 100 records could not be built in epoch 0, .* allows \(5\)"):
        a.record(0, 5, entry, 6, err)
    assert [orjson.loads(x)["rank"] for x in Path(path).read_bytes().splitlines()] == [0, 0, 0, 1, 1, 1, 0]
