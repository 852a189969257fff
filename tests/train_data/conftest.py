"""Fixtures of the trainer data tests: a tiny checkpoint (session) and a private copy of fixtures/valid (per test)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

VALID = ROOT / "fixtures" / "valid"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny InternVL2-1B-shaped (qwen2 / InternViT-300M) checkpoint in the original layout; do not modify it."""
    from internvl_train.tiny import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-qwen2", "qwen2", "300m")


@pytest.fixture
def valid_copy(tmp_path) -> Path:
    """A writable copy of fixtures/valid (the four record kinds, repeat_time < 1, = 1 and > 1); returns meta.json."""
    shutil.copytree(VALID, tmp_path / "valid")
    return tmp_path / "valid" / "meta.json"
