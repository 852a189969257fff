"""Tiny random InternVL2 checkpoints in the original on-disk layout (docs/official-behaviour.md §5.6-5.8), for tests and benchmarks.

Key names, shapes and config fields follow the released checkpoints; only the sizes are small. Tensors are
generated one at a time, so the writer also makes large synthetic checkpoints without holding them in memory.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from internvl_data.pipeline.tokenizer import INTERNVL_TOKENS
from internvl_train.checkpoint.configmap import AUTO_MAP, DEFAULT_TEMPLATE
from internvl_train.checkpoint.families import FAMILIES

_ARCH = {name: fam.architecture for name, fam in FAMILIES.items()}


def write_tiny_checkpoint(
    out_dir: str | Path,
    llm: str = "qwen2",
    vit: str = "300m",
    *,
    seed: int = 0,
    sharded: bool = False,
    tokenizer: Any = None,
    weights: str = "safetensors",
    dtype: torch.dtype = torch.float32,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int | None = None,
    intermediate: int | None = None,
    vocab_size: int = 288,
    vision_hidden: int = 32,
    vision_layers: int = 2,
    vision_heads: int = 2,
    image_size: int = 56,
    max_position_embeddings: int | None = None,
    num_shards: int = 3,
    patch_size: int = 14,
    settings: dict[str, Any] | None = None,
) -> Path:
    """Write a random InternVL2-<llm>/<vit> checkpoint; ``tokenizer`` is a directory to copy, an object with
    ``save_pretrained``, or None for :func:`minimal_tokenizer` (byte-level, 275 tokens: renders any text cleanly).
    ``settings``: top-level config.json fields to set (template, min/max_dynamic_patch, use_thumbnail, ...);
    ``weights="none"``: config and tokenizer only (what the data tools read)."""
    if llm not in _ARCH or vit not in ("300m", "6b"):
        raise ValueError(f"llm must be one of {sorted(_ARCH)} and vit '300m' or '6b'")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kv = kv_heads if kv_heads is not None else (heads if llm == "phi3" else max(1, heads // 2))
    inter = intermediate or 2 * hidden
    cfg = _config(
        llm,
        vit,
        hidden,
        layers,
        heads,
        kv,
        inter,
        vocab_size,
        vision_hidden,
        vision_layers,
        vision_heads,
        image_size,
        max_position_embeddings,
        dtype,
        patch_size,
    )
    cfg.update(settings or {})
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    if weights != "none":
        gen = torch.Generator().manual_seed(seed)
        _write_weights(out, list(_shapes(cfg, llm)), gen, dtype, weights, num_shards if sharded else 1)
    _write_tokenizer(out, tokenizer, vocab_size, llm)
    (out / "generation_config.json").write_text(json.dumps({"_from_model_config": True}) + "\n")
    return out


def _config(
    llm: str,
    vit: str,
    hidden: int,
    layers: int,
    heads: int,
    kv: int,
    inter: int,
    vocab: int,
    vh: int,
    vl: int,
    vheads: int,
    image_size: int,
    max_pos: int | None,
    dtype: torch.dtype,
    patch_size: int = 14,
) -> dict[str, Any]:
    dname = str(dtype).removeprefix("torch.")
    big = vit == "6b"
    vision = {
        "architectures": ["InternVisionModel"],
        "attention_dropout": 0.0,
        "drop_path_rate": 0.0,
        "dropout": 0.0,
        "hidden_act": "gelu",
        "hidden_size": vh,
        "image_size": image_size,
        "initializer_factor": 0.1 if big else 1.0,
        "initializer_range": 0.02,
        "intermediate_size": 4 * vh,
        "layer_norm_eps": 1e-6,
        "model_type": "intern_vit_6b",
        "norm_type": "rms_norm" if big else "layer_norm",
        "num_attention_heads": vheads,
        "num_channels": 3,
        "num_hidden_layers": vl,
        "patch_size": patch_size,
        "qk_normalization": big,
        "qkv_bias": not big,
        "torch_dtype": dname,
        "use_flash_attn": False,
    }
    text: dict[str, Any] = {
        "architectures": [_ARCH[llm]],
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": inter,
        "model_type": llm,
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "num_key_value_heads": kv,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "torch_dtype": dname,
        "use_cache": True,
        "vocab_size": vocab,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    head_dim = hidden // heads
    if llm == "qwen2":
        text.update(
            max_position_embeddings=max_pos or 256,
            rope_theta=1000000.0,
            rms_norm_eps=1e-6,
            use_sliding_window=False,
            sliding_window=256,
            max_window_layers=layers,
            attention_dropout=0.0,
        )
    elif llm == "internlm2":
        text.update(
            max_position_embeddings=max_pos or 32,
            rope_theta=1000000,
            bias=False,
            pad_token_id=2,
            rope_scaling={"type": "dynamic", "factor": 2.0},
            attn_implementation="eager",
            auto_map={
                "AutoConfig": "configuration_internlm2.InternLM2Config",
                "AutoModel": "modeling_internlm2.InternLM2ForCausalLM",
                "AutoModelForCausalLM": "modeling_internlm2.InternLM2ForCausalLM",
            },
        )
    elif llm == "phi3":
        short = [round(1.0 + 0.05 * i, 4) for i in range(head_dim // 2)]
        long = [round(1.0 + 0.5 * i, 4) for i in range(head_dim // 2)]
        text.update(
            max_position_embeddings=max_pos or 128,
            original_max_position_embeddings=32,
            rope_theta=10000.0,
            rope_scaling={"type": "su", "short_factor": short, "long_factor": long},
            sliding_window=262144,
            embd_pdrop=0.0,
            resid_pdrop=0.0,
            attention_dropout=0.0,
            pad_token_id=2,
        )
    else:
        text.update(
            max_position_embeddings=max_pos or 256,
            rope_theta=5000000.0,
            rope_scaling=None,
            attention_bias=False,
            pretraining_tp=1,
        )
    return {
        "architectures": ["InternVLChatModel"],
        "model_type": "internvl_chat",
        "auto_map": dict(AUTO_MAP),
        "downsample_ratio": 0.5,
        "dynamic_image_size": True,
        "force_image_size": image_size,
        "hidden_size": hidden,
        "llm_config": text,
        "max_dynamic_patch": 12,
        "min_dynamic_patch": 1,
        "pad2square": False,
        "ps_version": "v2",
        "select_layer": -1,
        "template": DEFAULT_TEMPLATE.get(llm, "Hermes-2"),
        "tie_word_embeddings": False,
        "torch_dtype": dname,
        "use_backbone_lora": 0,
        "use_llm_lora": 0,
        "use_thumbnail": True,
        "vision_config": vision,
    }


def _shapes(cfg: dict[str, Any], llm: str) -> Iterator[tuple[str, tuple[int, ...]]]:
    v, t = cfg["vision_config"], cfg["llm_config"]
    c, grid = v["hidden_size"], (v["image_size"] // v["patch_size"]) ** 2
    yield "vision_model.embeddings.class_embedding", (1, 1, c)
    yield "vision_model.embeddings.patch_embedding.weight", (c, 3, v["patch_size"], v["patch_size"])
    yield "vision_model.embeddings.patch_embedding.bias", (c,)
    yield "vision_model.embeddings.position_embedding", (1, 1 + grid, c)
    for i in range(v["num_hidden_layers"]):
        p = f"vision_model.encoder.layers.{i}."
        yield p + "attn.qkv.weight", (3 * c, c)
        if v["qkv_bias"]:
            yield p + "attn.qkv.bias", (3 * c,)
        if v["qk_normalization"]:
            yield p + "attn.q_norm.weight", (c,)
            yield p + "attn.k_norm.weight", (c,)
        yield from ((p + "attn.proj.weight", (c, c)), (p + "attn.proj.bias", (c,)))
        yield from ((p + "mlp.fc1.weight", (4 * c, c)), (p + "mlp.fc1.bias", (4 * c,)))
        yield from ((p + "mlp.fc2.weight", (c, 4 * c)), (p + "mlp.fc2.bias", (c,)))
        for norm in ("norm1", "norm2"):
            yield p + f"{norm}.weight", (c,)
            if v["norm_type"] == "layer_norm":
                yield p + f"{norm}.bias", (c,)
        yield from ((p + "ls1", (c,)), (p + "ls2", (c,)))
    h, inter, vocab = t["hidden_size"], t["intermediate_size"], t["vocab_size"]
    hd = h // t["num_attention_heads"]
    q, kv = t["num_attention_heads"] * hd, t["num_key_value_heads"] * hd
    yield from (("mlp1.0.weight", (4 * c,)), ("mlp1.0.bias", (4 * c,)), ("mlp1.1.weight", (h, 4 * c)))
    yield from (("mlp1.1.bias", (h,)), ("mlp1.3.weight", (h, h)), ("mlp1.3.bias", (h,)))
    m = "language_model.model."
    yield m + ("tok_embeddings.weight" if llm == "internlm2" else "embed_tokens.weight"), (vocab, h)
    for i in range(t["num_hidden_layers"]):
        p = f"{m}layers.{i}."
        if llm == "internlm2":
            yield from ((p + "attention.wqkv.weight", (q + 2 * kv, h)), (p + "attention.wo.weight", (h, q)))
            yield from ((p + "feed_forward.w1.weight", (inter, h)), (p + "feed_forward.w3.weight", (inter, h)))
            yield from ((p + "feed_forward.w2.weight", (h, inter)), (p + "attention_norm.weight", (h,)))
            yield p + "ffn_norm.weight", (h,)
            continue
        if llm == "phi3":
            yield from (
                (p + "self_attn.qkv_proj.weight", (q + 2 * kv, h)),
                (p + "mlp.gate_up_proj.weight", (2 * inter, h)),
            )
        else:
            for name, rows in (("q", q), ("k", kv), ("v", kv)):
                yield p + f"self_attn.{name}_proj.weight", (rows, h)
                if llm == "qwen2":
                    yield p + f"self_attn.{name}_proj.bias", (rows,)
            yield from ((p + "mlp.gate_proj.weight", (inter, h)), (p + "mlp.up_proj.weight", (inter, h)))
        yield from ((p + "self_attn.o_proj.weight", (h, q)), (p + "mlp.down_proj.weight", (h, inter)))
        yield from ((p + "input_layernorm.weight", (h,)), (p + "post_attention_layernorm.weight", (h,)))
    yield m + "norm.weight", (h,)
    yield ("language_model.output.weight" if llm == "internlm2" else "language_model.lm_head.weight"), (vocab, h)


def _random(key: str, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    x = torch.randn(shape, generator=gen)
    if len(shape) == 1 and ("norm" in key or key.endswith(("ls1", "ls2", "mlp1.0.weight"))):
        return 1.0 + 0.1 * x if not key.endswith(("ls1", "ls2")) else 0.5 * x
    if key.endswith("bias") or "embedding" in key or len(shape) == 3:
        return 0.1 * x if "tok_embeddings" not in key and "embed_tokens" not in key else x
    return x / math.sqrt(math.prod(shape[1:]))


def _write_weights(
    out: Path,
    shapes: list[tuple[str, tuple[int, ...]]],
    gen: torch.Generator,
    dtype: torch.dtype,
    weights: str,
    shards: int,
) -> None:
    """Generate and write one shard at a time (index only when sharded)."""
    per = math.ceil(len(shapes) / shards)
    ext, stem = ("bin", "pytorch_model") if weights == "bin" else ("safetensors", "model")
    weight_map: dict[str, str] = {}
    total = 0
    for k in range(shards):
        chunk = {key: _random(key, shape, gen).to(dtype) for key, shape in shapes[k * per : (k + 1) * per]}
        fname = f"{stem}.{ext}" if shards == 1 else f"{stem}-{k + 1:05d}-of-{shards:05d}.{ext}"
        if weights == "bin":
            torch.save(chunk, out / fname)
        else:
            save_file(chunk, str(out / fname), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(chunk, fname))
        total += sum(t.numel() * t.element_size() for t in chunk.values())
        del chunk
    if shards > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (out / f"{stem}.{ext}.index.json").write_text(json.dumps(index, indent=2) + "\n")


def _write_tokenizer(out: Path, tokenizer: Any, vocab_size: int, llm: str = "qwen2") -> None:
    if isinstance(tokenizer, (str, Path)):
        for f in Path(tokenizer).iterdir():
            if f.is_file() and f.name not in ("config.json", "generation_config.json") and "safetensors" not in f.name:
                shutil.copy2(f, out / f.name)
        return
    tok = tokenizer if tokenizer is not None else minimal_tokenizer(llm)
    if len(tok) > vocab_size:
        raise ValueError(f"vocab_size {vocab_size} is smaller than the tokenizer ({len(tok)} tokens)")
    tok.save_pretrained(str(out))


CONTROL_TOKENS = ("<|end|>", "<|user|>", "<|assistant|>", "<|system|>", "<|endoftext|>")  # phi3-chat, internvl2_5
# How the released tokenizers of each family start a text: internlm2 prepends <s>; phi3 (a Llama SentencePiece)
# prepends <s> and a prefix space ("▁") to each call; qwen2 and the Hermes-2 llama (Yi) add nothing.
BOS_FAMILIES = ("internlm2", "phi3")


def minimal_tokenizer(llm: str = "qwen2") -> Any:
    """A byte-level fast tokenizer that never produces ``<unk>``: ``<unk> <s> </s>``, the chat markers of every
    template (``<|im_start|>``, ``<|im_end|>``, then the phi3-chat ones), the 9 InternVL tokens as single ids, and
    the 256 byte tokens with no merges, so any text (Chinese included) round-trips. It starts a text as the
    released tokenizer of the ``llm`` family does (:data:`BOS_FAMILIES`; phi3 also with SentencePiece's prefix
    space, one token per call), which is what the official per-template length arithmetic
    relies on: the bundled example data renders without ``<unk>`` and without "tokenization mismatch" with the
    template :func:`write_tiny_checkpoint` writes for each family. ``<IMG_CONTEXT>`` keeps id 7."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>", *INTERNVL_TOKENS, *CONTROL_TOKENS]
    byte_chars = sorted(pre_tokenizers.ByteLevel.alphabet(), key=_byte_of)
    vocab = {t: i for i, t in enumerate(specials + byte_chars)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    if llm in BOS_FAMILIES:
        start = [("<s>", 1)] + ([("\u0120", vocab["\u0120"])] if llm == "phi3" else [])  # Ġ: the space byte
        head = " ".join(t for t, _ in start)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{head} $A", pair=f"{head} $A {head} $B", special_tokens=start
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="</s>"
    )
    fast.add_special_tokens({"additional_special_tokens": [*specials[3:5], *INTERNVL_TOKENS, *CONTROL_TOKENS]})
    return fast


