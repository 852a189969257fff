"""The converted native model computes what the original InternVL2 computes (reference forward from the spec)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from internvl_train import load_pretrained
from tests.train.ckpt_reference import COMBOS
from tests.train.ckpt_reference import forward as reference_forward


def _original(path):
    cfg = json.loads((path / "config.json").read_text())
    return load_file(str(path / "model.safetensors")), cfg


def _inputs(cfg, ctx_id: int, img_id: int, end_id: int, seq_len: int, tiles: tuple[int, ...], seed: int = 0):
    """Two sequences; sample b holds ``tiles[b]`` tiles as <img> <IMG_CONTEXT>*n </img> after 3 text tokens."""
    gen = torch.Generator().manual_seed(seed)
    vocab = cfg["llm_config"]["vocab_size"]
    ids = torch.randint(20, vocab, (len(tiles), seq_len), generator=gen)
    per_tile = (cfg["force_image_size"] // cfg["vision_config"]["patch_size"]) ** 2 // 4
    for b, n in enumerate(tiles):
        if n:
            span = [img_id] + [ctx_id] * (n * per_tile) + [end_id]
            ids[b, 3 : 3 + len(span)] = torch.tensor(span)
    size = cfg["force_image_size"]
    pixels = torch.randn(sum(tiles), 3, size, size, generator=gen) if sum(tiles) else None
    return ids, pixels


def _max_rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float((ours - ref).abs().max() / ref.abs().max())


@pytest.mark.parametrize(("llm", "vit"), COMBOS)
@pytest.mark.parametrize(
    ("seq_len", "tiles"),
    [(24, (2, 1)), (48, (3, 0)), (12, (0, 0)), (40, (0, 0))],
    ids=["images-short", "images-long", "text-short", "text-long"],
)
def test_native_matches_reference(tiny_ckpt, llm, vit, seq_len, tiles):
    path = tiny_ckpt(llm, vit)
    sd, cfg = _original(path)
    model, tok = load_pretrained(path)
    vocab = tok.get_vocab()
    ids, pixels = _inputs(cfg, vocab["<IMG_CONTEXT>"], vocab["<img>"], vocab["</img>"], seq_len, tiles)
    with torch.no_grad():
        ref = reference_forward(sd, cfg, ids, pixels, vocab["<IMG_CONTEXT>"])
        ours = model(input_ids=ids, pixel_values=pixels).logits
    assert ours.shape == ref.shape == (len(tiles), seq_len, cfg["llm_config"]["vocab_size"])
    assert _max_rel_err(ours, ref) <= 1e-5


@pytest.mark.parametrize("select_layer", [-2, 1])
def test_select_layer_reads_the_same_hidden_state(tiny_ckpt, tmp_path, select_layer):
    src = tiny_ckpt("qwen2", "6b", vision_layers=3)
    dst = tmp_path / "ckpt"
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((src / "config.json").read_text())
    cfg["select_layer"] = select_layer
    (dst / "config.json").write_text(json.dumps(cfg))
    sd, cfg = _original(dst)
    model, tok = load_pretrained(dst)
    assert model.config.vision_feature_layer == select_layer
    vocab = tok.get_vocab()
    ids, pixels = _inputs(cfg, vocab["<IMG_CONTEXT>"], vocab["<img>"], vocab["</img>"], 20, (1, 2))
    with torch.no_grad():
        ref = reference_forward(sd, cfg, ids, pixels, vocab["<IMG_CONTEXT>"])
        ours = model(input_ids=ids, pixel_values=pixels).logits
    assert _max_rel_err(ours, ref) <= 1e-5
    cfg_last = dict(cfg, select_layer=-1)
    assert _max_rel_err(reference_forward(sd, cfg_last, ids, pixels, vocab["<IMG_CONTEXT>"]), ref) > 1e-3
