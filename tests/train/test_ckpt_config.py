"""The native config carries what InternVL2 needs: architecture details, image token, image settings."""

from __future__ import annotations

import json

import pytest
import torch

from internvl_train import load_pretrained, save_pretrained
from internvl_train.checkpoint.configmap import NAMESPACE
from internvl_train.tiny import write_tiny_checkpoint


def test_vision_variants_map_to_native_options(tiny_ckpt):
    small, _ = load_pretrained(tiny_ckpt("qwen2", "300m"))
    big, _ = load_pretrained(tiny_ckpt("qwen2", "6b"))
    s, b = small.config.vision_config, big.config.vision_config
    assert (s.norm_type, s.use_qk_norm, s.attention_bias, s.layer_norm_eps) == ("layer_norm", False, True, 1e-6)
    assert (b.norm_type, b.use_qk_norm, b.attention_bias, b.layer_norm_eps) == ("rms_norm", True, False, 1e-6)
    assert s.use_mean_pooling is True  # identity final norm: InternViT has no post layernorm
    assert small.model.multi_modal_projector.layer_norm.eps == 1e-5
    assert small.model.vision_tower.encoder.layer[0].layernorm_before.eps == 1e-6
    assert small.model.vision_tower.encoder.layer[0].attention.q_proj.bias is not None
    assert big.model.vision_tower.encoder.layer[0].attention.q_proj.bias is None


@pytest.mark.parametrize(
    ("llm", "native_type", "rope_type"),
    [
        ("qwen2", "qwen2", "default"),
        ("internlm2", "llama", "dynamic"),
        ("phi3", "phi3", "longrope"),
        ("llama", "llama", "default"),
    ],
)
def test_text_families(tiny_ckpt, llm, native_type, rope_type):
    model, tok = load_pretrained(tiny_ckpt(llm, "300m"))
    text = model.config.text_config
    assert (text.model_type, text.rope_parameters["rope_type"]) == (native_type, rope_type)
    assert model.config.tie_word_embeddings is False and text.tie_word_embeddings is False
    assert model.lm_head.weight.data_ptr() != model.get_input_embeddings().weight.data_ptr()
    assert model.config.image_token_id == tok.convert_tokens_to_ids("<IMG_CONTEXT>")
    assert model.config.image_seq_length == 4  # (56 / 14)^2 * 0.5^2
    assert getattr(model.config, NAMESPACE)["llm_family"] == llm


def test_family_of_native_text_model():
    from internvl_train.checkpoint.families import family_of_native
    from internvl_train.errors import CheckpointError

    assert family_of_native("llama", "internlm2").name == "internlm2"
    assert family_of_native("llama", None).name == "llama"
    assert family_of_native("phi3", "qwen2").name == "phi3"
    with pytest.raises(CheckpointError) as exc:
        family_of_native("mistral", None)
    assert str(exc.value) == "native text model 'mistral' is not an InternVL2 LLM; supported: qwen2, llama, phi3"


