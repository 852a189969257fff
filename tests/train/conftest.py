"""Fixtures of the checkpoint-bridge tests: tiny random InternVL2 checkpoints in the original layout, per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `tests.helpers` and `tests.train.ckpt_reference` importable under plain pytest
    sys.path.insert(0, str(ROOT))

from transformers.utils import logging as hf_logging  # noqa: E402

from internvl_train.tiny import write_tiny_checkpoint  # noqa: E402

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory):
    """``tiny_ckpt(llm, vit, **kw) -> Path``: a cached original-layout checkpoint (do not modify it)."""
    cache: dict[tuple, Path] = {}

    def make(llm: str, vit: str, **kw) -> Path:
        key = (llm, vit, tuple(sorted(kw.items())))
        if key not in cache:
            name = f"{llm}-{vit}-{len(cache)}"
            cache[key] = write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / name, llm, vit, **kw)
        return cache[key]

    return make