def _byte_of(char: str) -> int:
    """The byte a ByteLevel alphabet character stands for (GPT-2's printable mapping), for a stable id order."""
    o = ord(char)
    if 33 <= o <= 126 or 161 <= o <= 172 or 174 <= o <= 255:
        return o
    return sorted(b for b in range(256) if not (33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255))[o - 256]


def main(argv: list[str] | None = None) -> int:
    """``python -m internvl_train.tiny OUT [--llm qwen2] [--vit 300m]``: a tiny checkpoint to try ``ivl-train run``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m internvl_train.tiny", description=main.__doc__)
    parser.add_argument("out", metavar="OUT", help="folder to write the checkpoint to")
    parser.add_argument("--llm", default="qwen2", choices=sorted(_ARCH), help="LLM family (default qwen2)")
    parser.add_argument("--vit", default="300m", choices=("300m", "6b"), help="InternViT variant (default 300m)")
    parser.add_argument("--max-position-embeddings", type=int, default=2048, help="LLM positions (default 2048)")
    args = parser.parse_args(argv)
    out = write_tiny_checkpoint(args.out, args.llm, args.vit, max_position_embeddings=args.max_position_embeddings)
    print(f"tiny InternVL2-{args.llm}/{args.vit} checkpoint (original layout): {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
