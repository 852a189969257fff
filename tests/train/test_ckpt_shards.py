"""The streaming safetensors reader returns exactly what safetensors itself reads."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from internvl_train.errors import CheckpointError
from internvl_train.shards import _read_safetensors


def test_reader_matches_safetensors_for_every_dtype(tmp_path):
    gen = torch.Generator().manual_seed(0)
    tensors = {
        "bf16": torch.randn(3, 5, generator=gen).bfloat16(),
        "f16": torch.randn(7, generator=gen).half(),
        "f32": torch.randn(2, 2, 2, generator=gen),
        "i64": torch.arange(-3, 9),
        "u8": torch.arange(0, 250, 7, dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 4),
    }
    save_file(tensors, str(tmp_path / "x.safetensors"))
    ours = dict(_read_safetensors(tmp_path / "x.safetensors"))
    ref = load_file(str(tmp_path / "x.safetensors"))
    assert sorted(ours) == sorted(ref)
    for key in ref:
        assert ours[key].dtype == ref[key].dtype and ours[key].shape == ref[key].shape
        assert torch.equal(ours[key], ref[key]), key


def test_truncated_file_is_reported(tmp_path):
    save_file({"w": torch.ones(64)}, str(tmp_path / "x.safetensors"))
    data = (tmp_path / "x.safetensors").read_bytes()
    (tmp_path / "x.safetensors").write_bytes(data[:-10])
    with pytest.raises(CheckpointError, match=r"x.safetensors: truncated at tensor 'w'; download it again"):
        list(_read_safetensors(tmp_path / "x.safetensors"))
    (tmp_path / "y.safetensors").write_bytes(b"\x05")
    with pytest.raises(CheckpointError, match="y.safetensors: not a safetensors file"):
        list(_read_safetensors(tmp_path / "y.safetensors"))
