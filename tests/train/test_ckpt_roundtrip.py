"""Round trips are exact: original -> native -> original and native -> original -> native, every family and ViT."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from internvl_train import load_pretrained, save_pretrained
from internvl_train.checkpoint.configmap import NAMESPACE
from tests.train.ckpt_reference import COMBOS


def _original_tensors(path) -> dict[str, torch.Tensor]:
    index = path / "model.safetensors.index.json"
    files = (
        sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    )
    out: dict[str, torch.Tensor] = {}
    for f in files:
        out.update(load_file(str(path / f)))
    return out


def _assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


@pytest.mark.parametrize(("llm", "vit"), COMBOS)
def test_original_native_original(tiny_ckpt, tmp_path, llm, vit):
    src = tiny_ckpt(llm, vit, sharded=True)
    model, tok = load_pretrained(src)
    save_pretrained(model, tok, tmp_path / "hf", layout="hf")
    native, tok2 = load_pretrained(tmp_path / "hf")
    save_pretrained(native, tok2, tmp_path / "orig")
    _assert_same_tensors(_original_tensors(src), _original_tensors(tmp_path / "orig"))
    assert json.loads((tmp_path / "orig" / "config.json").read_text()) == json.loads((src / "config.json").read_text())


@pytest.mark.parametrize(("llm", "vit"), COMBOS)
def test_native_original_native(tiny_ckpt, tmp_path, llm, vit):
    model, tok = load_pretrained(tiny_ckpt(llm, vit))
    save_pretrained(model, tok, tmp_path / "hf", layout="hf")
    native, _ = load_pretrained(tmp_path / "hf")
    save_pretrained(native, tok, tmp_path / "orig", layout="original")
    again, _ = load_pretrained(tmp_path / "orig")
    _assert_same_tensors(native.state_dict(), again.state_dict())
    assert again.config.to_dict()[NAMESPACE] == native.config.to_dict()[NAMESPACE]
    assert _comparable(again.config) == _comparable(native.config)


def _comparable(config) -> dict:
    """``config.to_dict()`` less what records where it was loaded from: path, architectures, sub-config dtype."""
    out = config.to_dict()
    del out["_name_or_path"], out["architectures"]
    for sub in ("text_config", "vision_config"):
        out[sub].pop("dtype", None)
    return out


def test_native_checkpoint_without_namespace_saves_checkpoint_defaults(tiny_ckpt, tmp_path):
    """A native checkpoint that never was original (no `internvl_chat` record) gets the InternVL2 defaults."""
    model, tok = load_pretrained(tiny_ckpt("phi3", "300m"))
    delattr(model.config, NAMESPACE)
    save_pretrained(model, tok, tmp_path / "orig")
    cfg = json.loads((tmp_path / "orig" / "config.json").read_text())
    assert cfg["template"] == "phi3-chat"
    assert (cfg["ps_version"], cfg["dynamic_image_size"], cfg["use_thumbnail"], cfg["max_dynamic_patch"]) == (
        "v2",
        True,
        True,
        12,
    )
    assert cfg["llm_config"]["architectures"] == ["Phi3ForCausalLM"]
    assert cfg["llm_config"]["rope_scaling"]["type"] == "su"
    assert cfg["force_image_size"] == 56 and cfg["vision_config"]["image_size"] == 56
    again, _ = load_pretrained(tmp_path / "orig")
    _assert_same_tensors(model.state_dict(), again.state_dict())


@pytest.mark.parametrize("weights", ["safetensors", "bin"])
def test_sharded_with_index_and_bin_load(tiny_ckpt, weights):
    single, _ = load_pretrained(tiny_ckpt("internlm2", "6b"))
    sharded, _ = load_pretrained(tiny_ckpt("internlm2", "6b", sharded=True, weights=weights))
    _assert_same_tensors(single.state_dict(), sharded.state_dict())


def test_tied_embeddings_save_as_two_tensors(tiny_ckpt, tmp_path):
    """A native model whose lm_head shares the embedding's memory saves like any other (both original tensors)."""
    model, tok = load_pretrained(tiny_ckpt("qwen2", "300m"))
    model.lm_head.weight = model.model.language_model.embed_tokens.weight
    save_pretrained(model, tok, tmp_path / "out")
    tensors = _original_tensors(tmp_path / "out")
    embed = model.model.language_model.embed_tokens.weight.detach()
    assert torch.equal(tensors["language_model.lm_head.weight"], embed)
    assert torch.equal(tensors["language_model.model.embed_tokens.weight"], embed)


def test_save_original_sharded_writes_index(tiny_ckpt, tmp_path):
    src = tiny_ckpt("llama", "300m")
    model, tok = load_pretrained(src)
    save_pretrained(model, tok, tmp_path / "out", max_shard_bytes=40_000)
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    assert not (tmp_path / "out" / "model.safetensors").exists()
    tensors = _original_tensors(tmp_path / "out")
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in tensors.values())
    _assert_same_tensors(_original_tensors(src), tensors)


def test_dtype_cast_on_load(tiny_ckpt, tmp_path):
    model, tok = load_pretrained(tiny_ckpt("qwen2", "300m"), dtype="bfloat16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    save_pretrained(model, tok, tmp_path / "out")
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["torch_dtype"] == cfg["llm_config"]["torch_dtype"] == "bfloat16"
    assert {t.dtype for t in _original_tensors(tmp_path / "out").values()} == {torch.bfloat16}


# What transformers 4.37 writes into a released config.json besides the model fields (PretrainedConfig.to_dict).
_GENERIC_437 = {
    "_name_or_path": "",
    "add_cross_attention": False,
    "bad_words_ids": None,
    "begin_suppress_tokens": None,
    "chunk_size_feed_forward": 0,
    "id2label": {"0": "LABEL_0", "1": "LABEL_1"},
    "is_decoder": False,
    "label2id": {"LABEL_0": 0, "LABEL_1": 1},
    "output_attentions": False,
    "output_hidden_states": False,
    "problem_type": None,
    "return_dict": True,
    "torchscript": False,
    "transformers_version": "4.37.2",
    "use_bfloat16": True,
}


@pytest.mark.parametrize("llm", ["internlm2", "phi3"])
def test_released_style_config_round_trips_exactly(tiny_ckpt, tmp_path, llm):
    src = tmp_path / "src"
    src.mkdir()
    for f in tiny_ckpt(llm, "6b").iterdir():
        (src / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((src / "config.json").read_text())
    cfg["llm_config"] = dict(sorted({**cfg["llm_config"], **_GENERIC_437}.items()))
    cfg["vision_config"] = dict(sorted({**cfg["vision_config"], **_GENERIC_437, "use_flash_attn": True}.items()))
    cfg.update(_commit_hash=None, transformers_version=None, max_dynamic_patch=6, vision_config=cfg["vision_config"])
    cfg["vision_config"]["drop_path_rate"] = 0.1  # a fine-tuned checkpoint (§5.7)
    (src / "config.json").write_text(json.dumps(cfg, indent=2))
    model, tok = load_pretrained(src)
    save_pretrained(model, tok, tmp_path / "hf", layout="hf")
    native, _ = load_pretrained(tmp_path / "hf")
    save_pretrained(native, tok, tmp_path / "out")
    assert (tmp_path / "out" / "config.json").read_text() == (src / "config.json").read_text() + "\n"
