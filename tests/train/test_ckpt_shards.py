"""The streaming readers return exactly what safetensors itself reads, in memory of their own, copied once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from internvl_train.checkpoint import loading
from internvl_train.checkpoint.shards import _read_safetensors, iter_tensors
from internvl_train.errors import CheckpointError


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


def test_streamed_tensors_become_the_parameters_without_another_copy(tiny_ckpt, monkeypatch):
    streamed: dict[str, torch.Tensor] = {}

    def spy(path):
        for key, tensor in iter_tensors(path):
            streamed[key] = tensor
            yield key, tensor

    monkeypatch.setattr(loading, "iter_tensors", spy)
    model, _ = loading.load_pretrained(tiny_ckpt("qwen2", "300m"))
    assert model.lm_head.weight.data_ptr() == streamed["language_model.lm_head.weight"].data_ptr()
    embed = model.model.language_model.embed_tokens.weight
    assert embed.data_ptr() == streamed["language_model.model.embed_tokens.weight"].data_ptr()


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc/self/maps")
def test_bin_weights_do_not_stay_memory_mapped(tiny_ckpt):
    path = tiny_ckpt("internlm2", "6b", sharded=True, weights="bin")
    model, _ = loading.load_pretrained(path)
    maps = Path("/proc/self/maps").read_text()
    assert model.lm_head.weight.numel() > 0 and str(path) not in maps
