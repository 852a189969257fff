"""A small mixture built per test session: 3 datasets, all four record kinds, known image sizes, one video."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.records import conv, write_jsonl

IMAGES = {"a.jpg": (800, 600), "b.png": (1920, 1080), "c.jpg": (448, 448), "d.jpg": (3000, 500)}
VIDEO = ("v.mp4", 20, 10)  # name, frames, fps


CAPTIONS = [
    {"id": 1, "conversations": conv("Hello there", "Hi!")},
    {"id": 2, "image": "a.jpg", "conversations": conv("<image>\nWhat is this?", "A cat.")},
    {"id": 3, "image": "b.png", "conversations": conv("Describe the picture.", "A wide street.")},
    {"id": 4, "image": ["a.jpg", "d.jpg"], "conversations": conv("<image>\n<image>\nCompare.", "Left is taller.")},
]
CHAT = [
    {"id": 10, "conversations": conv("one", "two", "three", "four")},
    {"id": 11, "conversations": conv("How are you?", "Fine, thanks.")},
    {"id": 12, "conversations": conv("x", "y")},
    {"id": 13, "conversations": conv("dropped by repeat_time", "yes")},
]
VIDEOS = [
    {"id": 20, "video": "v.mp4", "conversations": conv("<video>\nWhat happens?", "Nothing.")},
    {"id": 21, "video": "v.mp4", "clip": [0.0, 1.5], "conversations": conv("<video>\nAnd here?", "Still nothing.")},
    {"id": 22, "image": "c.jpg", "conversations": conv("<image>\nSquare?", "Yes.")},
]


def _write_video(path: Path, frames: int, fps: int) -> None:
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        s = out.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for k in range(frames):
            img = np.full((48, 64, 3), k * 10 % 255, dtype=np.uint8)
            for packet in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in s.encode():
            out.mux(packet)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    root = tmp_path_factory.mktemp("media")
    for name, (w, h) in IMAGES.items():
        Image.new("RGB", (w, h), (200, 100, 50)).save(root / name)
    _write_video(root / VIDEO[0], VIDEO[1], VIDEO[2])
    return root


@pytest.fixture()
def mixture(tmp_path: Path, media_dir: Path) -> Path:
    """meta.json with captions (repeat 2), chat (repeat 0.5, 2 of 4 lines used) and videos (repeat 1)."""
    for name, recs in (("captions", CAPTIONS), ("chat", CHAT), ("videos", VIDEOS)):
        write_jsonl(tmp_path / f"{name}.jsonl", recs)
    meta = {
        "captions": {"root": str(media_dir), "annotation": "captions.jsonl", "data_augment": False, "repeat_time": 2},
        "chat": {
            "root": str(media_dir),
            "annotation": "chat.jsonl",
            "data_augment": False,
            "repeat_time": 0.5,
            "length": 4,
        },
        "videos": {
            "root": str(media_dir),
            "annotation": "videos.jsonl",
            "data_augment": False,
            "repeat_time": 1,
            "max_dynamic_patch": 12,
        },
    }
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(meta, indent=2) + "\n")
    return path


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Checkpoint folders (config + tiny tokenizer, no weights), keyed "tokenizer/template"."""
    from tests.helpers.tokenizers import write_model_dir

    root = tmp_path_factory.mktemp("models")
    pairs = [
        ("qwen2", "Hermes-2"),
        ("llama3", "internlm2-chat"),
        ("internlm2", "internlm2-chat"),
        ("phi3", "phi3-chat"),
        ("qwen2", "internvl2_5"),
        ("qwen2", "internlm2-chat"),
    ]
    return {f"{k}/{t}": write_model_dir(root / f"{k}-{t}", t, k, max_dynamic_patch=6) for k, t in pairs}