def test_linear_rope_scaling_round_trips(tiny_ckpt, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for f in tiny_ckpt("internlm2", "300m").iterdir():
        (src / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((src / "config.json").read_text())
    cfg["llm_config"]["rope_scaling"] = {"type": "linear", "factor": 4.0}
    (src / "config.json").write_text(json.dumps(cfg))
    model, tok = load_pretrained(src)
    rope = model.config.text_config.rope_parameters
    assert (rope["rope_type"], rope["factor"]) == ("linear", 4.0)
    assert model.model.language_model.rotary_emb.rope_type == "linear"
    save_pretrained(model, tok, tmp_path / "hf", layout="hf")
    native, _ = load_pretrained(tmp_path / "hf")
    save_pretrained(native, tok, tmp_path / "orig")
    back = json.loads((tmp_path / "orig" / "config.json").read_text())
    assert back["llm_config"]["rope_scaling"] == {"type": "linear", "factor": 4.0}
    assert back == cfg


def test_image_settings_reach_the_data_pipeline_from_a_native_dir(tiny_ckpt, tmp_path):
    from internvl_data.pipeline.modelinfo import ModelInfo

    src = tiny_ckpt("internlm2", "300m")
    model, tok = load_pretrained(src)
    model.config.max_dynamic_patch = 6  # a fine-tuning run that changed a setting
    save_pretrained(model, tok, tmp_path / "hf", layout="hf")
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert cfg["model_type"] == "internvl"
    assert (cfg["template"], cfg["force_image_size"], cfg["max_dynamic_patch"]) == ("internlm2-chat", 56, 6)
    info = ModelInfo.from_dir(tmp_path / "hf")
    assert (info.template, info.tile_size, info.max_dynamic_patch, info.use_thumbnail) == (
        "internlm2-chat",
        56,
        6,
        True,
    )
    native, _ = load_pretrained(tmp_path / "hf")
    save_pretrained(native, tok, tmp_path / "orig")
    back = json.loads((tmp_path / "orig" / "config.json").read_text())
    assert back["max_dynamic_patch"] == 6 and back["template"] == "internlm2-chat"


def test_shared_test_tokenizer_is_accepted(tmp_path):
    from transformers import AutoTokenizer

    from tests.helpers.tokenizers import tokenizer_dir

    tok_dir = tokenizer_dir("qwen2")
    n = len(AutoTokenizer.from_pretrained(str(tok_dir)))
    path = write_tiny_checkpoint(tmp_path / "ck", "qwen2", "300m", tokenizer=tok_dir, vocab_size=n)
    model, tok = load_pretrained(path)
    assert model.config.image_token_id == tok.convert_tokens_to_ids("<IMG_CONTEXT>") == 709
    ids = torch.tensor([[5, 709, 709, 709, 709, 6]])
    logits = model(input_ids=ids, pixel_values=torch.zeros(1, 3, 56, 56)).logits
    assert logits.shape == (1, 6, n)


def test_base_files_copied_and_write_is_atomic(tiny_ckpt, tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    (base / "modeling_internvl_chat.py").write_text("# remote code\n")
    (base / "generation_config.json").write_text('{"eos_token_id": [2, 92542]}\n')
    model, tok = load_pretrained(tiny_ckpt("phi3", "6b"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text("{}")  # an earlier checkpoint: replaced (a non-checkpoint folder is refused)
    (out / "stale.txt").write_text("old")
    save_pretrained(model, tok, out, base=base)
    assert (out / "modeling_internvl_chat.py").read_text() == "# remote code\n"
    assert json.loads((out / "generation_config.json").read_text()) == {"eos_token_id": [2, 92542]}
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base", "out"]  # no temp dirs left behind
    save_pretrained(model, tok, tmp_path / "hf", layout="hf", base=base)
    assert not (tmp_path / "hf" / "modeling_internvl_chat.py").exists()
    assert json.loads((tmp_path / "hf" / "generation_config.json").read_text()) == {"eos_token_id": [2, 92542]}


def test_failed_save_leaves_the_old_output(tiny_ckpt, tmp_path):
    from internvl_train.errors import CheckpointError

    model, tok = load_pretrained(tiny_ckpt("qwen2", "300m"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text("{}")  # an earlier checkpoint, which a failed save must leave as it was
    (out / "keep.txt").write_text("old")
    with pytest.raises(CheckpointError, match="not a directory"):
        save_pretrained(model, tok, out, base=tmp_path / "missing")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (out / "keep.txt").read_text() == "old"


def test_base_tokenizer_files_kept_when_vocabulary_unchanged(tmp_path):
    """InternLM2 sizes ship a remote-code tokenizer: an unchanged vocabulary keeps the base's files verbatim."""
    from internvl_data.pipeline.tokenizer import load_tokenizer
    from tests.helpers.tokenizers import tokenizer_dir

    tok_dir = tokenizer_dir("internlm2")
    n = len(load_tokenizer(tok_dir))
    src = write_tiny_checkpoint(tmp_path / "src", "internlm2", "300m", tokenizer=tok_dir, vocab_size=n)
    model, tok = load_pretrained(src)
    save_pretrained(model, tok, tmp_path / "same", base=src)
    for name in ("tokenizer_config.json", "tokenizer.model", "tokenization_internlm2.py"):
        assert (tmp_path / "same" / name).read_bytes() == (src / name).read_bytes(), name
    tok.add_tokens(["<new_token>"])
    save_pretrained(model, tok, tmp_path / "changed", base=src)
    assert "<new_token>" in load_tokenizer(tmp_path / "changed").get_vocab()
