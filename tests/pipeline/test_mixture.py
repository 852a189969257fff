"""Mixture: repeat_time as the official loader, global index mapping, byte-offset reads, determinism."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from internvl_data.pipeline.mixture import Mixture, MixtureError, kept_lines, line_offsets


def _write_jsonl(path, n: int, tag: str, trailing_newline: bool = True) -> None:
    lines = [json.dumps({"id": f"{tag}{k}", "conversations": [], "pad": "é" * k}, ensure_ascii=False) for k in range(n)]
    text = "\n".join(lines) + ("\n" if trailing_newline else "")
    path.write_bytes(text.encode())


def _meta(tmp_path, datasets: dict) -> str:
    meta = {}
    for name, (n, repeat) in datasets.items():
        _write_jsonl(tmp_path / f"{name}.jsonl", n, name)
        meta[name] = {"root": ".", "annotation": f"{name}.jsonl", "data_augment": False, "repeat_time": repeat}
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(meta))
    return str(path)


@pytest.mark.parametrize(
    ("n", "repeat", "expected"),
    [(10, 1, (10, 1)), (10, 1.0, (10, 1)), (10, 0.55, (5, 1)), (7, 0.5, (3, 1)), (10, 0.01, (0, 1)), (10, 3, (10, 3))],
)
def test_kept_lines(n, repeat, expected):
    assert kept_lines(n, repeat) == expected


def test_index_mapping_in_meta_order(tmp_path):
    mix = Mixture(_meta(tmp_path, {"b": (4, 0.5), "a": (3, 2), "c": (2, 1)}))
    assert len(mix) == 2 + 6 + 2
    assert mix.dataset_sizes() == {"b": 2, "a": 6, "c": 2}
    located = [(e.name, line) for e, line in (mix.locate(i) for i in range(len(mix)))]
    assert located == [
        ("b", 1),
        ("b", 2),
        ("a", 1),
        ("a", 2),
        ("a", 3),
        ("a", 1),
        ("a", 2),
        ("a", 3),
        ("c", 1),
        ("c", 2),
    ]
    assert [mix.read(i)["id"] for i in range(len(mix))] == ["b0", "b1", "a0", "a1", "a2", "a0", "a1", "a2", "c0", "c1"]
    assert mix[-1]["id"] == "c1"
    with pytest.raises(IndexError, match="index 10 out of range for a mixture of 10 samples"):
        mix.locate(10)


def test_offsets_and_reads_by_byte_offset(tmp_path):
    path = tmp_path / "x.jsonl"
    _write_jsonl(path, 5, "x", trailing_newline=False)
    data = path.read_bytes()
    offsets = line_offsets(str(path))
    assert offsets.dtype == np.uint32
    expected = [0] + [k + 1 for k, b in enumerate(data) if b == 10] + [len(data)]
    assert offsets.tolist() == expected
    _write_jsonl(path, 5, "x", trailing_newline=True)
    assert len(line_offsets(str(path))) == 6  # the empty tail after the final newline is not a line
    mix = Mixture(_meta(tmp_path, {"x": (5, 1)}))
    assert mix.offset(3) == expected[3]
    assert mix.read(3) == {"id": "x3", "conversations": [], "pad": "ééé"}


def test_offsets_across_chunks(tmp_path, monkeypatch):
    import internvl_data.formats.lines as lines

    monkeypatch.setattr(lines, "CHUNK", 7)
    path = tmp_path / "y.jsonl"
    path.write_bytes(b'{"a":1}\n\n{"bb":22}\n{}')
    assert line_offsets(str(path)).tolist() == [0, 8, 9, 19, 21]


def test_bad_record_message_names_file_and_line(tmp_path):
    meta = _meta(tmp_path, {"d": (3, 1)})
    with open(tmp_path / "d.jsonl", "ab") as f:
        f.write(b"{broken\n[1, 2]\n")
    mix = Mixture(meta)
    with pytest.raises(MixtureError, match=r"d\.jsonl:4: invalid JSON"):
        mix.read(3)
    with pytest.raises(MixtureError, match=r"d\.jsonl:5: a record must be a JSON object, got list"):
        mix.read(4)


def test_meta_errors_stop_the_mixture_with_file_and_line(tmp_path):
    meta = _meta(tmp_path, {"d": (3, 2.0)})
    with pytest.raises(
        MixtureError, match=r"meta\.json:1: IVL109 dataset 'd': 'repeat_time' is 2\.0.*ivl-data validate"
    ):
        Mixture(meta)


def test_entries_with_meta_errors_are_refused(tmp_path):
    """repeat_time is checked once, by the meta checks (IVL109): an entry they rejected has no typed entry."""
    from internvl_data.formats.meta import load_meta

    bad = load_meta(_meta(tmp_path, {"d": (3, 2.0)})).entries
    assert bad[0].entry is None
    with pytest.raises(
        MixtureError, match=r"meta\.json:1: dataset 'd' has errors in the meta file; run `ivl-data validate`"
    ):
        Mixture(bad)
    entries = load_meta(_meta(tmp_path, {"d": (3, 1)})).entries
    os.remove(tmp_path / "d.jsonl")
    with pytest.raises(MixtureError, match="d.jsonl: annotation file of dataset 'd' not found"):
        Mixture(entries)


def test_rng_for_is_deterministic_per_seed_epoch_index(tmp_path):
    meta = _meta(tmp_path, {"d": (3, 1)})
    a, b, other = Mixture(meta, seed=1), Mixture(meta, seed=1), Mixture(meta, seed=2)
    draw = lambda m, e, i: m.rng_for(e, i).integers(0, 1 << 30, size=4).tolist()  # noqa: E731
    assert draw(a, 0, 5) == draw(b, 0, 5)
    assert draw(a, 0, 5) == np.random.default_rng([1, 0, 5]).integers(0, 1 << 30, size=4).tolist()
    assert len({tuple(draw(a, 0, 5)), tuple(draw(a, 1, 5)), tuple(draw(a, 0, 6)), tuple(draw(other, 0, 5))}) == 4


def test_offsets_cache(tmp_path):
    meta = _meta(tmp_path, {"d": (4, 1)})
    cache = tmp_path / "cache"
    first = Mixture(meta, cache_dir=str(cache))
    files = os.listdir(cache)
    assert len(files) == 1 and files[0].startswith("offsets-") and files[0].endswith(".npy")
    assert Mixture(meta, cache_dir=str(cache)).read(2) == first.read(2)
    _write_jsonl(tmp_path / "d.jsonl", 6, "d")  # new size -> new key, fresh index
    assert len(Mixture(meta, cache_dir=str(cache))) == 6
    assert len(os.listdir(cache)) == 2
