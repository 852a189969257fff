"""Adding an LLM family touches one registry (``checkpoint/families.FAMILIES``) and these tests find what else it
needs: the conversion and numerics tests run over ``ckpt_reference.LLMS``, and ``tiny`` must write it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from internvl_train.checkpoint.families import BY_ARCHITECTURE, FAMILIES
from internvl_train.tiny import write_tiny_checkpoint
from tests.train.ckpt_reference import LLMS


def test_the_round_trip_and_numerics_tests_cover_every_family() -> None:
    assert sorted(LLMS) == sorted(FAMILIES)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_tiny_writes_every_family(tmp_path: Path, name: str) -> None:
    out = write_tiny_checkpoint(tmp_path / name, name, weights="none")
    cfg = json.loads((out / "config.json").read_text())
    arch = cfg["llm_config"]["architectures"][0]
    assert (arch, BY_ARCHITECTURE[arch].name) == (FAMILIES[name].architecture, name)
    assert not list(out.glob("*.safetensors"))  # weights="none": config and tokenizer only
