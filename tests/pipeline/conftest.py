"""Fixtures of the pipeline tests: tiny checkpoints (config + tokenizer) and builders, cached per session."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import pytest

from internvl_data.formats.meta import MetaEntry
from internvl_data.formats.models import DatasetEntry

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `tests.helpers` importable under plain `pytest` too
    sys.path.insert(0, str(ROOT))

from tests.helpers.tokenizers import write_model_dir  # noqa: E402


@pytest.fixture(scope="session")
def model_factory(tmp_path_factory):
    """``model_factory(template, kind, **config)`` -> a checkpoint directory (built once per arguments)."""
    root = tmp_path_factory.mktemp("models")

    @functools.cache
    def make(template: str | None, kind: str, **cfg) -> Path:
        name = f"{template}-{kind}-" + "-".join(f"{k}{v}" for k, v in sorted(cfg.items()))
        return write_model_dir(root / name, template, kind, **cfg)

    return lambda template, kind, **cfg: make(template, kind, **cfg)


@pytest.fixture(scope="session")
def builder_factory(model_factory):
    """``builder_factory(template, kind, max_seq_length=4096, **config)`` -> (SampleBuilder, tokenizer)."""
    from internvl_data.pipeline.modelinfo import ModelInfo
    from internvl_data.pipeline.sample import SampleBuilder
    from internvl_data.pipeline.tokenizer import load_tokenizer

    @functools.cache
    def make(template, kind, max_seq_length=4096, **cfg):
        d = model_factory(template, kind, **cfg)
        tok = load_tokenizer(d)
        return SampleBuilder(tok, ModelInfo.from_dir(d), template, max_seq_length, num_frames=3, sampling="middle"), tok

    return lambda template, kind, max_seq_length=4096, **cfg: make(template, kind, max_seq_length, **cfg)


def Entry(root: Path, **raw) -> MetaEntry:
    """A ``meta.MetaEntry`` for dataset "ds" with media under ``root`` (``raw``: more meta keys)."""
    values = {"root": str(root), "annotation": "ds.jsonl", "data_augment": False, "repeat_time": 1, **raw}
    return MetaEntry("ds", DatasetEntry(**values), values, "", str(root), 0)


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    """A folder with a few images (800x600, 448x448, 1920x1080, 57x31) and a short mp4 (if PyAV works)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("media")
    for (w, h), color in {
        (800, 600): (200, 30, 40),
        (448, 448): (10, 200, 40),
        (1920, 1080): (9, 9, 200),
        (57, 31): (120, 120, 0),
    }.items():
        img = Image.new("RGB", (w, h), color)
        img.putpixel((w // 2, h // 3), (255, 255, 255))
        img.save(root / f"img_{w}x{h}.png")
    return root


def write_meta(folder: Path, records: dict[str, list[dict]], root: Path) -> Path:
    """Write one JSONL per dataset and a meta file; returns the meta path."""
    meta = {}
    for name, recs in records.items():
        ann = folder / f"{name}.jsonl"
        ann.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
        meta[name] = {"root": str(root), "annotation": str(ann), "data_augment": False, "repeat_time": 1}
    path = folder / "meta.json"
    path.write_text(json.dumps(meta), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def Entry_():
    """The ``Entry`` stand-in class (test modules cannot import conftest)."""
    return Entry


@pytest.fixture(scope="session")
def meta_writer():
    return write_meta
